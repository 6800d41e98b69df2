"""A real local JupyterHub for the tests: spawner_config/jupyterhub_config.py plus a test overlay.

The hub runs with configurable-http-proxy (from ``.venv/node``, installed by ``make setup``),
the aicloud service and the local spawner, on free loopback ports, with its state in a
temporary directory. A test-only service ``test-admin`` holds a known token with the scopes
needed to create users' tokens and start and stop their servers.

Two JupyterHub versions run: the venv's own (6.x) and 5.5 (what z2jh ships). 5.5 is an overlay
made by ``make hub-5.5``: ``pip install --no-deps --target .venv/hub-5.5 jupyterhub==5.5.*``,
put first on ``PYTHONPATH`` for the hub, and so (through ``Spawner.env_keep``) for the proxy's
siblings: the aicloud service, the culler and every ``jupyterhub-singleuser``. The overlay holds
its own data files (``share/jupyterhub``: templates and static files), which JupyterHub finds by
walking up from its package. ``LocalHub.start`` checks that the hub's API reports the version
asked for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jupyterhub
import psutil

from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
MAIN_CONFIG = REPO / "spawner_config" / "jupyterhub_config.py"
JUPYTERHUB = str(Path(sys.executable).with_name("jupyterhub"))
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
VENV_HUB = ".".join(jupyterhub.__version__.split(".")[:2])  # the venv's own JupyterHub
#: JupyterHub versions the real-hub tests run against -> the overlay that provides it
#: (None: the venv's own). ``make hub-5.5`` makes the 5.5 overlay.
HUB_OVERLAYS: dict[str, Path | None] = {
    VENV_HUB: None,
    "5.5": Path(sys.prefix) / "hub-5.5",
}
HUB_VERSIONS = tuple(HUB_OVERLAYS)

OVERLAY = """
load_subconfig({main!r})
groups = dict(c.JupyterHub.load_groups)
groups.update({groups!r})
c.JupyterHub.load_groups = groups
for service in c.JupyterHub.services:
    if service["name"] == "aicloud":
        service["command"] += {service_args!r}
c.JupyterHub.services.append({{"name": "test-admin", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "test-admin",
    "services": ["test-admin"],
    "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"],
}})
c.JupyterHub.last_activity_interval = 1
{extra}
"""

SERVICE_TEST_ARGS = [
    "--Scheduler.allow_seconds=True",
    "--Scheduler.tick_interval=0.1",
    "--JobManager.poll_interval=0.05",
    "--LocalBackend.cancel_grace_seconds=1",
    "--AICloudApp.notebook_pool_size=0",
]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class LocalHub:
    """A running local hub; ``url`` is the proxy's public URL."""

    state: Path
    groups: dict = field(default_factory=dict)
    admins: str = "boss"
    extra_config: str = ""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)
    hub_version: str = VENV_HUB  # a key of HUB_OVERLAYS
    sigint_ignored: bool = False  # start as a shell's background job would (SIGINT ignored)
    #: AICLOUD_HUB_USERS: "shared" (one Unix account for all; what most hub tests need) or
    #: "system" (a Unix user per hub user, as ``make up`` as root; tests/test_isolation.py).
    users: str = "shared"

    @property
    def overlay(self) -> Path | None:
        """Where this hub's JupyterHub comes from, when not the venv's own."""
        return HUB_OVERLAYS[self.hub_version]

    @property
    def data_files(self) -> Path:
        """The ``share/jupyterhub`` (templates, static files) this hub should serve from."""
        return (self.overlay or Path(sys.prefix)) / "share" / "jupyterhub"

    def _overlay_env(self) -> dict[str, str]:
        overlay = self.overlay
        if overlay is None:
            return {}
        if not (overlay / "jupyterhub" / "__init__.py").exists():
            raise RuntimeError(
                f"JupyterHub {self.hub_version} is not installed in {overlay}: run `make hub-5.5`"
            )
        path = os.environ.get("PYTHONPATH", "")
        return {"PYTHONPATH": os.pathsep.join(filter(None, [str(overlay), path]))}

    @property
    def url(self) -> str:
        """The hub's public URL (the proxy)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> LocalHub:
        """Write the overlay config, start ``jupyterhub``, wait until its API answers."""
        self.state.mkdir(parents=True, exist_ok=True)
        overlay = self.state / "test_config.py"
        overlay.write_text(
            OVERLAY.format(
                main=str(MAIN_CONFIG),
                groups=self.groups,
                service_args=SERVICE_TEST_ARGS,
                token=ADMIN_TOKEN,
                extra=textwrap.dedent(self.extra_config),
            )
        )
        self.service_port = free_port()
        self.env = {
            **os.environ,
            **self.env,
            "AICLOUD_HUB_STATE": str(self.state),
            "AICLOUD_HUB_PORT": str(self.port),
            "AICLOUD_HUB_API_PORT": str(free_port()),
            "AICLOUD_PROXY_API_PORT": str(free_port()),
            "AICLOUD_SERVICE_PORT": str(self.service_port),
            "AICLOUD_HUB_ADMINS": self.admins,
            "AICLOUD_HUB_USERS": self.users,
            **self._overlay_env(),
        }
        self.log_path = self.state / "hub.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [JUPYTERHUB, "-f", str(overlay)],
            cwd=self.state,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_ignore_sigint if self.sigint_ignored else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited:\n{self.log()}")
            try:
                if self.admin().get("/hub/api/").status_code == 200 and self._service_up():
                    return self._checked_version()
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the hub did not start:\n{self.log()}")

    def _checked_version(self) -> LocalHub:
        """``self``, once the running hub is the version asked for (else it is stopped)."""
        with self.admin() as admin:
            running = admin.get("/hub/api/").json()["version"]
        if running.split(".")[:2] != self.hub_version.split("."):
            self.stop()
            raise RuntimeError(f"asked for JupyterHub {self.hub_version}, {running} runs")
        return self

    def _service_up(self) -> bool:
        try:
            response = httpx.get(f"{self.url}/services/aicloud/aicloud/api/v1/status", timeout=5)
        except httpx.TransportError:
            return False
        return response.status_code in (401, 403)  # up, and refusing anonymous callers

    def log(self) -> str:
        """The hub's output so far (hub, proxy, service and servers)."""
        return self.log_path.read_text(errors="replace")

    def admin(self) -> httpx.Client:
        """A client with the test-admin service's token."""
        return self.client(ADMIN_TOKEN)

    def client(self, token: str) -> httpx.Client:
        """A client of the public URL authenticated with ``token``."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {token}"}, timeout=60
        )

    def user_token(self, name: str) -> str:
        """A new API token of user ``name`` (created on first use by the hub)."""
        with self.admin() as admin:
            admin.post("/hub/api/users", json={"usernames": [name]})
            response = admin.post(f"/hub/api/users/{name}/tokens", json={"note": "test"})
            response.raise_for_status()
            return response.json()["token"]

    def spawn(self, name: str, options: dict | None = None, timeout: float = 90) -> httpx.Response:
        """Start ``name``'s server and wait until it is ready; returns the spawn response."""
        with self.admin() as admin:
            admin.post("/hub/api/users", json={"usernames": [name]})  # 409 if there already
            response = admin.post(f"/hub/api/users/{name}/server", json=options or {})
            if response.status_code >= 400:
                return response
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                server = admin.get(f"/hub/api/users/{name}").json()["servers"].get("", {})
                if server.get("ready"):
                    return response
                time.sleep(0.1)
        raise TimeoutError(f"{name}'s server did not become ready:\n{self.log()}")

    def stop_server(self, name: str, timeout: float = 60) -> None:
        """Stop ``name``'s server and wait until it is gone."""
        with self.admin() as admin:
            admin.delete(f"/hub/api/users/{name}/server")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not admin.get(f"/hub/api/users/{name}").json()["servers"]:
                    return
                time.sleep(0.1)
        raise TimeoutError(f"{name}'s server did not stop")

    def stop(self) -> list[str]:
        """Stop the hub (SIGTERM: it stops servers, the service and the proxy); then end
        whatever of its processes outlived it, so that no test leaves servers behind.
        Returns the command lines of those (none when the hub cleaned up after itself)."""
        outlived: list[str] = []
        if self.process is not None and self.process.poll() is None:
            started = psutil.Process(self.process.pid).children(recursive=True)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            left = [p for p in started if p.is_running()]
            for process in left:
                with contextlib.suppress(psutil.NoSuchProcess):
                    outlived.append(" ".join(process.cmdline()))
                    process.terminate()
            _, alive = psutil.wait_procs(left, timeout=10)
            for process in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
        proxy_pid = self.state / "proxy.pid"
        if proxy_pid.exists():  # a proxy left behind by a hub that did not stop cleanly
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(proxy_pid.read_text().strip()), signal.SIGTERM)
        self._log.close()
        return outlived
