"""CI autofix: per pull request, whether autofix is on and what it tried; per commit, the one
decision taken on its CI.

- ci_pulls: `/open-swe autofix on|off`, the count of fix runs since the last reset, the
  signature of the failure last given to a fix run, the CI-fix status comment, when the
  missing-permissions note was posted, the history the status comment shows, and the pull
  request's files before the last fix run (to list what the fix changed in tests/workflows).
- ci_commits: one row per commit whose failed CI was decided on (deferred while another run
  works on the thread), so many check events for one commit make one decision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)  # app.runs.models.UtcDateTime stores this


def upgrade() -> None:
    op.create_table(
        "ci_pulls",
        sa.Column("repo", sa.String(300), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("autofix", sa.Boolean()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("signature", sa.String(64)),
        sa.Column("comment_id", sa.BigInteger()),
        sa.Column("noted_at", UTC_TIME),
        sa.Column("history", sa.JSON()),
        sa.Column("files", sa.JSON()),
        sa.Column("updated_at", UTC_TIME, nullable=False),
    )
    op.create_table(
        "ci_commits",
        sa.Column("repo", sa.String(300), primary_key=True),
        sa.Column("sha", sa.String(64), primary_key=True),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("installation_id", sa.BigInteger(), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("decided_at", UTC_TIME, nullable=False),
    )
    op.create_index("ix_ci_commits_decision", "ci_commits", ["decision"])


def downgrade() -> None:
    op.drop_index("ix_ci_commits_decision", table_name="ci_commits")
    op.drop_table("ci_commits")
    op.drop_table("ci_pulls")
