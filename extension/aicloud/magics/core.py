"""``%aicloud`` and ``%%aicloud``: dispatch to subcommands, settings, and following a job."""

from __future__ import annotations

import os
import sys

from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Enum

from aicloud.client import AICloudClient
from aicloud.magics.awaiting import transform_without_awaiting
from aicloud.magics.context import connect, service_errors, widget_frontend
from aicloud.magics.errors import JobFailed, MagicError
from aicloud.magics.follow import Follower, PlainDisplay
from aicloud.magics.registry import SUBCOMMANDS, overview, wants_help

LAST_JOB = "_aicloud_last_job"  # the id of the job a cell launched or attached to last


class CellDisplay:
    """Wait mode with widgets: the monitor shows status and progress, the log goes to the cell."""

    def __init__(self, monitor):
        self.monitor = monitor

    def lines(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def update(self, job: dict, metrics: dict) -> None:
        self.monitor.update(job, metrics)

    def note(self, text: str) -> None:
        self.monitor.note(text)


class SessionHistory:
    """The cells this session ran, as Python: the stored history before the extension was
    loaded, then every cell that ran to the end (papermill and nbval run cells without storing
    them in the history, so the ``post_run_cell`` event is the reliable record)."""

    def __init__(self, shell):
        self.shell = shell
        stored = list(shell.user_ns.get("In", [])) if shell is not None else []
        self._cells: list[str] = [c for c in stored[1:] if c]
        if shell is not None:
            shell.events.register("post_run_cell", self._record)

    def _record(self, result) -> None:
        if result.success and result.info.raw_cell.strip():
            self._cells.append(transform_without_awaiting(self.shell, result.info.raw_cell))

    def cells(self) -> list[str]:
        """The cells run before the current one."""
        return list(self._cells)


@magics_class
class AICloudMagics(Magics):
    """The ``%aicloud`` line magic and the ``%%aicloud`` cell magic.

    Settings (``%config AICloudMagics.on_interrupt = "cancel"``) are plain traits.
    """

    on_interrupt = Enum(
        ["detach", "cancel"],
        default_value=os.environ.get("AICLOUD_ON_INTERRUPT", "detach"),
        config=True,
        help="What a kernel interrupt does to the job a cell waits for: detach (it keeps "
        "running; %aicloud attach follows it again) or cancel it.",
    )
    widgets = Enum(
        ["auto", "on", "off"],
        default_value="auto",
        config=True,
        help="Show the JobMonitor widget: auto (when the frontend renders widgets), on, off.",
    )

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._client: AICloudClient | None = None
        self.history = SessionHistory(shell)

    @property
    def client(self) -> AICloudClient:
        """A client of the service, found on first use (and again after a failure)."""
        if self._client is None:
            self._client = connect()
        return self._client

    def call(self, method: str, *args, **kwargs):
        """``client.method(...)`` with failures as one line."""
        client = self.client
        with service_errors(client):
            return getattr(client, method)(*args, **kwargs)

    @line_cell_magic
    def aicloud(self, line: str, cell: str | None = None):
        """Launch and follow aicloud jobs; ``%aicloud --help`` lists the subcommands."""
        name, _, rest = line.strip().partition(" ")
        if name in ("", "-h", "--help", "help"):
            print(overview())
            return None
        sub = SUBCOMMANDS.get(name)
        if sub is None:
            known = ", ".join(sorted(SUBCOMMANDS))
            raise MagicError(f"unknown subcommand {name!r}; known: {known} (see %aicloud --help)")
        if wants_help(rest):
            print(sub.argument_parser().format_help().removeprefix("::\n\n"))
            return None
        if sub.cell and cell is None:
            raise MagicError(f"{name} is a cell magic: put %%aicloud {name} on a cell's first line")
        if not sub.cell and cell is not None:
            raise MagicError(f"{name} is a line magic: use %aicloud {name} ... on one line")
        with service_errors(self):
            return sub.run(self, rest, cell) if sub.cell else sub.run(self, rest)

    # -- following a job ----------------------------------------------------------------------

    def remember(self, job_id: str) -> None:
        """Keep the id in ``_aicloud_last_job``, for ``%aicloud show {_aicloud_last_job}``."""
        if self.shell is not None:
            self.shell.user_ns[LAST_JOB] = job_id

    def watch(self, job_id: str, ranks: list[int] | None = None, wait: bool = True) -> dict | None:
        """Stream a job's output and show its progress; raise if it does not succeed.

        ``wait=False`` follows in the background under a widget frontend, and only says how to
        attach elsewhere. Waiting cells run in a thread (:mod:`aicloud.magics.awaiting`), so the
        monitor's Cancel button works in both modes.
        """
        client = self.client
        self.remember(job_id)
        widgets = self.shell is not None and widget_frontend(self.shell, self.widgets)
        if not wait:
            if not widgets:
                print(f"aicloud: job {job_id} runs on; `%aicloud attach {job_id}` follows it")
                return None
            monitor = self._monitor(job_id, log_here=True)
            Follower(client, job_id, ranks).follow_in_background(monitor)
            return None
        display = CellDisplay(self._monitor(job_id)) if widgets else PlainDisplay(job_id)
        follower = Follower(client, job_id, ranks)
        try:
            with service_errors(client):
                job = follower.follow(display)
        except KeyboardInterrupt:
            follower.stop()
            if self.on_interrupt == "cancel":
                self.call("cancel", job_id)
                print(f"aicloud: interrupted: cancelled job {job_id}")
            else:
                print(
                    f"aicloud: interrupted: detached from job {job_id}, which keeps running; "
                    f"`%aicloud attach {job_id}` follows it again, `%aicloud cancel {job_id}` "
                    "stops it"
                )
            return None
        if job["status"] != "succeeded":
            raise JobFailed(job)
        return job

    def _monitor(self, job_id: str, log_here: bool = False):
        from IPython.display import display

        from aicloud.magics.widgets import JobMonitor

        monitor = JobMonitor(job_id, cancel=self.client.cancel, log_here=log_here)
        display(monitor)
        return monitor
