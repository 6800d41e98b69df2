"""Notebooks that tests write into a server's root directory."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

PARAMETERS = """region = "eu"
days: int = 7
rate = 0.5  # growth per day
flags = [1, 2]
verbose = False"""


def write_report(folder: Path, name: str = "report.ipynb", body: str | None = None) -> Path:
    """A parameterised notebook; ``region = "boom"`` makes its third code cell fail."""
    notebook = new_notebook(
        cells=[
            new_markdown_cell("# Report"),
            new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
            new_code_cell(
                body
                or 'print("region", region, "days", days, type(days).__name__, "rate", rate)\n'
                'print("flags", flags, "verbose", verbose)'
            ),
            new_code_cell(
                'if region == "boom":\n    raise ValueError("bad region")\nprint("done")'
            ),
        ]
    )
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / name
    nbformat.write(notebook, path)
    return path
