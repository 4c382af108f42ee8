"""The transcript of each run: run_events, one row per event, numbered per run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)  # app.runs.models.UtcDateTime stores this


def upgrade() -> None:
    op.create_table(
        "run_events",
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_run_events_kind_at", "run_events", ["kind", "at"])


def downgrade() -> None:
    op.drop_index("ix_run_events_kind_at", table_name="run_events")
    op.drop_table("run_events")
