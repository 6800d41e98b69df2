"""Shared fixtures: an in-process Jupyter server (pytest-jupyter) and real server processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from aicloud import ports

pytest_plugins = ["pytest_jupyter.jupyter_server"]

#: Files that must not run beside each other: wall-clock bounds (a fraction of a second),
#: multi-process training, a hub's quota and culling checks. Marked ``serial`` and put in one
#: xdist group, ``serial``: under ``make test`` (``--dist loadgroup``) they run one after
#: another on one worker while the other worker runs the rest (``-m serial`` selects them).
SERIAL_FILES = frozenset(
    {
        "test_event_driven.py",
        "test_hub_service.py",  # quota and culling checks of one hub flaked beside other files
        "test_magics_attach.py",  # a print after a cancelled awaiting cell came back empty once
        "test_runtime_exit.py",
        "test_train_torch.py",
    }
)
SERIAL_GROUP = "serial"

#: Rough seconds per xdist group (a file, or the serial group) from ``--durations`` of a full
#: run. Groups are handed to the workers longest first, so that no long file starts last
#: while the other worker idles; groups not listed count as short and keep their order.
GROUP_SECONDS = {
    SERIAL_GROUP: 370,
    "test_hub_homes.py": 135,
    "test_crash_windows.py": 90,
    "test_isolation.py": 90,
    "test_hub_browser.py": 80,
    "test_job_page_api.py": 80,
    "test_job_page_hub.py": 60,
    "test_usage.py": 55,
    "test_magics_nbval.py": 77,
    "test_schedules_live.py": 68,
    "test_compare_browser.py": 60,
    "test_lab_sidebar.py": 57,
    "test_magics.py": 53,
    "test_crash.py": 45,
    "test_triton_grpc.py": 45,
    "test_lab_wheel.py": 44,
    "test_inference_jobs.py": 43,
    "test_notebook_pool.py": 38,
    "test_schedules.py": 37,
    "test_magics_browser.py": 35,
    "test_hub_shutdown.py": 34,
    "test_disk_full.py": 32,
    "test_cli.py": 31,
    "test_bad_input.py": 29,
    "test_openapi.py": 26,
    "test_inference_notebook.py": 24,
    "test_notebook_jobs.py": 24,
    "test_k8s_emulated.py": 22,
    "test_k8s_emulated_kserve.py": 21,
    "test_train_tensorflow.py": 19,
    "test_jobs_api.py": 18,
    "test_inference_server.py": 16,
    "test_auth.py": 15,
}


def pytest_configure(config):
    """Keep the work queue in collection order (longest group first, see below), not
    xdist's default of most tests first."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def test_group(nodeid: str) -> str:
    """The xdist group of a test id: ``serial`` for the serial files, else its file."""
    tail = nodeid.rsplit("]", 1)[-1]
    if "@" in tail:  # an explicit xdist_group, where xdist's suffix reaches the controller
        return nodeid.rsplit("@", 1)[-1]
    filename = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return SERIAL_GROUP if filename in SERIAL_FILES else filename


@pytest.hookimpl(optionalhook=True)  # without xdist (-p no:xdist) there is no such hook
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` that groups on the controller, by :func:`test_group`.

    xdist's own loadgroup marks a group in the test ids its workers report (``id@group``), but
    under pytest 9 ``item.nodeid`` no longer shows that suffix: every test was its own group,
    a file's tests were spread over both workers (each starting the module's hub or server,
    and each seeing half of a module's tests that build on each other)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FileGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return test_group(nodeid)

    return FileGroupScheduling(config, log)


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the groups
def pytest_collection_modifyitems(config, items):
    """Mark the serial files (group ``serial``); put every other test in an xdist group of
    its own file; order the groups longest first (stable: a file's tests keep their order).

    Under ``--dist loadgroup`` a group's tests then stay on one worker, so module-scoped
    fixtures (a hub per test_hub_*.py module) start once, and an explicit
    ``@pytest.mark.xdist_group`` still wins.
    """
    groups = {}
    for item in items:
        filename = item.path.name
        if filename in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)
            if item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group(SERIAL_GROUP))
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(filename))
        marker = item.get_closest_marker("xdist_group")
        groups[item] = marker.args[0] if marker.args else marker.kwargs.get("name", "")
    items.sort(key=lambda item: -GROUP_SECONDS.get(groups[item], 0))


JUPYTER = str(Path(sys.executable).with_name("jupyter"))
AICLOUD = str(Path(sys.executable).with_name("aicloud"))


@pytest.fixture
def aicloud_data_dir(tmp_path: Path) -> Path:
    """Where the in-process server keeps its database and runs."""
    return tmp_path / "aicloud-data"


@pytest.fixture
def jp_server_config(aicloud_data_dir):
    """Enable aicloud in pytest-jupyter's server, with a short cancel grace."""
    return {
        "ServerApp": {"jpserver_extensions": {"aicloud": True}},
        # No warm notebook pool unless a test asks for one (test_notebook_pool does).
        "AICloudApp": {"data_dir": str(aicloud_data_dir), "notebook_pool_size": 0},
        "LocalBackend": {"cancel_grace_seconds": 1.0},
    }


@pytest.fixture
def jp_serverapp(jp_serverapp, jp_asyncio_loop):
    """pytest-jupyter's server, with extensions started as ``ServerApp._post_start`` does."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    return jp_serverapp


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, below the ephemeral ports that ``bind(0)`` and
    outgoing connections take (a server binds it only seconds later)."""
    return ports.free_port("127.0.0.1")


@dataclass
class LiveServer:
    """A real ``jupyter server`` process with aicloud, on loopback."""

    root_dir: Path
    data_dir: Path
    home: Path
    token: str = "test-token-0123456789"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def env(self) -> dict[str, str]:
        """Environment for the CLI: points at this server."""
        return {**os.environ, "AICLOUD_URL": self.url, "AICLOUD_TOKEN": self.token}

    def start(self) -> LiveServer:
        """Start the server and wait until the aicloud API answers."""
        for name in ("config", "data", "runtime"):
            (self.home / name).mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.home / "config"),
            "JUPYTER_DATA_DIR": str(self.home / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
        }
        self.log = open(self.home / "server.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                JUPYTER,
                "server",
                "--no-browser",
                "--allow-root",
                f"--port={self.port}",
                "--ServerApp.ip=127.0.0.1",
                "--ServerApp.port_retries=0",
                f"--ServerApp.root_dir={self.root_dir}",
                f"--IdentityProvider.token={self.token}",
                f"--AICloudApp.data_dir={self.data_dir}",
                "--LocalBackend.cancel_grace_seconds=1",
                "--AICloudApp.notebook_pool_size=0",
                *self.extra_args,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {(self.home / 'server.log').read_text()}")
            try:
                r = httpx.get(
                    self.url + "aicloud/api/v1/status",
                    headers={"Authorization": f"token {self.token}"},
                )
                if r.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("server did not start")

    def api(self) -> httpx.Client:
        """An HTTP client for the aicloud API of this server."""
        return httpx.Client(
            base_url=self.url + "aicloud/api/v1/",
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
        )

    def stop(self, kill: bool = False) -> None:
        """Stop the server: SIGTERM (graceful), or SIGKILL to simulate a crash."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def live_server_factory(tmp_path):
    """Start real servers sharing one root and data dir; all are stopped at the end."""
    servers: list[LiveServer] = []
    root = tmp_path / "root"
    root.mkdir()

    def start(**kwargs) -> LiveServer:
        server = LiveServer(
            root_dir=root, data_dir=tmp_path / "data", home=tmp_path / "home", **kwargs
        )
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_server(live_server_factory) -> LiveServer:
    """One real ``jupyter server`` with aicloud."""
    return live_server_factory()


@pytest.fixture(scope="module")
def module_live_server(tmp_path_factory) -> LiveServer:
    """One real ``jupyter server`` with aicloud for all the tests of a module that ask for it
    (for tests that neither stop it nor need it empty: they tell their jobs by id)."""
    folder = tmp_path_factory.mktemp("module-server")
    (folder / "root").mkdir()
    server = LiveServer(root_dir=folder / "root", data_dir=folder / "data", home=folder / "home")
    server.start()
    yield server
    server.stop()


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the ``aicloud`` command."""
    return subprocess.run(
        [AICLOUD, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_for(predicate, timeout: float = 30, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


def _postgres_binary(name: str) -> str:
    import glob
    import shutil

    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(f"{name} not found: install PostgreSQL (make setup does)")
    return found


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on loopback for this test session; its SQLAlchemy URL."""
    import shutil
    import tempfile

    # Not under pytest's tmp dir: that is private to root, and PostgreSQL runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="aicloud-postgres-"))
    data = folder / "data"
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(folder, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*as_postgres, _postgres_binary("initdb"), "-D", str(data), "-A", "trust", "-U", "aicloud"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_postgres,
            _postgres_binary("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "log"),
            "-w",
            "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    yield f"postgresql+psycopg://aicloud@127.0.0.1:{port}/postgres"
    subprocess.run(
        [*as_postgres, _postgres_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
        capture_output=True,
    )
    shutil.rmtree(folder, ignore_errors=True)
