"""SQLAlchemy tables of the job store. Every change to them comes with an Alembic migration."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime that round-trips through SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the store")
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the aicloud tables."""


class Job(Base):
    """One job: its spec, who owns it, where it stands."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    framework: Mapped[str] = mapped_column(String(20))
    backend: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), index=True)
    reason_code: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    spec: Mapped[dict] = mapped_column(JSON)
    idempotency_token: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    run_dir: Mapped[str | None] = mapped_column(Text)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    schedule_id: Mapped[str | None] = mapped_column(
        ForeignKey("schedules.id", ondelete="SET NULL"), index=True
    )
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pruned: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # The notebook that launched the job (spec.origin), for "jobs launched from here".
    origin_notebook: Mapped[str | None] = mapped_column(Text)
    # Set first by a cancel, so that a server restarted in mid-cancel finishes it.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="job",
        order_by="Attempt.number",
        cascade="all, delete-orphan",
        lazy="selectin",
    )
    tags: Mapped[list[JobTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="JobTag.tag"
    )

    __table_args__ = (
        UniqueConstraint("owner", "idempotency_token", name="uq_jobs_owner_idempotency_token"),
        # One run per tick of a schedule, however many services fire it: exactly once.
        UniqueConstraint("schedule_id", "scheduled_for", name="uq_jobs_schedule_tick"),
        Index("ix_jobs_owner_created_at_id", "owner", "created_at", "id"),
        Index("ix_jobs_created_at_id", "created_at", "id"),
    )


class Attempt(Base):
    """One try at running a job; retries add attempts."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason_code: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    handle: Mapped[dict] = mapped_column(JSON, default=dict)
    restarts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    job: Mapped[Job] = relationship(back_populates="attempts")

    __table_args__ = (UniqueConstraint("job_id", "number", name="uq_attempts_job_number"),)


class JobTag(Base):
    """A tag on a job, in its own table so that filtering by tag uses an index."""

    __tablename__ = "job_tags"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(63), primary_key=True, index=True)


class Schedule(Base):
    """A job template fired on a cron schedule in a time zone."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(255), index=True)
    spec: Mapped[dict] = mapped_column(JSON)
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    max_concurrent_runs: Mapped[int] = mapped_column(Integer, default=1)
    overlap: Mapped[str] = mapped_column(String(10), default="queue")
    catch_up: Mapped[str] = mapped_column(String(10), default="latest")
    keep_last: Mapped[int | None] = mapped_column(Integer)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    snapshot: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_tick_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    missed_ticks: Mapped[int] = mapped_column(Integer, default=0)
