"""Runs survive faults: when a run began waiting out a transient fault and when it tries again,
and a ledger of every model call's usage.

- runs.fault_since: when the run met the transient fault it waits out (NULL when none); it
  fails once the fault has lasted OPEN_SWE_TRANSIENT_RETRY_MINUTES.
- runs.retry_at: when a faulted run is resumed next (the reaper resumes it then).
- runs.fault_tries: resumptions tried since `fault_since` (the backoff grows with them).
- runs.fault_checkpoint: the checkpoint the run stood at when it faulted: a fault met from a
  later one is a new fault (the run made progress meanwhile), with a deadline of its own.
- model_calls: one row per model call of a run, written as the call ends, so a suspend, a
  crash or a retry never forgets what was spent (the budget reads its lineage's sum).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)  # app.runs.models.UtcDateTime stores this


def upgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("fault_since", UTC_TIME))
        runs.add_column(sa.Column("retry_at", UTC_TIME))
        runs.add_column(sa.Column("fault_tries", sa.Integer(), nullable=False, server_default="0"))
        runs.add_column(sa.Column("fault_checkpoint", sa.String(64)))
    op.create_table(
        "model_calls",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
    )
    op.create_index("ix_model_calls_run", "model_calls", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_model_calls_run", table_name="model_calls")
    op.drop_table("model_calls")
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("fault_checkpoint")
        runs.drop_column("fault_tries")
        runs.drop_column("retry_at")
        runs.drop_column("fault_since")
