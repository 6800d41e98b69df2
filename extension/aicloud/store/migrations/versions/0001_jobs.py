"""The jobs table.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200)),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("framework", sa.String(20), nullable=False),
        sa.Column("backend", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("idempotency_token", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("exit_code", sa.Integer),
        sa.Column("run_dir", sa.Text),
        sa.UniqueConstraint("owner", "idempotency_token", name="uq_jobs_owner_idempotency_token"),
    )
    op.create_index("ix_jobs_owner", "jobs", ["owner"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_jobs_owner_created_at", "jobs", ["owner", "created_at"])


def downgrade() -> None:
    op.drop_table("jobs")
