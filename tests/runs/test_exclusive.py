"""One in-process queue per database (finding 11: two processes ran one run twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.runs.exclusive import QueueInUse, sole_queue
from app.wiring import wire
from tests.runs.postgres_schema import postgres_schema


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[call-arg]


async def test_a_second_in_process_queue_on_one_sqlite_database_refuses_to_start(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path)
    async with sole_queue(config):
        with pytest.raises(QueueInUse, match="another open-swe process already runs"):
            async with sole_queue(config):
                pass
        async with sole_queue(settings(tmp_path / "elsewhere")):
            pass  # another database: its own queue
    async with sole_queue(config):
        pass  # released with its holder


async def test_the_wiring_takes_the_lock_for_an_in_process_queue(tmp_path: Path) -> None:
    config = settings(tmp_path, OPEN_SWE_REDELIVERY_SWEEP_MINUTES=0)

    async def job(run_id: str) -> None:
        return None

    async with wire(config) as first:
        await first.queue(job, worker=None)
        async with wire(config) as second:
            with pytest.raises(QueueInUse):
                await second.queue(job, worker=None)
    async with wire(config) as third:
        await third.queue(job, worker=None)


@pytest.mark.postgres
async def test_on_postgresql_the_lock_is_per_schema_and_dies_with_its_holder(
    tmp_path: Path,
) -> None:
    async with postgres_schema() as pg, postgres_schema() as other:
        config = settings(tmp_path, DATABASE_URL=pg.url, OPEN_SWE_QUEUE="inprocess")
        async with sole_queue(config):
            with pytest.raises(QueueInUse, match=pg.name):
                async with sole_queue(config):
                    pass
            elsewhere = settings(tmp_path, DATABASE_URL=other.url, OPEN_SWE_QUEUE="inprocess")
            async with sole_queue(elsewhere):
                pass
        async with sole_queue(config):
            pass
