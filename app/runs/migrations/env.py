"""Alembic's entry point: migrate the connection app.runs.schema hands over, in its transaction."""

from __future__ import annotations

from alembic import context

from app.runs.models import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
)
with context.begin_transaction():  # the caller's: every revision commits with it, or none
    context.run_migrations()
