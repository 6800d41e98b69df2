"""Every notebook in notebooks/ passes nbval in lax mode against a real service.

The notebooks are copied into the server's root directory (their kernels start there, so the
relative paths of their job specs resolve as they do under ``make up``), and a child pytest
runs ``--nbval-lax`` over all of them: a notebook added to notebooks/ is checked with no change
here. Lax mode runs every cell, fails on any error, and compares only the outputs of cells
marked ``# NBVAL_CHECK_OUTPUT``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def test_notebooks_pass_nbval_lax(live_server, tmp_path):
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks, "notebooks/ holds no notebook"
    for notebook in notebooks:
        shutil.copy(notebook, live_server.root_dir / notebook.name)
    copies = [str(live_server.root_dir / notebook.name) for notebook in notebooks]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--rootdir={live_server.root_dir}",
            "-o",
            "addopts=",
            "--nbval-cell-timeout=240",
            *copies,
        ],
        env={**live_server.env, "JPY_SESSION_NAME": ""},
        cwd=live_server.root_dir,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, summary
    # Every notebook ran: nbval names each in its collection (one item per code cell).
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--rootdir={live_server.root_dir}",
            "-o",
            "addopts=",
            *copies,
        ],
        cwd=live_server.root_dir,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for notebook in notebooks:
        assert f"{notebook.name}::Cell 0" in collected, collected
    cells = sum(1 for line in collected.splitlines() if ".ipynb::Cell" in line)
    assert summary.startswith(f"{cells} passed"), (summary, cells)
