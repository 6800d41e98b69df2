"""The JobMonitor in a real JupyterLab, driven by Playwright on Debian's chromium.

A notebook launches a job with ``%%aicloud train --no-wait`` (the kernel stays idle, so the
widget's Cancel button is live); the test watches the monitor render the running job and its
progress, clicks Cancel, and checks the job was cancelled through the API. The screenshot is
kept in ``tests/artifacts/`` (git-ignored). Needs ``/usr/bin/chromium``
(``apt-get install -y chromium``); no browser is downloaded.
"""

from __future__ import annotations

import contextlib

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.lab_helpers import ARTIFACTS, browser_page, running_lab

TOKEN = "browser-token-0123456789"
CELL = (
    "%%aicloud train --framework none --no-wait --name browser-job\n"
    "import time\n"
    "from aicloud import runtime\n"
    "for i in range(1, 601):\n"
    "    print('tick', i, flush=True)\n"
    "    runtime.report(step=i, total=600, loss=1 / i)\n"
    "    time.sleep(0.2)"
)


@pytest.fixture
def lab(tmp_path):
    """A real ``jupyter lab`` with aicloud, and a notebook that launches a job."""
    with running_lab(tmp_path, token=TOKEN) as lab:
        notebook = new_notebook(cells=[new_code_cell("%load_ext aicloud"), new_code_cell(CELL)])
        notebook.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nbformat.write(notebook, lab.root / "monitor.ipynb")
        yield lab


def test_job_monitor_renders_and_cancels(lab):
    ARTIFACTS.mkdir(exist_ok=True)
    with browser_page() as page:
        try:
            page.goto(f"{lab.url}lab/tree/monitor.ipynb?token={TOKEN}")
            page.locator(".jp-Notebook").wait_for(timeout=90_000)
            select = page.get_by_role("button", name="Select", exact=True)
            with contextlib.suppress(PlaywrightTimeout):  # JupyterLab may ask which kernel
                select.click(timeout=5_000)
            expect(
                page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            ).to_have_count(1, timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()

            monitor = page.locator(".aicloud-job-monitor")
            expect(monitor).to_be_visible(timeout=90_000)
            expect(monitor.locator(".aicloud-status")).to_have_text("running", timeout=60_000)
            expect(monitor.locator(".widget-label").filter(has_text="step ")).to_be_visible(
                timeout=60_000
            )
            expect(monitor.get_by_text("tick 3")).to_be_visible(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "job_monitor_running.png"))

            monitor.locator(".aicloud-cancel").click()
            expect(monitor.locator(".aicloud-status")).to_have_text("cancelled", timeout=60_000)
            expect(monitor.locator(".aicloud-cancel")).to_be_disabled()
            page.screenshot(path=str(ARTIFACTS / "job_monitor_cancelled.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "job_monitor_failure.png"))
            outputs = page.locator(".jp-OutputArea").all_inner_texts()
            raise AssertionError(f"cell outputs: {outputs}") from None

    (job,) = lab.api.get("jobs", params={"limit": 5}).json()["jobs"]
    assert job["name"] == "browser-job" and job["status"] == "cancelled"
    assert job["spec"]["origin"]["notebook"].endswith("monitor.ipynb")
    assert job["spec"]["origin"]["cell_id"]  # JupyterLab sends the cell's id
    assert (ARTIFACTS / "job_monitor_cancelled.png").stat().st_size > 10_000
