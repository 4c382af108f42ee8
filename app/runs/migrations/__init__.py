"""Alembic migrations of open-swe's own tables (app.runs.models), run at start-up by
app.runs.schema. `versions/` holds one file per revision, oldest first."""
