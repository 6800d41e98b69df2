"""Backends run attempts: ``local`` (processes on this machine), later ``kubernetes``."""

from aicloud.backends.base import AttemptExit, Backend

__all__ = ["AttemptExit", "Backend"]
