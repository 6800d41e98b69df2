"""A real ``jupyter lab`` with aicloud and a Playwright browser on Debian's chromium.

Used by the sidebar's browser tests (``tests/test_lab_*.py``). Needs ``/usr/bin/chromium``
(``apt-get install -y chromium``) or ``$CHROMIUM_PATH``; Playwright downloads nothing.
Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import free_port, wait_for

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SIDEBAR = "#aicloud-sidebar"


@dataclass
class Lab:
    """A running ``jupyter lab``: its URL (with the base URL), token, root and API client."""

    url: str
    token: str
    root: Path
    api: httpx.Client
    log: Path


@contextmanager
def running_lab(
    tmp: Path, base_url: str = "/", token: str = "lab-token-0123456789"
) -> Iterator[Lab]:
    """Start ``jupyter lab`` under ``base_url`` and wait until the aicloud API answers."""
    root, home, port = tmp / "root", tmp / "home", free_port()
    root.mkdir(parents=True)
    for name in ("config/labconfig", "runtime"):
        (home / name).mkdir(parents=True)
    # no "get notified about Jupyter news?" toast over the screenshots
    (home / "config/labconfig/page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}'
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    for name in ("AICLOUD_URL", "AICLOUD_TOKEN", "AICLOUD_WIDGETS", "JPY_SESSION_NAME"):
        env.pop(name, None)  # kernels discover this lab server from its runtime file
    log_path = tmp / "lab.log"
    log = open(log_path, "wb")  # noqa: SIM115
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
            f"--ServerApp.base_url={base_url}",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={token}",
            f"--AICloudApp.data_dir={tmp / 'data'}",
            "--AICloudApp.notebook_pool_size=0",
            "--LabApp.news_url=None",
            "--LocalBackend.cancel_grace_seconds=1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}{base_url}"
    api = httpx.Client(
        base_url=f"{url}aicloud/api/v1/", headers={"Authorization": f"token {token}"}, timeout=60
    )

    def ready() -> bool:
        try:
            return api.get("status").status_code == 200
        except httpx.TransportError:
            assert process.poll() is None, log_path.read_text()
            return False

    try:
        wait_for(ready, timeout=90, interval=0.25)
        yield Lab(url=url, token=token, root=root, api=api, log=log_path)
    finally:
        active = api.get("jobs", params={"status": ["queued", "starting", "running"]})
        for job in active.json()["jobs"] if active.status_code == 200 else []:
            api.post(f"jobs/{job['id']}/cancel")
        api.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextmanager
def browser_page() -> Iterator[Page]:
    """A chromium page (1400x900) that records the browser console for failure messages."""
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def open_sidebar(page: Page, lab: Lab, path: str = "") -> None:
    """Open JupyterLab (at ``path``, e.g. ``tree/x.ipynb``) and the aicloud sidebar."""
    page.goto(f"{lab.url}lab/{path}?token={lab.token}")
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="aicloud-sidebar"]')
    tab.wait_for(timeout=90_000)
    jobs = page.locator(SIDEBAR).get_by_role("tab", name="Jobs")
    # JupyterLab restores the saved layout asynchronously: a click that lands just before the
    # restorer opens the panel closes it again. Look, click if closed, and look again.
    for _ in range(5):
        if not page.locator(SIDEBAR).is_visible():
            tab.click()
        try:
            jobs.wait_for(timeout=10_000)
            return
        except PlaywrightTimeoutError:
            continue
    jobs.wait_for()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under tests/artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
