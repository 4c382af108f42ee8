"""The run lifecycle of app.runs.lifecycle: the plan question becomes a column of the run, and
runs waiting on a fault or suspended count as active (one active run per thread).

Until now a run recorded that its plan waited for an answer as a command row of its own (verb
"plan", text "revision N", author "run"); a pending one moves into `runs.plan_question`, and
all of them leave the inbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE_BEFORE = sa.text("status IN ('queued', 'running', 'waiting')")
ACTIVE = sa.text("status IN ('queued', 'running', 'waiting', 'faulted', 'suspended')")


def upgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("plan_question", sa.Integer()))
    _replace_active_index(ACTIVE)
    commands = sa.table(
        "commands",
        sa.column("run_id", sa.String),
        sa.column("verb", sa.String),
        sa.column("text", sa.Text),
        sa.column("author", sa.String),
        sa.column("consumed_at", sa.DateTime),
    )
    questions = sa.and_(commands.c.verb == "plan", commands.c.author == "run")
    connection = op.get_bind()
    pending = connection.execute(
        sa.select(commands.c.run_id, commands.c.text).where(
            questions, commands.c.consumed_at.is_(None), commands.c.run_id.is_not(None)
        )
    )
    runs_table = sa.table("runs", sa.column("id", sa.String), sa.column("plan_question"))
    for run_id, text in pending.all():
        revision_shown = int(text.rsplit(" ", 1)[-1]) if text.rsplit(" ", 1)[-1].isdigit() else 1
        connection.execute(
            sa.update(runs_table)
            .where(runs_table.c.id == run_id)
            .values(plan_question=revision_shown)
        )
    connection.execute(sa.delete(commands).where(questions))


def downgrade() -> None:
    _replace_active_index(ACTIVE_BEFORE)
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("plan_question")


def _replace_active_index(active: sa.TextClause) -> None:
    op.drop_index("uq_runs_active_thread", table_name="runs")
    op.create_index(
        "uq_runs_active_thread",
        "runs",
        ["thread"],
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )
