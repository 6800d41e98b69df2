"""The schedule half of the store: schedules, their ticks, and the runs they made."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aicloud.store.tables import Job, Schedule


class ScheduleQueries:
    """Reads and writes schedules; mixed into :class:`~aicloud.store.JobStore`."""

    def session(self) -> Session:  # provided by JobStore
        raise NotImplementedError

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        """A schedule by id, or None."""
        with self.session() as session:
            return session.get(Schedule, schedule_id)

    def add_schedule(self, schedule: Schedule) -> Schedule:
        """Insert ``schedule``."""
        with self.session() as session:
            session.add(schedule)
            session.commit()
        return schedule

    def update_schedule(self, schedule_id: str, **values: Any) -> None:
        """Set ``values`` on a schedule."""
        with self.session() as session:
            session.execute(update(Schedule).where(Schedule.id == schedule_id).values(**values))
            session.commit()

    def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; its runs stay, unlinked."""
        with self.session() as session:
            session.execute(
                update(Job).where(Job.schedule_id == schedule_id).values(schedule_id=None)
            )
            schedule = session.get(Schedule, schedule_id)
            if schedule is not None:
                session.delete(schedule)
            session.commit()

    def list_schedules(
        self, owner: str | None, limit: int, offset: int
    ) -> tuple[list[Schedule], int]:
        """A page of schedules, newest first, and how many there are."""
        query = select(Schedule)
        if owner is not None:
            query = query.where(Schedule.owner == owner)
        return self._page(query, (Schedule.created_at.desc(),), limit, offset)

    def schedule_runs(self, schedule_id: str, limit: int, offset: int) -> tuple[list[Job], int]:
        """A page of a schedule's runs, newest first, and how many there are."""
        query = select(Job).where(Job.schedule_id == schedule_id)
        return self._page(query, (Job.created_at.desc(), Job.id.desc()), limit, offset)

    def _page(self, query, order, limit: int, offset: int) -> tuple[list, int]:
        with self.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery()))
            rows = session.scalars(query.order_by(*order).limit(limit).offset(offset)).all()
        return list(rows), total or 0

    def earliest_tick(self) -> datetime | None:
        """The next tick of any active schedule."""
        with self.session() as session:
            return session.scalar(
                select(func.min(Schedule.next_tick_at)).where(Schedule.paused.is_(False))
            )

    def due_schedules(self, now: datetime) -> list[Schedule]:
        """Active schedules whose next tick is at or before ``now``."""
        with self.session() as session:
            rows = session.scalars(
                select(Schedule).where(
                    Schedule.paused.is_(False),
                    Schedule.next_tick_at.is_not(None),
                    Schedule.next_tick_at <= now,
                )
            ).all()
        return list(rows)

    def advance_schedule(
        self, schedule: Schedule, last: datetime, following: datetime | None, missed: int
    ) -> bool:
        """Move ``schedule`` past tick ``last``, unless another service already did."""
        with self.session() as session:
            result = session.execute(
                update(Schedule)
                .where(Schedule.id == schedule.id, Schedule.last_tick_at == schedule.last_tick_at)
                .values(
                    last_tick_at=last,
                    next_tick_at=following,
                    missed_ticks=Schedule.missed_ticks + missed,
                )
            )
            session.commit()
        return result.rowcount == 1

    def count_runs(self, schedule_id: str, statuses: Iterable[str]) -> int:
        """How many runs of a schedule are in ``statuses``."""
        with self.session() as session:
            return session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.schedule_id == schedule_id, Job.status.in_(list(statuses)))
            )

    def runs_beyond(self, schedule_id: str, keep: int, statuses: Iterable[str]) -> list[Job]:
        """The runs in ``statuses`` past the newest ``keep``, not yet pruned."""
        with self.session() as session:
            old = session.scalars(
                select(Job)
                .where(Job.schedule_id == schedule_id, Job.status.in_(list(statuses)))
                .order_by(Job.created_at.desc(), Job.id.desc())
                .offset(keep)
            ).all()
        return [job for job in old if not job.pruned]

    def mark_pruned(self, job_ids: Iterable[str]) -> None:
        """Record that these jobs' outputs are gone (their rows stay)."""
        job_ids = list(job_ids)
        if not job_ids:
            return
        with self.session() as session:
            session.execute(update(Job).where(Job.id.in_(job_ids)).values(pruned=True))
            session.commit()
