"""The CI autofix tables, on SQLite and PostgreSQL: per pull request state, one decision per
commit (claimed once, however many callers race), deferred commits taken up again."""

from __future__ import annotations

import asyncio

from app.runs.store import Store
from app.runs.store.ci import DECIDING, DEFERRED, DROPPED

REPO = "acme/widgets"
SHA = "a" * 40


async def test_a_pull_requests_state_is_created_then_updated(store: Store) -> None:
    assert await store.ci_pull(REPO, 2) is None
    first = await store.save_ci_pull(REPO, 2, autofix=False)
    assert (first.autofix, first.attempts, first.signature, first.history) == (False, 0, None, None)
    later = await store.save_ci_pull(
        REPO, 2, attempts=1, signature="s" * 64, history=[{"sha": SHA}], files={"sha": SHA}
    )
    assert (later.autofix, later.attempts, later.signature) == (False, 1, "s" * 64)
    assert later.history == [{"sha": SHA}]
    assert later.files == {"sha": SHA}
    assert later.updated_at >= first.updated_at
    assert await store.ci_pull(REPO, 3) is None


async def test_a_commit_is_claimed_once_however_many_race(store: Store) -> None:
    claims = await asyncio.gather(*(store.claim_commit(REPO, SHA, 2, 7) for _ in range(8)))
    assert sorted(claims) == [False] * 7 + [True]
    commit = await store.ci_commit(REPO, SHA)
    assert commit is not None
    assert (commit.decision, commit.number, commit.installation_id) == (DECIDING, 2, 7)

    await store.decide_commit(REPO, SHA, "attempted", run_id="r1")
    assert not await store.claim_commit(REPO, SHA, 2, 7)
    decided = await store.ci_commit(REPO, SHA)
    assert decided is not None
    assert (decided.decision, decided.run_id) == ("attempted", "r1")


async def test_a_released_claim_can_be_taken_again(store: Store) -> None:
    assert await store.claim_commit(REPO, SHA, 2, 7)
    await store.release_commit(REPO, SHA)
    assert await store.ci_commit(REPO, SHA) is None
    assert await store.claim_commit(REPO, SHA, 2, 7)
    await store.decide_commit(REPO, SHA, "limit")
    await store.release_commit(REPO, SHA)  # only an undecided claim is released
    assert await store.ci_commit(REPO, SHA) is not None


async def test_deferred_commits_are_listed_and_taken_over_by_one_claim(store: Store) -> None:
    for sha in ("b" * 40, SHA):
        assert await store.claim_commit(REPO, sha, 2, 7)
        await store.decide_commit(REPO, sha, DEFERRED)
    assert [c.sha for c in await store.deferred_commits()] == ["b" * 40, SHA]

    claims = await asyncio.gather(*(store.claim_commit(REPO, SHA, 2, 7) for _ in range(4)))
    assert sorted(claims) == [False] * 3 + [True]
    assert [c.sha for c in await store.deferred_commits()] == ["b" * 40]

    await store.drop_deferred(REPO, "b" * 40)
    assert await store.deferred_commits() == []
    dropped = await store.ci_commit(REPO, "b" * 40)
    assert dropped is not None
    assert dropped.decision == DROPPED
    assert await store.claim_commit(REPO, "b" * 40, 2, 7)  # a later event decides it


async def test_concurrent_history_edits_are_all_kept(store: Store) -> None:
    async def append(n: int) -> None:
        await store.edit_ci_history(REPO, 2, lambda history: [*history, {"n": n}])

    await asyncio.gather(*(append(n) for n in range(6)))
    state = await store.edit_ci_history(REPO, 2, lambda history: history, attempts=2)
    assert sorted(item["n"] for item in state.history or []) == list(range(6))
    assert state.attempts == 2
