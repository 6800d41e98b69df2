"""Errors the magics show as one line, not a traceback wall."""

from __future__ import annotations


class MagicError(Exception):
    """Bad input or a failed request: the cell fails with ``aicloud: <message>`` and nothing else.

    IPython renders an exception through ``_render_traceback_`` when it has one; the error is
    still an error output, so papermill and nbclient see the cell fail.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        return [f"aicloud: {self.message}"]


class JobFailed(MagicError):
    """The job the cell waited for did not succeed; a remote traceback follows the line."""

    def __init__(self, job: dict, remote_traceback: str | None = None):
        super().__init__(f"job {job['id']} {job['status']}: {job.get('reason') or 'no reason'}")
        self.job = job
        self.remote_traceback = remote_traceback

    def _render_traceback_(self) -> list[str]:
        lines = [f"aicloud: {self.message}"]
        if self.remote_traceback:
            lines += ["", "Remote traceback (rank 0):", self.remote_traceback.rstrip()]
        return lines
