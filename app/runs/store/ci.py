"""CI autofix: the `ci_pulls` state of each pull request and the `ci_commits` decisions.

A commit's decision is claimed by inserting its row: of many check events for one commit (or
two workers racing), exactly one claim succeeds. A claim that cannot finish (GitHub failed
mid-way) is released, so the delivery's retry decides again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from app.runs.models import CiCommit, CiPull, ci_commits, ci_pulls
from app.runs.store.base import StoreBase, utcnow

MAX_EDIT_TRIES = 20
DECIDING = "deciding"
DEFERRED = "deferred"  # another run worked on the thread: decided again once it ends
ATTEMPTED = "attempted"  # a fix run started (app.ci.decision.Decision.ATTEMPT)
DROPPED = "dropped"  # deferred, then nothing to decide (no longer the head...): a new event may


class CiStore(StoreBase):
    """The `ci_pulls` and `ci_commits` tables."""

    async def ci_pull(self, repo: str, number: int) -> CiPull | None:
        query = select(ci_pulls).where(ci_pulls.c.repo == repo, ci_pulls.c.number == number)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return CiPull(**row._mapping) if row else None

    async def save_ci_pull(self, repo: str, number: int, **values: Any) -> CiPull:
        """Create or update the pull request's row with `values` (columns of `ci_pulls`)."""
        now = utcnow()
        stmt: Any = self._insert(ci_pulls).values(
            repo=repo, number=number, updated_at=now, **values
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["repo", "number"], set_={**values, "updated_at": now}
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
        found = await self.ci_pull(repo, number)
        assert found is not None
        return found

    async def edit_ci_history(
        self,
        repo: str,
        number: int,
        edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
        **values: Any,
    ) -> CiPull:
        """Change the pull request's history (and `values`) as one compare-and-set: an event's
        handler and the sweep may both edit it, and neither edit is lost."""
        for _ in range(MAX_EDIT_TRIES):
            current = await self.ci_pull(repo, number) or await self.save_ci_pull(repo, number)
            history = edit(list(current.history or []))
            async with self._engine.begin() as conn:
                done = await conn.execute(
                    update(ci_pulls)
                    .where(
                        ci_pulls.c.repo == repo,
                        ci_pulls.c.number == number,
                        ci_pulls.c.updated_at == current.updated_at,
                    )
                    .values(history=history, updated_at=utcnow(), **values)
                )
            if done.rowcount == 1:
                found = await self.ci_pull(repo, number)
                assert found is not None
                return found
        raise RuntimeError(f"{repo}#{number}: the CI-fix history kept changing under an edit")

    async def claim_commit(self, repo: str, sha: str, number: int, installation_id: int) -> bool:
        """Claim the decision on a commit's CI: True for the one caller that gets it (a new
        commit, or one deferred until the thread's run ended, or dropped meanwhile)."""
        now = utcnow()
        stmt = self._upsert_ignore(
            ci_commits,
            ["repo", "sha"],
            repo=repo,
            sha=sha,
            number=number,
            installation_id=installation_id,
            decision=DECIDING,
            decided_at=now,
        )
        async with self._engine.begin() as conn:
            # RETURNING, not rowcount: drivers disagree on an upsert's rowcount.
            if (await conn.execute(stmt.returning(ci_commits.c.sha))).first() is not None:
                return True
            taken = await conn.execute(
                update(ci_commits)
                .where(
                    ci_commits.c.repo == repo,
                    ci_commits.c.sha == sha,
                    ci_commits.c.decision.in_((DEFERRED, DROPPED)),
                )
                .values(decision=DECIDING, decided_at=now)
            )
        return taken.rowcount == 1

    async def decide_commit(
        self, repo: str, sha: str, decision: str, *, run_id: str | None = None
    ) -> None:
        """Record the decision taken on a claimed commit."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(ci_commits)
                .where(ci_commits.c.repo == repo, ci_commits.c.sha == sha)
                .values(decision=decision, run_id=run_id, decided_at=utcnow())
            )

    async def release_commit(self, repo: str, sha: str) -> None:
        """Give up a claim that could not be decided (the next event decides again)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(ci_commits).where(
                    ci_commits.c.repo == repo,
                    ci_commits.c.sha == sha,
                    ci_commits.c.decision == DECIDING,
                )
            )

    async def drop_deferred(self, repo: str, sha: str) -> None:
        """A deferred commit that needs no decision any more (no longer a pull request's head)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(ci_commits)
                .where(
                    ci_commits.c.repo == repo,
                    ci_commits.c.sha == sha,
                    ci_commits.c.decision == DEFERRED,
                )
                .values(decision=DROPPED, decided_at=utcnow())
            )

    async def prune_ci(self, *, before: datetime) -> int:
        """Retention: commits decided before the date, and pull requests untouched since then
        that keep no `autofix on|off` of a person's (a later failure starts a fresh count).
        How many rows went."""
        async with self._engine.begin() as conn:
            commits = await conn.execute(delete(ci_commits).where(ci_commits.c.decided_at < before))
            pulls = await conn.execute(
                delete(ci_pulls).where(ci_pulls.c.updated_at < before, ci_pulls.c.autofix.is_(None))
            )
        return int(commits.rowcount or 0) + int(pulls.rowcount or 0)

    async def ci_commit(self, repo: str, sha: str) -> CiCommit | None:
        query = select(ci_commits).where(ci_commits.c.repo == repo, ci_commits.c.sha == sha)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return CiCommit(**row._mapping) if row else None

    async def deferred_commits(self, limit: int = 100) -> list[CiCommit]:
        """Commits whose decision waits for a run on their thread to end, oldest first."""
        return await self._commits_deciding(DEFERRED, limit)

    async def attempted_commits(self, limit: int = 100) -> list[CiCommit]:
        """Commits whose fix run was started and not yet seen to end, oldest first."""
        return await self._commits_deciding(ATTEMPTED, limit)

    async def _commits_deciding(self, decision: str, limit: int) -> list[CiCommit]:
        query = (
            select(ci_commits)
            .where(ci_commits.c.decision == decision)
            .order_by(ci_commits.c.decided_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [CiCommit(**row._mapping) for row in await conn.execute(query)]
