"""The store, on SQLite and PostgreSQL: deliveries, installations, runs, the command inbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from app.runs.models import ActiveRunExists, Run, deliveries, runs
from app.runs.store import Store, async_url
from app.runs.store.deliveries import Receipt

THREAD = "acme/widgets#12"


async def start(store: Store, thread: str = THREAD, **overrides: Any) -> Run | ActiveRunExists:
    values: dict[str, Any] = {
        "thread": thread,
        "repo": thread.split("#")[0],
        "number": int(thread.split("#")[1]),
        "kind": "issue",
        "installation_id": 7,
        "requested_by": "octocat",
        "auto_approve": False,
        "delivery_id": None,
    }
    return await store.start_run(**(values | overrides))


async def started(store: Store, thread: str = THREAD, **overrides: Any) -> Run:
    run = await start(store, thread, **overrides)
    assert isinstance(run, Run)
    return run


async def record(store: Store, delivery_id: str, payload: dict[str, Any] | None = None) -> Receipt:
    return await store.record_delivery(
        delivery_id=delivery_id,
        event="issues",
        action="labeled",
        installation_id=7,
        repo="acme/widgets",
        outcome="accepted" if payload is not None else "ignored",
        payload=payload,
    )


# Deliveries ---------------------------------------------------------------------------


async def test_a_delivery_is_recorded_once(store: Store) -> None:
    assert await record(store, "d1", {"x": "ünïcode ✓"}) == "new"
    assert await record(store, "d1", {"x": "other"}) == "duplicate"
    delivery = await store.delivery("d1")
    assert delivery is not None
    assert delivery.payload == {"x": "ünïcode ✓"}
    assert (delivery.event, delivery.action, delivery.installation_id) == ("issues", "labeled", 7)
    assert delivery.received_at.tzinfo is not None
    assert abs((datetime.now(UTC) - delivery.received_at).total_seconds()) < 60
    assert await store.count("deliveries") == 1


async def test_a_redelivery_is_a_duplicate_unless_the_work_ended_in_error(store: Store) -> None:
    await record(store, "done", {"a": 1})
    await store.finish_delivery("done", "started", "run 1")
    await record(store, "failed", {"a": 2})
    assert await store.begin_delivery_attempt("failed") == 1
    await store.set_delivery_reply("failed", 77)
    await store.finish_delivery("failed", "error", "forbidden (403)")
    await record(store, "working", {"a": 3})

    assert await record(store, "done", {"a": 1}) == "duplicate"
    assert await record(store, "working", {"a": 3}) == "duplicate"  # its work goes on
    assert await record(store, "failed", {"a": 2}) == "again"
    assert await record(store, "failed", {"a": 2}) == "duplicate"  # now it is being done

    again = await store.delivery("failed")
    assert again is not None
    assert (again.outcome, again.processed_at, again.attempts) == ("accepted", None, 0)
    assert again.reply_comment_id == 77  # what was said is not said twice
    assert await store.unfinished_deliveries() == ["failed", "working"]


async def test_concurrent_deliveries_share_commits_and_each_gets_its_receipt(
    store: Store,
) -> None:
    await record(store, "failed", {"a": 0})
    await store.finish_delivery("failed", "error", "boom")
    ids = [f"c{i}" for i in range(40)] + ["c0", "c1", "failed", "failed"]
    receipts = await asyncio.gather(*(record(store, d, {"n": d}) for d in ids))
    assert receipts[:40] == ["new"] * 40
    # The same id twice at once (one batch or two): the first is the delivery.
    assert receipts[40:42] == ["duplicate", "duplicate"]
    assert sorted(receipts[42:]) == ["again", "duplicate"]
    assert await store.count("deliveries") == 41
    recorded = await store.delivery("c7")
    assert recorded is not None
    assert recorded.payload == {"n": "c7"}


async def test_a_noted_delivery_is_written_without_waiting(store: Store) -> None:
    store.note_delivery(
        delivery_id="quiet",
        event="issues",
        action="opened",
        installation_id=7,
        repo="acme/widgets",
        outcome="ignored",
        detail="issues.opened is not handled",
    )
    noted = await store.delivery("quiet")  # the store's own writes are seen
    assert noted is not None
    assert (noted.outcome, noted.payload) == ("ignored", None)
    assert noted.processed_at is not None


async def test_tries_of_a_delivery_are_counted_until_it_is_finished(store: Store) -> None:
    await record(store, "d", {"a": 1})
    assert [await store.begin_delivery_attempt("d") for _ in range(3)] == [1, 2, 3]
    await store.finish_delivery("d", "started")
    assert await store.begin_delivery_attempt("d") is None
    assert await store.begin_delivery_attempt("unknown") is None


async def test_only_deliveries_with_work_wait_to_be_finished(store: Store) -> None:
    await record(store, "work-1", {"a": 1})
    await record(store, "nothing", None)
    await record(store, "work-2", {"a": 2})
    assert await store.unfinished_deliveries() == ["work-1", "work-2"]
    await store.finish_delivery("work-1", "started", "run 1")
    assert await store.unfinished_deliveries() == ["work-2"]
    finished = await store.delivery("work-1")
    assert finished is not None
    assert (finished.outcome, finished.detail) == ("started", "run 1")
    assert finished.processed_at is not None


async def test_an_ignored_delivery_stores_sql_null_not_json_null(store: Store) -> None:
    """`payload IS NULL` must find deliveries without work (JSON 'null' would not be NULL)."""
    await record(store, "nothing", None)
    await record(store, "work", {"a": 1})
    query = select(deliveries.c.id).where(deliveries.c.payload.is_(None))  # plain IS NULL
    async with store.engine.connect() as conn:
        assert str(query.compile(conn.sync_connection)).endswith("deliveries.payload IS NULL")
        assert (await conn.execute(query)).scalars().all() == ["nothing"]
    delivery = await store.delivery("nothing")
    assert delivery is not None
    assert delivery.payload is None


async def test_the_reply_to_a_delivery_is_remembered(store: Store) -> None:
    await record(store, "d", {})
    await store.set_delivery_reply("d", 9_876_543_210)  # comment ids exceed 32 bits
    delivery = await store.delivery("d")
    assert delivery is not None
    assert delivery.reply_comment_id == 9_876_543_210


# Installations ------------------------------------------------------------------------


async def test_installations_and_their_repos(store: Store) -> None:
    assert await store.installation(5) is None
    await store.save_installation(5, account="acme", account_type="Organization")
    await store.add_installation_repos(5, [(1, "acme/a"), (2, "acme/b")])
    await store.add_installation_repos(5, [(2, "acme/b-renamed")])  # same id, new name
    assert await store.installation_repos(5) == ["acme/a", "acme/b-renamed"]
    await store.remove_installation_repos(5, [1])
    assert await store.installation_repos(5) == ["acme/b-renamed"]

    await store.set_installation_suspended(5, True)
    suspended = await store.installation(5)
    assert suspended is not None
    assert not suspended.active

    await store.delete_installation(5)
    deleted = await store.installation(5)
    assert deleted is not None
    assert deleted.deleted_at is not None
    assert await store.installation_repos(5) == []

    await store.save_installation(5, account="acme", account_type="Organization")  # reinstall
    again = await store.installation(5)
    assert again is not None
    assert again.active


# Runs ---------------------------------------------------------------------------------


async def test_a_run_starts_queued(store: Store) -> None:
    run = await started(store, delivery_id="d1", auto_approve=True)
    assert (run.status, run.thread, run.number, run.auto_approve) == ("queued", THREAD, 12, True)
    assert run.created_at.tzinfo is not None
    assert await store.active_run(THREAD) == run
    assert await store.run(run.id) == run


async def test_one_active_run_per_thread(store: Store) -> None:
    first = await started(store, delivery_id="d1")
    second = await start(store, delivery_id="d2")
    assert second == ActiveRunExists(first)
    assert await start(store, "acme/widgets#13") != ActiveRunExists(first)  # other thread


async def test_starting_again_for_the_same_delivery_returns_the_same_run(store: Store) -> None:
    first = await started(store, delivery_id="d1")
    assert await start(store, delivery_id="d1") == first
    await store.set_run_status(first.id, "failed")
    again = await start(store, delivery_id="d1")  # even once finished: one delivery, one run
    assert isinstance(again, Run)
    assert again.id == first.id


async def test_a_new_run_may_start_once_the_last_finished(store: Store) -> None:
    first = await started(store)
    for status in ("running", "waiting"):
        assert isinstance(await start(store), ActiveRunExists)
        await store.set_run_status(first.id, status)  # type: ignore[arg-type]
    await store.set_run_status(first.id, "succeeded")
    second = await started(store)
    assert second.id != first.id
    assert [r.id for r in await store.runs_on_thread(THREAD)] == [second.id, first.id]
    assert (await store.latest_run(THREAD)) == second


async def test_racing_starts_make_exactly_one_run(store: Store) -> None:
    results = await asyncio.gather(*(start(store, delivery_id=f"d{i}") for i in range(12)))
    winners = [r for r in results if isinstance(r, Run)]
    assert len(winners) == 1
    assert all(r == ActiveRunExists(winners[0]) for r in results if r is not winners[0])


async def test_the_database_itself_refuses_a_second_active_run(store: Store) -> None:
    """Enforced by a partial unique index, not only by start_run's Python."""
    await started(store)
    now = datetime.now(UTC)
    row = {
        "id": "x" * 32,
        "thread": THREAD,
        "repo": "acme/widgets",
        "number": 12,
        "kind": "issue",
        "installation_id": 7,
        "requested_by": "mallory",
        "auto_approve": False,
        "status": "running",
        "created_at": now,
        "updated_at": now,
    }
    with pytest.raises(IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(insert(runs).values(**row))
    async with store.engine.begin() as conn:  # a finished one is fine
        await conn.execute(insert(runs).values(**(row | {"status": "failed"})))


async def test_a_finished_run_stays_finished(store: Store) -> None:
    run = await started(store)
    running = await store.set_run_status(run.id, "running")
    assert running is not None
    assert running.status == "running"
    stopped = await store.set_run_status(run.id, "stopped")
    assert stopped is not None
    assert await store.set_run_status(run.id, "succeeded") is None
    assert await store.set_run_status("no-such-run", "running") is None
    final = await store.run(run.id)
    assert final is not None
    assert final.status == "stopped"


async def test_a_failure_keeps_its_error(store: Store) -> None:
    run = await started(store)
    failed = await store.set_run_status(run.id, "failed", error="the tests failed")
    assert failed is not None
    assert failed.error == "the tests failed"


async def test_status_comment_and_pull_request(store: Store) -> None:
    run = await started(store)
    await store.set_status_comment(run.id, 3_000_000_001)
    await store.set_pr_number(run.id, 42)
    found = await store.run_for_pull("acme/widgets", 42)
    assert found is not None
    assert (found.id, found.status_comment_id) == (run.id, 3_000_000_001)
    assert await store.run_for_pull("acme/widgets", 43) is None


async def test_runs_to_resume_are_the_queued_and_running_ones(store: Store) -> None:
    ids = {}
    for number, status in enumerate(["queued", "running", "waiting", "succeeded"]):
        run = await started(store, f"acme/widgets#{number}")
        if status != "queued":
            await store.set_run_status(run.id, status)  # type: ignore[arg-type]
        ids[status] = run.id
    assert [r.id for r in await store.runs_to_resume()] == [ids["queued"], ids["running"]]


# Commands -----------------------------------------------------------------------------


async def add(store: Store, delivery_id: str, verb: str = "approve", **kw: Any) -> Any:
    values: dict[str, Any] = {
        "thread": THREAD,
        "run_id": None,
        "verb": verb,
        "text": "",
        "author": "octocat",
        "source": "issue_comment",
        "delivery_id": delivery_id,
        "comment_id": 5_000_000_000,
    }
    return await store.add_command(**(values | kw))


async def test_commands_wait_in_the_inbox_until_consumed(store: Store) -> None:
    run = await started(store)
    first = await add(store, "c1", run_id=run.id)
    second = await add(
        store, "c2", "revise", text="smaller", source="review_comment", path="a.py", line=3
    )
    await add(store, "c3", "stop", consumed=True)
    assert [c.id for c in await store.pending_commands(THREAD)] == [first.id, second.id]
    assert (second.verb, second.text, second.path, second.line) == ("revise", "smaller", "a.py", 3)
    assert first.run_id == run.id
    assert await store.consume_command(first.id) is True
    assert await store.consume_command(first.id) is False  # two consumers never both act
    assert [c.id for c in await store.pending_commands(THREAD)] == [second.id]
    assert await store.pending_commands("other/repo#1") == []


async def test_a_run_takes_commands_and_finds_them_again(store: Store) -> None:
    run = await started(store)
    taken = await add(store, "c1", "instruct", text="rename it")
    await add(store, "c2", "instruct", text="not taken")
    await add(store, "c3", "stop", run_id=run.id, consumed=True)
    assert await store.consume_command(taken.id, run_id=run.id) is True
    assert await store.consume_command(taken.id, run_id="another-run") is False
    [mine] = await store.commands_of([run.id, "earlier-run"], "instruct")
    assert (mine.id, mine.run_id, mine.text) == (taken.id, run.id, "rename it")
    assert mine.consumed_at is not None
    assert await store.commands_of([], "instruct") == []


async def test_a_retry_names_the_run_it_retries(store: Store) -> None:
    run = await started(store)
    await add(store, "retry-1", "retry", run_id=run.id, consumed=True)
    await add(store, "other", "instruct", run_id=run.id)
    assert await store.retried_run_id("retry-1") == run.id
    assert await store.retried_run_id("other") is None  # not a retry
    assert await store.retried_run_id("unknown") is None


async def test_a_command_is_recorded_once_per_delivery(store: Store) -> None:
    first = await add(store, "c1", text="first")
    again = await add(store, "c1", text="second")
    assert again == first
    assert await store.command("c1") == first
    assert await store.command("c2") is None
    assert await store.count("commands") == 1


# Engines --------------------------------------------------------------------------------


def test_database_urls_get_async_drivers() -> None:
    assert async_url("sqlite:////tmp/x.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert async_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert async_url("postgresql+psycopg2://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="unsupported"):
        async_url("mysql://h/db")


async def test_sqlite_creates_its_directory_and_uses_wal(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'deep' / 'er' / 'open-swe.db'}")
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
            keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar()
        assert (mode, keys) == ("wal", 1)
        assert (tmp_path / "deep" / "er" / "open-swe.db").exists()
    finally:
        await store.close()


async def test_an_in_memory_sqlite_store_works(tmp_path: Path) -> None:
    store = Store.open("sqlite:///:memory:")
    try:
        await store.migrate()
        assert await record(store, "m", {}) == "new"
        assert await store.unfinished_deliveries() == ["m"]
    finally:
        await store.close()


async def test_migrating_is_idempotent(store: Store) -> None:
    await record(store, "kept", {})
    await store.migrate()
    assert await store.unfinished_deliveries() == ["kept"]
