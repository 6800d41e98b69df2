"""The torch DDP example notebook runs, with papermill, against a real server."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "train_torch_ddp.ipynb"


def test_torch_ddp_notebook(live_server, monkeypatch, tmp_path):
    # The kernel inherits this process's environment: the client discovers the server from it.
    monkeypatch.setenv("AICLOUD_URL", live_server.url)
    monkeypatch.setenv("AICLOUD_TOKEN", live_server.token)
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(executed),
        kernel_name="python3",
        cwd=str(live_server.root_dir),
        progress_bar=False,
        execution_timeout=240,
    )
    notebook = nbformat.read(executed, as_version=4)
    text = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    for rank in (0, 1):
        assert f"[rank{rank}]:step 15 loss" in text
    assert "succeeded - exited with code 0" in text
    assert "progress: {'step': 20, 'total': 20, 'fraction': 1.0}" in text
    with live_server.api() as api:
        (job,) = api.get("jobs").json()["jobs"]
    assert job["status"] == "succeeded" and job["name"] == "ddp-demo"
    assert (live_server.data_dir / "runs" / job["id"] / "checkpoints" / "model.pt").is_file()
