"""CRUD on jobs and attempts. Short sessions; rows come back detached and fully loaded.

The store is the only code that speaks SQL: the manager, the scheduler and the hub ask it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event, func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aicloud.store.schedules import ScheduleQueries
from aicloud.store.tables import Attempt, Job, JobTag

#: Statuses of jobs that hold what they asked for (GPUs, say), and may still change.
ACTIVE = ("queued", "starting", "running")
#: Statuses of an attempt that has not ended.
UNENDED = ("starting", "running")

#: ``admit(active_specs)``: raise to refuse a new job, given the specs of the owner's active
#: jobs (JSON form), read under the owner's lock.
Admission = Callable[[list[dict]], None]


class DuplicateIdempotencyToken(Exception):
    """A job with the same owner and idempotency token exists already."""

    def __init__(self, job_id: str):
        super().__init__(job_id)
        self.job_id = job_id


def _private_sqlite_file(engine: Engine) -> None:
    """Create the SQLite file readable by the service's user only (0600), or make it so.

    The store holds job specs, their environment values included; SQLite gives its ``-wal``
    and ``-shm`` files the database file's mode.
    """
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    os.close(os.open(database, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for path in (database, database + "-wal", database + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, 0o600)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout, foreign keys and mode 0600."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        _private_sqlite_file(engine)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


@dataclass
class Page:
    """One page of a listing."""

    items: list[Job]
    total: int


def owner_lock_key(owner: str) -> int:
    """The PostgreSQL advisory lock key (a signed 64-bit integer) of one owner's jobs."""
    digest = hashlib.sha256(b"aicloud-owner\0" + owner.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class JobStore(ScheduleQueries):
    """Reads and writes jobs; knows nothing of processes or HTTP."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str) -> JobStore:
        """A store over the database at ``url`` (already migrated by the service)."""
        return cls(make_engine(url))

    def session(self) -> Session:
        """A new session; use it as a context manager."""
        return self._sessions()

    def lock_owner(self, session: Session, owner: str) -> None:
        """Begin ``session``'s transaction holding ``owner``'s lock until it ends.

        PostgreSQL: a transaction-scoped advisory lock per owner. SQLite: ``BEGIN IMMEDIATE``,
        the database's write lock (it serializes every writer, which is all SQLite has).
        Must come first in the session.
        """
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        elif dialect == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": owner_lock_key(owner)}
            )
        else:  # pragma: no cover - aicloud supports SQLite and PostgreSQL
            raise NotImplementedError(f"no owner lock on {dialect}")

    def add_job(self, job: Job, tags: Iterable[str] = (), admit: Admission | None = None) -> Job:
        """Insert ``job``; raise :class:`DuplicateIdempotencyToken` on a reused token.

        With ``admit``, the owner's lock is taken first and ``admit`` is called with the specs
        of the owner's active jobs, in the insert's transaction: whatever it refuses (it
        raises) is not stored, and two inserts for one owner cannot both pass on the same
        count.
        """
        job.tags = [JobTag(tag=tag) for tag in sorted(set(tags))]
        job.attempts = []
        with self.session() as session:
            if admit is not None:
                self.lock_owner(session, job.owner)
                admit(
                    list(
                        session.scalars(
                            select(Job.spec).where(Job.owner == job.owner, Job.status.in_(ACTIVE))
                        )
                    )
                )
            session.add(job)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                existing = self.find_by_token(job.owner, job.idempotency_token)
                if existing is None:
                    raise
                raise DuplicateIdempotencyToken(existing.id) from None
        return job

    def find_by_token(self, owner: str, token: str | None) -> Job | None:
        """The job of ``owner`` with idempotency ``token``, if any."""
        if token is None:
            return None
        with self.session() as session:
            return session.scalar(
                select(Job).where(Job.owner == owner, Job.idempotency_token == token)
            )

    def get_job(self, job_id: str) -> Job | None:
        """The job with ``job_id``, or None."""
        with self.session() as session:
            return session.get(Job, job_id)

    def list_jobs(
        self,
        *,
        owner: str | None = None,
        statuses: Iterable[str] = (),
        kind: str | None = None,
        tag: str | None = None,
        notebook: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """A page of jobs, newest first, with the total that match the filters."""
        query = select(Job)
        if owner is not None:
            query = query.where(Job.owner == owner)
        statuses = list(statuses)
        if statuses:
            query = query.where(Job.status.in_(statuses))
        if kind is not None:
            query = query.where(Job.kind == kind)
        if tag is not None:
            query = query.where(Job.id.in_(select(JobTag.job_id).where(JobTag.tag == tag)))
        if notebook is not None:
            query = query.where(Job.origin_notebook == notebook)
        with self.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery()))
            rows = session.scalars(
                query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset)
            ).all()
        return Page(items=list(rows), total=total or 0)

    def active_jobs(self, statuses: Iterable[str] = ACTIVE, owner: str | None = None) -> list[Job]:
        """Every job (of ``owner``, if given) whose status is in ``statuses``, oldest first."""
        query = select(Job).where(Job.status.in_(list(statuses)))
        if owner is not None:
            query = query.where(Job.owner == owner)
        with self.session() as session:
            rows = session.scalars(query.order_by(Job.created_at)).all()
        return list(rows)

    def claim_attempt(self, job: Job, attempt: Attempt, **job_fields: Any) -> bool:
        """Move queued ``job`` to starting with its next attempt, unless another did first.

        One conditional update (still queued, the same attempt count, no cancel asked for)
        and the attempt's insert, in one transaction.
        """
        with self.session() as session:
            result = session.execute(
                update(Job)
                .where(
                    Job.id == job.id,
                    Job.status == "queued",
                    Job.attempt_count == job.attempt_count,
                    Job.cancel_requested_at.is_(None),
                )
                .values(status="starting", attempt_count=attempt.number, **job_fields)
            )
            if result.rowcount != 1:
                session.rollback()
                return False
            attempt.job_id = job.id
            session.add(attempt)
            session.commit()
            return True

    def end_attempt(
        self, job_id: str, number: int, attempt_fields: dict, job_fields: dict, retry: bool
    ) -> bool:
        """End attempt ``number`` if it has not ended, and update its job, in one transaction.

        False when a cancel or another server ended the attempt first (nothing changes). A
        retry (``job_fields`` queue the job again) is not applied to a job whose cancel was
        asked for meanwhile: the manager's next look ends that job.
        """
        with self.session() as session:
            claimed = session.execute(
                update(Attempt)
                .where(
                    Attempt.job_id == job_id,
                    Attempt.number == number,
                    Attempt.status.in_(UNENDED),
                )
                .values(**attempt_fields)
            )
            if claimed.rowcount != 1:
                session.rollback()
                return False
            still = [Job.id == job_id, Job.status.in_(ACTIVE)]
            if retry:
                still.append(Job.cancel_requested_at.is_(None))
            session.execute(update(Job).where(*still).values(**job_fields))
            session.commit()
            return True

    def update_job(self, job_id: str, **fields: Any) -> Job:
        """Set ``fields`` on the job and return it fresh."""
        with self.session() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise KeyError(job_id)
            for name, value in fields.items():
                setattr(job, name, value)
            session.commit()
            session.refresh(job)
            return job

    def add_attempt(self, job_id: str, attempt: Attempt, **job_fields: Any) -> Job:
        """Record a new attempt and update the job in one transaction."""
        with self.session() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise KeyError(job_id)
            attempt.job_id = job_id
            session.add(attempt)
            for name, value in job_fields.items():
                setattr(job, name, value)
            session.commit()
            session.refresh(job)
            return job

    def update_attempt(self, job_id: str, number: int, job_fields: dict, **fields: Any) -> Job:
        """Update attempt ``number`` of a job, and the job, in one transaction."""
        with self.session() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise KeyError(job_id)
            attempt = session.scalar(
                select(Attempt).where(Attempt.job_id == job_id, Attempt.number == number)
            )
            if attempt is None:
                raise KeyError(f"{job_id} attempt {number}")
            for name, value in fields.items():
                setattr(attempt, name, value)
            for name, value in job_fields.items():
                setattr(job, name, value)
            session.commit()
            session.refresh(job)
            return job

    def delete_job(self, job_id: str) -> None:
        """Remove a job, its attempts and tags."""
        with self.session() as session:
            job = session.get(Job, job_id)
            if job is not None:
                session.delete(job)
                session.commit()
