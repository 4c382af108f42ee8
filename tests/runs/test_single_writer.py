"""SQLite with one writer: concurrent write transactions that read first never fail with
"database is locked", within one store and between two stores on one file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from app.runs.store import Store
from app.runs.store.base import SingleWriterEngine


async def test_concurrent_read_then_write_transactions_all_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first, second = Store.open(url), Store.open(url)  # two engines: as two processes would
    assert isinstance(first.engine, SingleWriterEngine)
    async with first.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO counter VALUES (0)"))

    async def bump(store: Store) -> None:
        # A deferred transaction would read a snapshot here and then fail to write it once
        # another connection committed in between.
        async with store.engine.begin() as conn:
            n = (await conn.execute(text("SELECT n FROM counter"))).scalar_one()
            await asyncio.sleep(0)
            await conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

    try:
        await asyncio.gather(*(bump(first if i % 2 else second) for i in range(200)))
        async with first.engine.connect() as conn:
            assert (await conn.execute(text("SELECT n FROM counter"))).scalar_one() == 200
    finally:
        await first.close()
        await second.close()


async def test_a_failed_write_transaction_rolls_back_and_frees_the_writer(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
        try:
            async with store.engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (1)"))
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        async with asyncio.timeout(5), store.engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("SELECT n FROM t"))).scalars().all() == [2]
    finally:
        await store.close()
