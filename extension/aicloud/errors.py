"""Domain errors. The REST layer maps each to one HTTP status, in one place."""

from __future__ import annotations


class AICloudError(Exception):
    """Base of aicloud's errors; ``status`` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidSpec(AICloudError):
    """A job spec that cannot run; ``field`` names the offending field."""

    status = 400

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class JobNotFound(AICloudError):
    """No job with that id (or not one the caller may see)."""

    status = 404

    def __init__(self, job_id: str):
        super().__init__(f"job {job_id!r} not found")
        self.job_id = job_id


class JobConflict(AICloudError):
    """The job is not in a state that allows the request (cancel twice, delete running)."""

    status = 409


class LogsNotFound(AICloudError):
    """A job exists but has no such log (an unknown rank, say)."""

    status = 404


class UnsafeRunFile(AICloudError):
    """A file of a run directory that the service will not open: a symlink, a FIFO, a folder.

    A job can write anything into its run directory, so a file there that is not a plain
    file is refused without looking at what it points to.
    """

    status = 403
