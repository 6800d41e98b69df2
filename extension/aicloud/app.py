"""The standalone home of the job service: a Jupyter server extension."""

from __future__ import annotations

import asyncio
import getpass
import os
from importlib.metadata import entry_points
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Int, List, Unicode, default, validate

from aicloud._version import __version__
from aicloud.backends import Backend
from aicloud.handlers import default_handlers
from aicloud.launchers import notebook_pool
from aicloud.launchers.notebook import POOL_ENV
from aicloud.manager import JobManager
from aicloud.notify import Notifier
from aicloud.scheduler import Scheduler
from aicloud.store import JobStore, make_engine, migrate

BACKEND_GROUP = "aicloud.backends"


def load_backend_class(name: str) -> type[Backend]:
    """The backend class registered under ``name`` in the ``aicloud.backends`` group."""
    found = entry_points(group=BACKEND_GROUP, name=name)
    if not found:
        known = ", ".join(sorted(ep.name for ep in entry_points(group=BACKEND_GROUP)))
        raise ValueError(f"unknown aicloud backend {name!r}; installed: {known}")
    return next(iter(found)).load()


class AICloudApp(ExtensionApp):
    """Hosts the job service inside a Jupyter server (JupyterLab on a laptop, or a hub user)."""

    name = "aicloud"
    description = "aicloud: training, inference and notebook jobs launched from notebooks."
    version = __version__
    load_other_extensions = True

    data_dir = Unicode(
        config=True,
        help="Where aicloud keeps its database and run directories "
        "(default: <jupyter data dir>/aicloud).",
    )
    db_url = Unicode(
        config=True,
        help="SQLAlchemy URL of the job store: sqlite:///... (default, under data_dir) or "
        "postgresql://user@host/db for a store shared by several servers.",
    )
    backends = List(
        Unicode(),
        default_value=["local"],
        config=True,
        help="Backends to enable, by their name in the 'aicloud.backends' entry-point group.",
    )
    max_body_bytes = Int(
        1024 * 1024, config=True, help="Largest request body the REST API accepts, in bytes."
    )
    notebook_pool_size = Int(
        2,
        config=True,
        help="Warm notebook runners kept ready: processes that have imported papermill and "
        "started a fresh python3 kernel, so that a notebook job starts in a fraction of a "
        "second. Each serves one run, then exits and is replaced; kernels are never shared. "
        "0 disables the pool (each notebook job then starts its own runner).",
    )
    notebook_pool_delay = Float(
        2.0,
        config=True,
        help="Seconds after the server starts before the notebook pool starts warming up, so "
        "that it does not slow the server's own start.",
    )

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return os.path.join(jupyter_data_dir(), "aicloud")

    @default("db_url")
    def _default_db_url(self) -> str:
        return "sqlite:///" + os.path.join(self.data_dir, "aicloud.db")

    @validate("backends")
    def _check_backends(self, proposal):
        for name in proposal["value"]:
            load_backend_class(name)
        return proposal["value"]

    def initialize_settings(self) -> None:
        """Open (and migrate) the store, build the backends and the job manager."""
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        self._pool_socket = None
        self._pool = None
        self._pool_timer = None
        engine = make_engine(self.db_url)
        migrate(engine)
        backends = {name: load_backend_class(name)(parent=self) for name in self.backends}
        if self.notebook_pool_size > 0 and getattr(backends.get("local"), "run_as_owner", False):
            # The pool's kernels run as the service: never for jobs that run as their owner.
            self.log.warning("aicloud: no warm notebook pool while jobs run as their owners")
            self.notebook_pool_size = 0
        if self.notebook_pool_size > 0:
            self._pool_socket = notebook_pool.socket_path(self.data_dir)
        manager = JobManager(
            parent=self,
            backends=backends,
            service_env=self._service_env(),
            store=JobStore(engine),
            root_dir=str(Path(self.serverapp.root_dir).expanduser()),
            runs_dir=os.path.join(self.data_dir, "runs"),
            log=self.log,
        )
        scheduler = Scheduler(
            parent=self, manager=manager, notifier=Notifier(parent=self, log=self.log), log=self.log
        )
        manager.launch_gates.append(scheduler.launch_wait_reason)
        self.settings.update(
            aicloud_manager=manager,
            aicloud_scheduler=scheduler,
            aicloud_owner=getpass.getuser(),
            aicloud_mode="standalone",
            aicloud_max_body_bytes=self.max_body_bytes,
        )
        self.log.info(
            "aicloud %s: store %s, backends %s",
            __version__,
            engine.url.render_as_string(hide_password=True),
            ", ".join(backends),
        )

    def _service_env(self) -> dict[str, str]:
        """Variables that let a job (a scheduled notebook, say) call this service back."""
        env = {"AICLOUD_URL": self.serverapp.connection_url}
        token = getattr(self.serverapp.identity_provider, "token", "")
        if token:
            env["AICLOUD_TOKEN"] = token
        if self._pool_socket is not None:  # read by the notebook launcher, not passed on
            env[POOL_ENV] = str(self._pool_socket)
        return env

    def _start_pool(self) -> None:
        """Start the warm notebook pool (a detached process); notebook jobs work without it."""
        self._pool_timer = None
        try:
            self._pool = notebook_pool.start(
                self._pool_socket, self.notebook_pool_size, dict(os.environ)
            )
        except OSError as e:
            self.log.warning("aicloud: no notebook pool at %s: %s", self._pool_socket, e)
            return
        self.log.info(
            "aicloud: notebook pool of %d on %s (pid %d)",
            self.notebook_pool_size,
            self._pool_socket,
            self._pool.pid,
        )

    async def _stop_pool(self) -> None:
        """Stop the pool: idle runners end, runs in progress finish."""
        if getattr(self, "_pool_timer", None) is not None:
            self._pool_timer.cancel()
            self._pool_timer = None
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            await asyncio.to_thread(notebook_pool.stop, pool)

    def initialize_handlers(self) -> None:
        """Register the REST API."""
        self.handlers.extend(default_handlers)

    async def _start_jupyter_server_extension(self, serverapp) -> None:
        """Start following jobs once the server's event loop runs."""
        manager = self.settings.get("aicloud_manager")
        if manager is not None:  # None when initialize_settings failed (logged by the server)
            manager.start()
            self.settings["aicloud_scheduler"].start()
            if self._pool_socket is not None:
                loop = asyncio.get_running_loop()
                self._pool_timer = loop.call_later(self.notebook_pool_delay, self._start_pool)

    async def stop_extension(self) -> None:
        """Stop following jobs and the notebook pool; the jobs themselves keep running."""
        await self._stop_pool()
        manager = self.settings.get("aicloud_manager")
        if manager is not None:
            await self.settings["aicloud_scheduler"].stop()
            await manager.stop()
