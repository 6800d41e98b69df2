"""The parameterised report notebook runs as an aicloud notebook job, as the docs show."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from tests.conftest import run_cli

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "report_parameterized.ipynb"


def test_report_runs_as_a_notebook_job_with_a_plot(live_server, tmp_path):
    shutil.copy(NOTEBOOK, live_server.root_dir / NOTEBOOK.name)
    result = run_cli(
        "run",
        NOTEBOOK.name,
        "-p",
        "region",
        "us",
        "-p",
        "days",
        "30",
        "-p",
        "growth",
        "0.05",
        "--download",
        str(tmp_path / "out"),
        env=live_server.env,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "us: " in result.stdout and "over 30 days" in result.stdout
    executed = nbformat.read(tmp_path / "out" / NOTEBOOK.name, as_version=4)
    images = [
        output
        for cell in executed.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == 1
    assert "<img" in (tmp_path / "out" / "report_parameterized.html").read_text()
    schedule = run_cli(
        "schedule",
        "create",
        NOTEBOOK.name,
        "--cron",
        "0 6 * * 1-5",
        "--tz",
        "Europe/Berlin",
        "-p",
        "region",
        "eu",
        "--json",
        env=live_server.env,
    )
    assert schedule.returncode == 0, schedule.stderr
    wrong = run_cli("run", NOTEBOOK.name, "-p", "days", "many", env=live_server.env)
    assert wrong.returncode == 1 and "parameters.days" in wrong.stderr
