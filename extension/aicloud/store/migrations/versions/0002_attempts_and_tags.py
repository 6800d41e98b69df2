"""Attempts, reason codes, retry timing and tags.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("reason_code", sa.String(40)))
        batch.add_column(sa.Column("attempt_count", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("not_before", sa.DateTime))
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("exit_code", sa.Integer),
        sa.Column("reason_code", sa.String(40)),
        sa.Column("reason", sa.Text),
        sa.Column("handle", sa.JSON, nullable=False),
        sa.UniqueConstraint("job_id", "number", name="uq_attempts_job_number"),
    )
    op.create_index("ix_attempts_job_id", "attempts", ["job_id"])
    op.create_table(
        "job_tags",
        sa.Column(
            "job_id",
            sa.String(32),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(63), primary_key=True),
    )
    op.create_index("ix_job_tags_tag", "job_tags", ["tag"])
    # Jobs from revision 0001 ended without reason codes: derive them from their status.
    op.execute(
        "UPDATE jobs SET reason_code = CASE status"
        " WHEN 'succeeded' THEN 'succeeded'"
        " WHEN 'cancelled' THEN 'cancelled'"
        " WHEN 'failed' THEN 'user_error' END"
    )


def downgrade() -> None:
    op.drop_table("job_tags")
    op.drop_table("attempts")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("not_before")
        batch.drop_column("attempt_count")
        batch.drop_column("reason_code")
