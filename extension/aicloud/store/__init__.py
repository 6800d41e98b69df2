"""The job store: SQLAlchemy over SQLite (default) or PostgreSQL, migrated by Alembic."""

from aicloud.store.migrate import migrate
from aicloud.store.store import DuplicateIdempotencyToken, JobStore, make_engine
from aicloud.store.tables import Attempt, Job, JobTag, utcnow

__all__ = [
    "Attempt",
    "DuplicateIdempotencyToken",
    "Job",
    "JobStore",
    "JobTag",
    "make_engine",
    "migrate",
    "utcnow",
]
