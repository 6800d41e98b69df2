"""The local hub in a real browser: log in, start a server, run a ``%aicloud`` cell in JupyterLab,
and find the job and the GPU quota in the aicloud sidebar.

Playwright (from PyPI) drives Debian's chromium (``/usr/bin/chromium``; ``make setup`` installs
it); no browser is downloaded. The screenshots are kept in ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect, sync_playwright

from tests.conftest import wait_for
from tests.hub_helpers import LocalHub

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SIDEBAR = "#aicloud-sidebar"
USER = "lena"
EXAMPLE = "train_torch_ddp.ipynb"  # from notebooks/, copied into every new home
CELLS = [
    "%load_ext aicloud",
    "%%aicloud train --framework none --no-wait --name hub-browser-job\nprint('hello from', 42)",
    "%aicloud jobs --all",
]


@pytest.fixture
def hub(tmp_path):
    """A local hub whose user ``lena`` (students: GPU quota 1) finds a notebook in her home."""
    home = tmp_path / "hub" / "users" / USER
    home.mkdir(parents=True)
    notebook = new_notebook(cells=[new_code_cell(source) for source in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, home / "hub.ipynb")
    env = {name: "" for name in ("AICLOUD_URL", "AICLOUD_TOKEN")}
    local = LocalHub(
        state=tmp_path / "hub",
        groups={"students": {"users": [USER]}},
        extra_config='c.Spawner.args += ["--LabApp.news_url=None"]',
        env=env,
    )
    local.start()
    yield local
    local.stop()


def test_login_start_server_and_run_an_aicloud_cell(hub):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(f"{hub.url}/hub/login")
            page.fill("input[name=username]", USER)
            page.fill("input[name=password]", "anything")
            page.locator("input[type=submit], button[type=submit]").first.click()
            # The spawn form offers the catalog's profiles for lena's groups (none: no GPUs).
            select = page.locator("select[name=profile]")
            expect(select).to_be_visible(timeout=60_000)
            assert select.locator("option").all_inner_texts()[0] == "CPU: 2 cores, 8 GiB"
            page.locator("form input[type=submit], form button[type=submit]").first.click()
            page.wait_for_url(f"**/user/{USER}/lab**", timeout=120_000)

            page.goto(f"{hub.url}/user/{USER}/lab/tree/hub.ipynb")
            page.locator(".jp-Notebook").wait_for(timeout=90_000)
            # JupyterLab may ask which kernel to use (the server has the aicloud kernels too).
            choose = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
            with contextlib.suppress(PlaywrightTimeout):
                choose.click(timeout=15_000)
            expect(
                page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            ).to_have_count(1, timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            listing = page.locator(".jp-OutputArea-output").filter(has_text="hub-browser-job")
            expect(listing.last).to_be_visible(timeout=90_000)
            page.screenshot(path=str(ARTIFACTS / "hub_lab_aicloud.png"))

            # The aicloud sidebar lists lena's job and shows her quota, through her server.
            tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="aicloud-sidebar"]')
            if not page.locator(SIDEBAR).is_visible():
                tab.click()
            sidebar = page.locator(SIDEBAR)
            sidebar.get_by_role("tab", name="Jobs").click()
            row = sidebar.locator("li[data-job-id]").filter(has_text="hub-browser-job")
            expect(row).to_have_count(1, timeout=60_000)
            sidebar.get_by_role("tab", name="Resources").click()
            expect(sidebar.locator(".aicloud-gpu-quota")).to_have_text(
                "GPUs in use: 0 of 1 (quota of students) · 0 in servers, 0 in jobs",
                timeout=60_000,
            )
            page.screenshot(path=str(ARTIFACTS / "hub_lab_sidebar.png"))

            # An example notebook of her home (copied at her first spawn), run with the
            # toolbar's "Run as job": papermill runs it from her home, and the torch job it
            # launches finds its script there too, with no cwd anywhere.
            page.goto(f"{hub.url}/user/{USER}/lab/tree/{EXAMPLE}")
            page.locator(".jp-Notebook").wait_for(timeout=90_000)
            with contextlib.suppress(PlaywrightTimeout):
                choose.click(timeout=15_000)
            sidebar = page.locator(SIDEBAR)
            if not sidebar.is_visible():
                tab.click()
            sidebar.get_by_role("tab", name="Jobs").click()
            page.locator(".aicloud-toolbar-aicloud-run:visible").click()
            page.locator(".jp-Dialog").get_by_role("button", name="Run").click()  # the defaults
            view = sidebar.locator(".aicloud-job-view")
            expect(view).to_contain_text(EXAMPLE)
            expect(view.locator(".aicloud-status")).to_have_text("succeeded", timeout=240_000)
            example_job = view.get_attribute("data-job-id")
            page.screenshot(path=str(ARTIFACTS / "hub_lab_run_as_job.png"))
        except Exception as e:
            page.screenshot(path=str(ARTIFACTS / "hub_lab_failure.png"))
            outputs = page.locator(".jp-OutputArea").all_inner_texts()
            raise AssertionError(f"{e}\noutputs: {outputs}\n{hub.log()[-4000:]}") from None
        finally:
            browser.close()

    # The job went to the hub service, owned by lena, and ran.
    with hub.admin() as admin:
        token = admin.post(f"/hub/api/users/{USER}/tokens", json={"note": "check"}).json()["token"]
    lena = hub.client(token)

    def finished():
        jobs = lena.get("/services/aicloud/aicloud/api/v1/jobs").json()["jobs"]
        return [j for j in jobs if j["status"] == "succeeded"]

    jobs = wait_for(lambda: len(finished()) >= 3 and finished(), timeout=60, interval=0.3)
    (job,) = [j for j in jobs if j["name"] == "hub-browser-job"]
    assert job["owner"] == USER
    log = lena.get(f"/services/aicloud/aicloud/api/v1/jobs/{job['id']}/logs").text
    assert "hello from 42" in log
    assert (ARTIFACTS / "hub_lab_aicloud.png").stat().st_size > 10_000
    assert (ARTIFACTS / "hub_lab_sidebar.png").stat().st_size > 10_000
    # The example ran as lena's notebook job from her home, and its torch job too.
    example = lena.get(f"/services/aicloud/aicloud/api/v1/jobs/{example_job}").json()
    assert example["kind"] == "notebook" and example["spec"]["notebook"] == EXAMPLE
    assert example["spec"].get("cwd") is None and example["owner"] == USER
    trains = [j for j in jobs if j["kind"] == "train" and j["owner"] == USER]
    assert trains and all(j["spec"].get("cwd") is None for j in trains)
    assert (hub.state / "users" / USER / "ddp_demo.py").is_file()
