"""The JobMonitor in a real JupyterLab, driven by Playwright on Debian's chromium.

A notebook launches a job with ``%%aicloud train --no-wait`` (the kernel stays idle, so the
widget's Cancel button is live); the test watches the monitor render the running job and its
progress, clicks Cancel, and checks the job was cancelled through the API. The screenshot is
kept in ``tests/artifacts/`` (git-ignored). Needs ``/usr/bin/chromium``
(``apt-get install -y chromium``); no browser is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect, sync_playwright

from tests.conftest import free_port, wait_for

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
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
    """A real ``jupyter lab`` with aicloud (the job service and the widgets extension)."""
    root, home, port = tmp_path / "root", tmp_path / "home", free_port()
    root.mkdir()
    for name in ("config", "data", "runtime"):
        (home / name).mkdir(parents=True)
    notebook = new_notebook(cells=[new_code_cell("%load_ext aicloud"), new_code_cell(CELL)])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(notebook, root / "monitor.ipynb")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    for name in ("AICLOUD_URL", "AICLOUD_TOKEN", "AICLOUD_WIDGETS", "JPY_SESSION_NAME"):
        env.pop(name, None)  # the kernel discovers the lab server from its runtime file
    log = open(tmp_path / "lab.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={TOKEN}",
            f"--AICloudApp.data_dir={tmp_path / 'data'}",
            "--AICloudApp.notebook_pool_size=0",
            "--LabApp.news_url=None",
            "--LocalBackend.cancel_grace_seconds=1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    api = httpx.Client(
        base_url=f"{url}/aicloud/api/v1/", headers={"Authorization": f"token {TOKEN}"}
    )

    def ready():
        try:
            return api.get("status").status_code == 200
        except httpx.TransportError:
            assert process.poll() is None, (tmp_path / "lab.log").read_text()
            return False

    try:
        wait_for(ready, timeout=90, interval=0.25)
        yield url, api
    finally:
        for job in api.get("jobs", params={"status": ["queued", "running"]}).json()["jobs"]:
            api.post(f"jobs/{job['id']}/cancel")
        api.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_job_monitor_renders_and_cancels(lab):
    url, api = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(f"{url}/lab/tree/monitor.ipynb?token={TOKEN}")
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
        finally:
            browser.close()

    (job,) = api.get("jobs", params={"limit": 5}).json()["jobs"]
    assert job["name"] == "browser-job" and job["status"] == "cancelled"
    assert job["spec"]["origin"]["notebook"].endswith("monitor.ipynb")
    assert job["spec"]["origin"]["cell_id"]  # JupyterLab sends the cell's id
    assert (ARTIFACTS / "job_monitor_cancelled.png").stat().st_size > 10_000
