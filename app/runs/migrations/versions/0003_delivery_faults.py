"""Faults never lose deliveries: how often a delivery's work was tried, the deliveries asked
again of GitHub, when retention pruned a run, and the totals of what retention pruned.

- deliveries.attempts: tries of a delivery's background work (a transient fault is retried,
  up to a bound, then recorded as an error).
- redeliveries: the deliveries the redelivery sweep asked GitHub to send again, by
  X-GitHub-Delivery, so none is asked twice.
- runs.status is indexed: the sweeps look runs up by it every few seconds.
- runs.pruned_at: retention pruned the run's checkpoints and commands (its usage was added to
  `totals` first).
- totals: running totals of pruned rows, so /metrics' counters never go down.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)  # app.runs.models.UtcDateTime stores this


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as deliveries:
        deliveries.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("pruned_at", UTC_TIME))
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "redeliveries",
        sa.Column("guid", sa.String(100), primary_key=True),
        sa.Column("hook_delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("action", sa.String(100)),
        sa.Column("asked_at", UTC_TIME, nullable=False),
    )
    op.create_table(
        "totals",
        sa.Column("metric", sa.String(60), primary_key=True),
        sa.Column("labels", sa.String(300), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("totals")
    op.drop_table("redeliveries")
    op.drop_index("ix_runs_status", table_name="runs")
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("pruned_at")
    with op.batch_alter_table("deliveries") as deliveries:
        deliveries.drop_column("attempts")
