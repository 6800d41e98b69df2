"""The multi-worker TensorFlow example notebook runs, with papermill, against a real server."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "train_tf_multiworker.ipynb"


def outputs(notebook) -> str:
    """All the text that a notebook's code cells printed."""
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def test_tf_multiworker_notebook(live_server, monkeypatch, tmp_path):
    # The kernel inherits this process's environment: the client discovers the server from it.
    monkeypatch.setenv("AICLOUD_URL", live_server.url)
    monkeypatch.setenv("AICLOUD_TOKEN", live_server.token)
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(executed),
        parameters={"steps": 10},
        kernel_name="python3",
        cwd=str(live_server.root_dir),
        progress_bar=False,
        execution_timeout=240,
    )
    text = outputs(nbformat.read(executed, as_version=4))
    assert "found via AICLOUD_URL" in text
    assert "[rank0]:worker 0 of 2, chief: True" in text
    assert "[rank1]:worker 1 of 2, chief: False" in text
    assert "[rank0]:saved " in text and "succeeded" in text
    assert "at step 10" in text
    assert (live_server.root_dir / "train_tf_mwms.py").is_file()
    with live_server.api() as api:
        (job,) = api.get("jobs").json()["jobs"]
    assert job["status"] == "succeeded" and job["framework"] == "tensorflow"
    assert job["spec"]["args"] == ["--steps", "10"]
