"""The schema open-swe had before migrations: deliveries, installations, runs, commands.

A database that `metadata.create_all` made then has no alembic_version table: start-up stamps
it with this revision (app.runs.schema), and the revisions after it upgrade it.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)  # app.runs.models.UtcDateTime stores this
ACTIVE = sa.text("status IN ('queued', 'running', 'waiting')")
UNFINISHED = sa.text("processed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("action", sa.String(100)),
        sa.Column("installation_id", sa.BigInteger()),
        sa.Column("repo", sa.String(300)),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.Column("payload", sa.JSON(none_as_null=True)),
        sa.Column("processed_at", UTC_TIME),
        sa.Column("reply_comment_id", sa.BigInteger()),
    )
    op.create_index(
        "ix_deliveries_unfinished",
        "deliveries",
        ["received_at"],
        sqlite_where=UNFINISHED,
        postgresql_where=UNFINISHED,
    )
    op.create_table(
        "installations",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("account", sa.String(100)),
        sa.Column("account_type", sa.String(20)),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("suspended_at", UTC_TIME),
        sa.Column("deleted_at", UTC_TIME),
    )
    op.create_table(
        "installation_repos",
        sa.Column(
            "installation_id",
            sa.BigInteger(),
            sa.ForeignKey("installations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("repo_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("full_name", sa.String(300), nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("thread", sa.String(320), nullable=False),
        sa.Column("repo", sa.String(300), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("installation_id", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("auto_approve", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("delivery_id", sa.String(100), unique=True),
        sa.Column("status_comment_id", sa.BigInteger()),
        sa.Column("pr_number", sa.Integer()),
        sa.Column("error", sa.Text()),
    )
    op.create_index(
        "uq_runs_active_thread",
        "runs",
        ["thread"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_index("ix_runs_thread_created", "runs", ["thread", "created_at"])
    op.create_index("ix_runs_repo_pr", "runs", ["repo", "pr_number"])
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("thread", sa.String(320), nullable=False),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="SET NULL")),
        sa.Column("verb", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("comment_id", sa.BigInteger()),
        sa.Column("path", sa.Text()),
        sa.Column("line", sa.Integer()),
        sa.Column("delivery_id", sa.String(100), nullable=False, unique=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("consumed_at", UTC_TIME),
    )
    op.create_index("ix_commands_thread_pending", "commands", ["thread", "consumed_at"])


def downgrade() -> None:
    for table in ("commands", "runs", "installation_repos", "installations", "deliveries"):
        op.drop_table(table)
