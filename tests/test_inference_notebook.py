"""``notebooks/train_then_serve.ipynb`` runs with nbclient, in a real kernel, against a real
aicloud server: train, save, serve, predict, batch-score, stop."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.inference_models import cancel_active_jobs

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "train_then_serve.ipynb"


def test_train_then_serve_notebook(live_server, monkeypatch):
    # The kernel inherits this environment: the client finds the server from it.
    monkeypatch.setenv("AICLOUD_URL", live_server.url)
    monkeypatch.setenv("AICLOUD_TOKEN", live_server.token)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    try:
        NotebookClient(
            notebook,
            timeout=240,
            kernel_name="python3",
            resources={"metadata": {"path": str(live_server.root_dir)}},
        ).execute()
    finally:
        cancel_active_jobs(live_server)  # the serve job, if a cell failed before the last
    text = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "serving 'churn' at http://127.0.0.1:" in text
    assert "served predictions equal the in-process ones" in text
    assert "batch scores equal the in-process ones: 1000 rows" in text
    assert text.rstrip().endswith("cancelled")
    with live_server.api() as api:
        jobs = {job["name"]: job for job in api.get("jobs").json()["jobs"]}
    assert jobs["churn"]["status"] == "cancelled" and jobs["churn"]["kind"] == "serve"
    assert jobs["churn-scores"]["status"] == "succeeded"
