"""The JobMonitor in a real JupyterLab, driven by Playwright on Debian's chromium.

A notebook launches a job with ``%%aicloud train``, once waiting (the cell runs until the job
ends; it awaits in a thread, so the kernel still handles the widget's messages) and once with
``--no-wait`` (the kernel goes idle); the test watches the monitor render the running job and
its progress and the live curve of its loss grow, clicks Cancel, and checks the job was
cancelled through the API. The screenshot is kept in ``tests/artifacts/`` (git-ignored). Needs
``/usr/bin/chromium`` (``apt-get install -y chromium``); no browser is downloaded.
"""

from __future__ import annotations

import contextlib
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.lab_helpers import ARTIFACTS, browser_page, running_lab

TOKEN = "browser-token-0123456789"
CELL = (
    "%%aicloud train --framework none {mode} --name browser-job\n"
    "import time\n"
    "from aicloud import runtime\n"
    "for i in range(1, 601):\n"
    "    print('tick', i, flush=True)\n"
    "    runtime.report(step=i, total=600, loss=1 / i)\n"
    "    time.sleep(0.2)"
)


@pytest.fixture(params=["--wait", "--no-wait"])
def lab(tmp_path, request):
    """A real ``jupyter lab`` with aicloud, and a notebook that launches a job."""
    with running_lab(tmp_path, token=TOKEN) as lab:
        lab.mode = request.param
        cell = CELL.format(mode=request.param)
        notebook = new_notebook(cells=[new_code_cell("%load_ext aicloud"), new_code_cell(cell)])
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
            # waiting, the log goes to the cell under the monitor; otherwise into the monitor
            log = monitor if lab.mode == "--no-wait" else page.locator(".jp-OutputArea")
            expect(log.get_by_text("tick 3").first).to_be_visible(timeout=30_000)
            # the live curve: JupyterLab's Vega renderer draws the reported loss, and it grows
            chart = monitor.locator(".aicloud-metrics-curve .vega-embed")
            line = chart.locator("svg .mark-line path").first
            expect(line).to_be_visible(timeout=30_000)
            expect(chart.locator("svg").get_by_text("step", exact=True)).to_be_visible()
            drawn = line.get_attribute("d")
            expect(line).not_to_have_attribute("d", drawn, timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / f"job_monitor_running{lab.mode}.png"))

            monitor.locator(".aicloud-cancel").click()
            expect(monitor.locator(".aicloud-status")).to_have_text("cancelled", timeout=60_000)
            expect(monitor.locator(".aicloud-cancel")).to_be_disabled()
            if lab.mode == "--wait":  # the cell ends with the job, as a failure
                expect(page.get_by_text(re.compile(r"aicloud: job \S+ cancelled"))).to_be_visible(
                    timeout=30_000
                )
            expect(
                page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            ).to_have_count(1, timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / f"job_monitor_cancelled{lab.mode}.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"job_monitor_failure{lab.mode}.png"))
            outputs = page.locator(".jp-OutputArea").all_inner_texts()
            raise AssertionError(f"cell outputs: {outputs}") from None

    (job,) = lab.api.get("jobs", params={"limit": 5}).json()["jobs"]
    assert job["name"] == "browser-job" and job["status"] == "cancelled"
    assert job["spec"]["origin"]["notebook"].endswith("monitor.ipynb")
    assert job["spec"]["origin"]["cell_id"]  # JupyterLab sends the cell's id
    assert (ARTIFACTS / f"job_monitor_cancelled{lab.mode}.png").stat().st_size > 10_000
