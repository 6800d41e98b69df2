"""The job store: SQLAlchemy over SQLite (default) or PostgreSQL, migrated by Alembic."""

from aicloud.store.migrate import migrate
from aicloud.store.store import DuplicateIdempotencyToken, JobStore, make_engine
from aicloud.store.tables import Attempt, Job, JobTag, Schedule, utcnow

__all__ = [
    "Attempt",
    "DuplicateIdempotencyToken",
    "Job",
    "JobStore",
    "JobTag",
    "Schedule",
    "make_engine",
    "migrate",
    "utcnow",
]
