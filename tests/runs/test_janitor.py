"""The sandbox janitor on the local backend: sandboxes no active run owns are deleted, those of
active runs, of a pull request's recent follow-ups and of runs this store never knew stay."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app.runs.janitor import SandboxJanitor
from app.runs.models import Run, RunKind, RunStatus, runs, thread_key
from app.runs.store import Store
from app.sandbox.local import LocalProvider

REPO = "acme/widgets"
KEPT_FOR = timedelta(days=30)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    await opened.migrate()
    yield opened
    await opened.close()


async def run_on(
    store: Store, number: int, status: RunStatus, *, kind: RunKind = "issue", ago: timedelta
) -> Run:
    run = await store.start_run(
        thread=thread_key(REPO, number),
        repo=REPO,
        number=number,
        kind=kind,
        installation_id=1,
        requested_by="octocat",
        auto_approve=True,
        delivery_id=None,
    )
    assert isinstance(run, Run)
    if status != "queued":
        await store.set_run_status(run.id, status)
    async with store.engine.begin() as conn:
        when = datetime.now(UTC) - ago
        await conn.execute(update(runs).where(runs.c.id == run.id).values(updated_at=when))
    return run


def labels(run: Run | None = None, *, thread: str | None = None) -> dict[str, str]:
    if run is not None:
        return {"open-swe.repo": REPO, "open-swe.thread": run.thread, "open-swe.run": run.id}
    assert thread is not None
    return {"open-swe.repo": REPO, "open-swe.thread": thread}  # a pull request's follow-ups


async def test_orphaned_sandboxes_are_deleted_and_owned_ones_kept(
    store: Store, tmp_path: Path
) -> None:
    provider = LocalProvider(tmp_path / "sandboxes", use_bwrap=False)
    ended = await run_on(store, 1, "failed", ago=timedelta(hours=1))  # release failed
    just_ended = await run_on(store, 2, "succeeded", ago=timedelta(seconds=5))  # releasing
    waiting = await run_on(store, 3, "waiting", ago=timedelta(days=90))  # a plan waits
    old_pull = await run_on(store, 4, "succeeded", kind="pull", ago=timedelta(days=31))
    recent_pull = await run_on(store, 5, "succeeded", kind="pull", ago=timedelta(days=2))
    boxes = {
        "ended": provider.acquire(labels(ended)),
        "just ended": provider.acquire(labels(just_ended)),
        "waiting": provider.acquire(labels(waiting)),
        "old pull": provider.acquire(labels(thread=old_pull.thread)),
        "recent pull": provider.acquire(labels(thread=recent_pull.thread)),
        "unknown run": provider.acquire({"open-swe.run": "f" * 32, "open-swe.thread": "x/y#1"}),
        "unknown pull": provider.acquire(labels(thread="x/y#9")),
        "not ours": provider.acquire({"purpose": "something else"}),
    }

    janitor = SandboxJanitor(store, provider, kept_for=KEPT_FOR)
    assert await janitor() == 2

    left = {box.id for box in provider.find({})}
    assert {name for name, box in boxes.items() if box.id not in left} == {"ended", "old pull"}
    assert await janitor() == 0


async def test_leftover_local_directories_are_removed(store: Store, tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path / "sandboxes", use_bwrap=False)
    root = provider.root
    interrupted = root / ".trash-sbx-0123456789ab-89abcdef"  # a removal cut short
    half_made = root / "sbx-abcdefabcdef"  # created, its state never written
    fresh = root / "sbx-fedcbafedcba"  # being created right now
    foreign = root / "my-notes"  # not a name the provider gives
    for directory in (interrupted / "work", half_made / "work", fresh / "work", foreign):
        directory.mkdir(parents=True)
    an_hour_ago = time.time() - 3600
    for directory in (interrupted, half_made, foreign):
        os.utime(directory, (an_hour_ago, an_hour_ago))
    kept = provider.acquire({"open-swe.run": "e" * 32})  # unknown to the store

    assert await SandboxJanitor(store, provider, kept_for=KEPT_FOR)() == 2
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".lock")) == sorted(
        [fresh.name, foreign.name, kept.id]
    )
