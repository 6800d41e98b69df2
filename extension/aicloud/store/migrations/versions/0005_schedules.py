"""Schedules, and the link from a job to the tick of the schedule that fired it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200)),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("start_at", sa.DateTime),
        sa.Column("end_at", sa.DateTime),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("max_concurrent_runs", sa.Integer, nullable=False),
        sa.Column("overlap", sa.String(10), nullable=False),
        sa.Column("catch_up", sa.String(10), nullable=False),
        sa.Column("keep_last", sa.Integer),
        sa.Column("webhook_url", sa.Text),
        sa.Column("snapshot", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("last_tick_at", sa.DateTime, nullable=False),
        sa.Column("next_tick_at", sa.DateTime),
        sa.Column("missed_ticks", sa.Integer, nullable=False),
    )
    op.create_index("ix_schedules_owner", "schedules", ["owner"])
    op.create_index("ix_schedules_next_tick_at", "schedules", ["next_tick_at"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("schedule_id", sa.String(32)))
        batch.add_column(sa.Column("scheduled_for", sa.DateTime))
        batch.add_column(sa.Column("pruned", sa.Boolean, nullable=False, server_default="0"))
        batch.create_foreign_key(
            "fk_jobs_schedule_id", "schedules", ["schedule_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_unique_constraint("uq_jobs_schedule_tick", ["schedule_id", "scheduled_for"])
        batch.create_index("ix_jobs_schedule_id", ["schedule_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_schedule_id")
        batch.drop_constraint("uq_jobs_schedule_tick", type_="unique")
        batch.drop_constraint("fk_jobs_schedule_id", type_="foreignkey")
        batch.drop_column("pruned")
        batch.drop_column("scheduled_for")
        batch.drop_column("schedule_id")
    op.drop_table("schedules")
