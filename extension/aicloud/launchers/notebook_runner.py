"""Runs one notebook job with papermill: ``python -m aicloud.launchers.notebook_runner``.

A fresh kernel per run. Cell outputs stream into the job's log as they happen, progress (cells
done of total, current cell) goes through :func:`aicloud.runtime.report`, and the output
notebook and its HTML copy land in the run's outputs folder. On failure the output notebook
keeps papermill's error cells, and the job's reason names the failing cell and the exception.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from aicloud import runtime


def progress_engine():
    """papermill's nbclient engine, reporting each cell's start and end."""
    from papermill.engines import NBClientEngine

    class ProgressEngine(NBClientEngine):
        """Reports progress as cells start and complete."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            total = len(nb_man.nb.cells)
            state = {"done": 0}
            start, complete = nb_man.cell_start, nb_man.cell_complete

            def cell_start(cell, cell_index=None, **kw):
                start(cell, cell_index, **kw)
                runtime.report(step=state["done"], total=total, cell=cell_index)

            def cell_complete(cell, cell_index=None, **kw):
                complete(cell, cell_index, **kw)
                state["done"] += 1
                runtime.report(step=state["done"], total=total, cell=cell_index)

            nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    return ProgressEngine


def export_html(notebook_path: Path, html_path: Path) -> None:
    """An HTML copy of the executed notebook."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook_path, as_version=4))
    html_path.write_text(body)


def write_reason(text: str) -> None:
    """Tell the job service why this attempt failed (it becomes the job's reason)."""
    directory = runtime.run_dir()
    if directory is not None:
        attempt = os.environ.get("AICLOUD_ATTEMPT", "1")
        (directory / f"attempt-{attempt}.reason").write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Execute the notebook; exit 1 when a cell fails."""
    parser = argparse.ArgumentParser(prog="aicloud-notebook-runner")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--html", required=True)
    parser.add_argument("--parameters", required=True, help="a JSON file")
    parser.add_argument("--kernel")
    parser.add_argument("--cwd", required=True)
    args = parser.parse_args(argv)

    import papermill
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    papermill_engines.register("aicloud", progress_engine())
    parameters = json.loads(Path(args.parameters).read_text())
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    code = 0
    try:
        papermill.execute_notebook(
            args.input,
            str(output),
            parameters=parameters,
            kernel_name=args.kernel,
            cwd=args.cwd,
            engine_name="aicloud",
            progress_bar=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
        )
    except PapermillExecutionError as e:
        where = f"cell {e.exec_count}" if e.exec_count else f"cell #{e.cell_index}"
        write_reason(f"{where} raised {e.ename}: {e.evalue}")
        print(f"[aicloud] {where} raised {e.ename}: {e.evalue}", file=sys.stderr)
        code = 1
    if output.exists():
        export_html(output, Path(args.html))
    return code


if __name__ == "__main__":
    sys.exit(main())
