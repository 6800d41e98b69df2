"""The store: Alembic migrations from the first revision, and the schema they produce."""

from __future__ import annotations

from datetime import datetime, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from aicloud.store import Attempt, Job, JobStore, make_engine, migrate
from aicloud.store.tables import Base


def test_upgrade_a_database_made_by_the_first_revision(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0001")
    assert "attempts" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        for job_id, status in (("job-old1", "succeeded"), ("job-old2", "failed")):
            conn.execute(
                text(
                    "INSERT INTO jobs (id, owner, kind, framework, backend, status, spec,"
                    " created_at, exit_code) VALUES (:id, 'alice', 'command', 'none', 'local',"
                    " :status, '{\"command\": [\"true\"]}', '2026-01-02 03:04:05', 0)"
                ),
                {"id": job_id, "status": status},
            )

    migrate(engine)

    store = JobStore(engine)
    old = store.get_job("job-old1")
    assert old.status == "succeeded" and old.reason_code == "succeeded"
    assert old.spec == {"command": ["true"]}
    assert old.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert old.attempts == [] and old.tags == [] and old.attempt_count == 0
    assert store.get_job("job-old2").reason_code == "user_error"
    updated = store.add_attempt("job-old1", Attempt(number=1, status="succeeded", handle={}))
    assert [a.number for a in updated.attempts] == [1]
    assert store.list_jobs(owner="alice").total == 2


def test_migrations_match_the_tables(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrate_is_idempotent(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'again.db'}")
    migrate(engine)
    migrate(engine)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0007"


def test_tags_filter_and_pagination(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'tags.db'}")
    migrate(engine)
    store = JobStore(engine)
    for i in range(7):
        store.add_job(
            Job(
                id=f"job-{i}",
                owner="bob" if i < 6 else "carol",
                kind="command",
                framework="none",
                backend="local",
                status="succeeded",
                spec={},
                created_at=datetime(2026, 1, 1, 0, 0, i, tzinfo=timezone.utc),
            ),
            tags=["a", "b"] if i % 2 else ["a"],
        )
    page = store.list_jobs(owner="bob", tag="b", limit=2)
    assert page.total == 3 and [j.id for j in page.items] == ["job-5", "job-3"]
    assert [t.tag for t in page.items[0].tags] == ["a", "b"]
    assert store.list_jobs(owner=None, limit=100).total == 7
