"""CI autofix, the acting side: a commit's CI completed, so decide (once per commit) whether
to start a fix run on its pull request, and keep the pull request's CI-fix comment current.

The facts come from GitHub (app.ci.failures), the store (attempts, the commit's claim) and the
repository's `.open-swe.yml`; the decision itself is app.ci.decision. A fix run is started
like a follow-up asked in a comment (app.webhooks.comments): the failures go into the thread's
inbox as a request and a pull request run takes them, pushing to the same branch, no plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from app.agent.repo_config import CONFIG_FILE, RepoConfigError, parse_config
from app.ci import guardrails, report
from app.ci.decision import Decision, Facts, decide
from app.ci.failures import CiReading, Failure, describe, failing_names, read_ci
from app.ci.signature import signature
from app.github.client import InstallationClient
from app.github.errors import Forbidden, GitHubError
from app.github.types import PullInfo
from app.runs.models import ActiveRunExists, CiPull, NewRun, Run, thread_key
from app.runs.store.base import utcnow
from app.runs.store.ci import DEFERRED, DROPPED
from app.webhooks.context import HandlerContext
from app.webhooks.routing import Outcome

T = TypeVar("T")
log = structlog.get_logger(__name__)
MAX_PULLS = 5  # pull requests of one commit looked at
MAX_HISTORY = 50  # decisions kept per pull request (the comment shows the last 20)
SOURCE = "ci"  # the inbox's `source` of a fix request (answered on the conversation)


@dataclass(frozen=True)
class Trigger:
    """A commit whose CI reported completion: where, and the pull requests it names."""

    repo: str
    installation_id: int
    sha: str
    pulls: tuple[int, ...] = ()


def fix_key(sha: str, number: int) -> str:
    """The fix run's and request's delivery key: one per commit and pull request, ever."""
    return f"ci-fix-{sha}-{number}"


async def consider(ctx: HandlerContext, trigger: Trigger) -> Outcome:
    """Look at each open pull request whose head is the commit; the first outcome that did
    something, else the last reason to ignore."""
    numbers = list(trigger.pulls)
    decided = await ctx.store.ci_commit(trigger.repo, trigger.sha)
    if decided is not None and decided.decision not in (DEFERRED, DROPPED):
        # Most events of a commit come after its decision: no GitHub call for them.
        return Outcome("ignored", f"{trigger.sha[:12]} was decided on already")
    if not numbers:
        numbers = await _call(ctx, trigger, lambda c: c.pulls_of_commit(trigger.repo, trigger.sha))
    outcome = Outcome("ignored", "the commit is on no open pull request")
    for number in numbers[:MAX_PULLS]:
        outcome = await CiFix(ctx, trigger, number).run()
        if outcome.status != "ignored":
            return outcome
    return outcome


async def _call(
    ctx: HandlerContext, trigger: Trigger, action: Callable[[InstallationClient], T]
) -> T:
    return await ctx.call(trigger.installation_id, trigger.repo, action)


class CiFix:
    """One commit on one pull request."""

    def __init__(self, ctx: HandlerContext, trigger: Trigger, number: int) -> None:
        self.ctx = ctx
        self.trigger = trigger
        self.repo = trigger.repo
        self.sha = trigger.sha
        self.number = number
        self.thread = thread_key(trigger.repo, number)

    async def call(self, action: Callable[[InstallationClient], T]) -> T:
        return await _call(self.ctx, self.trigger, action)

    async def run(self) -> Outcome:
        decided = await self.ctx.store.ci_commit(self.repo, self.sha)
        if decided is not None and decided.decision not in (DEFERRED, DROPPED):
            # Most events of a commit come after its decision: no GitHub call for them.
            return Outcome("ignored", f"{self.sha[:12]} was decided on already")
        pull: PullInfo = await self.call(lambda c: c.get_pull(self.repo, self.number))
        if pull.is_fork:
            return Outcome("ignored", f"#{self.number} comes from a fork")
        if pull.state != "open":
            return Outcome("ignored", f"#{self.number} is {pull.state}")
        if pull.head_sha and pull.head_sha != self.sha:
            return Outcome("ignored", f"{self.sha[:12]} is not the head of #{self.number}")
        state = await self.ctx.store.ci_pull(self.repo, self.number)
        if not await self._enabled(pull, state):
            return Outcome("ignored", f"CI autofix is off for #{self.number}")
        try:
            reading: CiReading = await self.call(lambda c: read_ci(c, self.repo, self.sha))
        except Forbidden:
            return await self._note_permissions(state)
        if not reading.completed:
            return Outcome("waiting", f"checks still running on {self.sha[:12]}")
        state = await self._after_commit(state, reading, pull)
        if not reading.failed:
            await self._passed(state)
            return Outcome("ignored", f"CI passed on {self.sha[:12]}")
        store = self.ctx.store
        if not await store.claim_commit(
            self.repo, self.sha, self.number, self.trigger.installation_id
        ):
            return Outcome("ignored", f"{self.sha[:12]} was decided on already")
        try:
            return await self._decide(pull, state, reading)
        except BaseException:
            await store.release_commit(self.repo, self.sha)
            raise

    async def check_access(self) -> Outcome:
        """For a pull request CI autofix watches: can its checks be read? If not, the one note."""
        pull: PullInfo = await self.call(lambda c: c.get_pull(self.repo, self.number))
        if pull.is_fork or pull.state != "open":
            return Outcome("ignored", f"#{self.number} is not watched")
        state = await self.ctx.store.ci_pull(self.repo, self.number)
        if not await self._enabled(pull, state):
            return Outcome("ignored", f"CI autofix is off for #{self.number}")
        try:
            await self.call(lambda c: c.check_suites(self.repo, self.sha))
        except Forbidden:
            return await self._note_permissions(state)
        return Outcome("ignored", "the checks can be read: their events decide")

    # --- facts ------------------------------------------------------------------------------

    async def _enabled(self, pull: PullInfo, state: CiPull | None) -> bool:
        """`/open-swe autofix on|off` on the pull request, else on for the pull requests
        open-swe opened unless the repository's `.open-swe.yml` says `autofix: false`."""
        if state is not None and state.autofix is not None:
            return state.autofix
        slug = await self.ctx.slug.resolve()
        ours = slug is not None and pull.author == f"{slug}[bot]"
        if not ours and await self.ctx.store.run_for_pull(self.repo, self.number) is None:
            return False
        text = await self.call(lambda c: c.file_text(self.repo, CONFIG_FILE))
        try:
            return parse_config(text).autofix
        except RepoConfigError:
            return True  # the run reports the broken file; autofix keeps its default

    async def _after_commit(
        self, state: CiPull | None, reading: CiReading, pull: PullInfo
    ) -> CiPull | None:
        """A person's commit resets the attempts; the fix run's commit gets its review."""
        if state is None:
            return None
        slug = await self.ctx.slug.resolve()
        author = reading.author.name if reading.author else ""
        by_us = slug is not None and author == f"{slug}[bot]"
        snapshot = state.files
        if snapshot is not None and snapshot.get("sha") != self.sha and by_us:
            return await self._review(state, snapshot, pull)
        if not by_us and state.attempts and (snapshot is None or snapshot.get("sha") != self.sha):
            log.info("ci_fix.reset", pull=self.thread, author=author)
            return await self.ctx.store.save_ci_pull(
                self.repo, self.number, attempts=0, signature=None, files=None
            )
        return state

    async def _review(self, state: CiPull, snapshot: dict[str, Any], pull: PullInfo) -> CiPull:
        """What the last fix run changed in tests and workflows, listed for a reviewer."""
        files = await self.call(lambda c: c.pull_files(self.repo, self.number))
        before = [guardrails.Snapshot.from_json(f) for f in snapshot.get("files", [])]
        findings = guardrails.review(
            before,
            guardrails.watched(files),
            failing_workflows=snapshot.get("workflows", []),
        )

        def add_findings(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if findings and history:
                last = history[-1]
                history[-1] = {**last, "review": list(last.get("review", [])) + findings}
            return history

        state = await self.ctx.store.edit_ci_history(
            self.repo, self.number, add_findings, files=None
        )
        if findings:
            log.info("ci_fix.review", pull=self.thread, findings=findings)
            await self._show(state, pull.base_ref)
        return state

    async def _passed(self, state: CiPull | None) -> None:
        history = list(state.history or []) if state else []
        if state is None or not history or history[-1].get("action") != "attempted":
            return
        passed = report.entry(self.sha, "passed")
        state = await self.ctx.store.edit_ci_history(
            self.repo, self.number, lambda history: [*history, passed][-MAX_HISTORY:]
        )
        pull: PullInfo = await self.call(lambda c: c.get_pull(self.repo, self.number))
        await self._show(state, pull.base_ref)

    # --- the decision -----------------------------------------------------------------------

    async def _decide(self, pull: PullInfo, state: CiPull | None, reading: CiReading) -> Outcome:
        store = self.ctx.store
        failed = frozenset(r.name for r in reading.failed)
        active = await store.active_run(self.thread)
        base_failing: frozenset[str] = frozenset()
        failures: list[Failure] = []
        if active is None:
            base_sha = await self.call(lambda c: c.branch_head(self.repo, pull.base_ref))
            on_base = await self.call(lambda c: failing_names(c, self.repo, base_sha))
            base_failing = failed & frozenset(on_base)
            to_fix = [r for r in reading.failed if r.name not in base_failing]
            if to_fix:
                failures = await self.call(lambda c: describe(c, self.repo, self.sha, to_fix))
        facts = Facts(
            run_active=active is not None,
            failed=failed,
            failing_on_base=base_failing,
            attempts=state.attempts if state else 0,
            max_attempts=self.ctx.max_ci_fix_attempts,
            signature=signature(failures) if failures else "",
            last_signature=state.signature if state else None,
        )
        decision = decide(facts)
        log.info("ci_fix.decided", pull=self.thread, sha=self.sha, decision=decision.value)
        if decision is Decision.DEFERRED:
            assert active is not None
            await store.decide_commit(self.repo, self.sha, Decision.DEFERRED)
            return Outcome("deferred", f"run {active.id} works on #{self.number}")
        checks = sorted(failed - base_failing) or sorted(failed)
        run_id = None
        values: dict[str, Any] = {}
        attempt = facts.attempts
        if decision is Decision.ATTEMPT:
            run_id = await self._start(pull, failures)
            attempt += 1
            files = await self.call(lambda c: c.pull_files(self.repo, self.number))
            values = {
                "attempts": attempt,
                "signature": facts.signature,
                "files": {
                    "sha": self.sha,
                    "files": [s.as_json() for s in guardrails.watched(files)],
                    "workflows": sorted({f.workflow_path for f in failures if f.workflow_path}),
                },
            }
        decided = report.entry(
            self.sha,
            decision.value,
            checks=checks,
            base_failing=sorted(base_failing),
            run_id=run_id,
            attempt=attempt,
        )
        saved = await store.edit_ci_history(
            self.repo, self.number, lambda history: [*history, decided][-MAX_HISTORY:], **values
        )
        await store.decide_commit(self.repo, self.sha, decision.value, run_id=run_id)
        await self._show(saved, pull.base_ref)
        if decision is Decision.ATTEMPT:
            return Outcome("started", str(run_id))
        return Outcome("replied", f"CI autofix: {decision.value}")

    async def _start(self, pull: PullInfo, failures: list[Failure]) -> str:
        """The fix run: the failures as a request in the thread's inbox, then a pull request
        run that takes it (the follow-up path of a comment). A run that started in between
        takes the request from the inbox as a follow-up: it is the fix run then."""
        store = self.ctx.store
        key = fix_key(self.sha, self.number)
        opener = await store.run_for_pull(self.repo, self.number)
        requester = opener.requested_by if opener is not None else pull.author
        await store.add_command(
            thread=self.thread,
            run_id=None,
            verb="instruct",
            text=report.task(self.sha, failures),
            author=report.REQUESTER,
            source=SOURCE,
            delivery_id=key,
        )
        result = await self.ctx.lifecycle.start(
            NewRun(
                thread=self.thread,
                repo=self.repo,
                number=self.number,
                kind="pull",
                installation_id=self.trigger.installation_id,
                requested_by=requester,
                auto_approve=True,
                delivery_id=key,
            )
        )
        if isinstance(result, ActiveRunExists):
            return result.run.id
        return result.id

    async def run_ended(self, run: Run) -> None:
        """The fix run `run` ended: its row of the CI-fix comment says how."""
        state = await self.ctx.store.ci_pull(self.repo, self.number)
        if state is None:
            return

        def ended(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                {**item, "run_status": run.status, "run_error": run.error}
                if item.get("run_id") == run.id
                else item
                for item in history
            ]

        state = await self.ctx.store.edit_ci_history(self.repo, self.number, ended)
        pull: PullInfo = await self.call(lambda c: c.get_pull(self.repo, self.number))
        await self._show(state, pull.base_ref)

    # --- what people see --------------------------------------------------------------------

    async def _show(self, state: CiPull, base: str) -> None:
        """Create or edit the pull request's one CI-fix comment."""
        body = report.status_comment(
            state.history or [],
            attempts=state.attempts,
            limit=self.ctx.max_ci_fix_attempts,
            base=base,
        )
        if state.comment_id is not None:
            comment_id = state.comment_id
            try:
                await self.call(lambda c: c.update_comment(self.repo, comment_id, body))
                return
            except GitHubError as exc:
                if exc.status != 404:
                    raise
        posted = await self.call(
            lambda c: c.create_comment(self.repo, self.number, body, marker=report.MARKER)
        )
        await self.ctx.store.save_ci_pull(self.repo, self.number, comment_id=posted.id)

    async def _note_permissions(self, state: CiPull | None) -> Outcome:
        """Once per pull request: what to approve, and where."""
        reason = "the installation cannot read checks (permissions not accepted)"
        if state is not None and state.noted_at is not None:
            return Outcome("refused", reason)
        slug = await self.ctx.slug.resolve() or "open-swe"
        body = report.PERMISSIONS_NOTE.format(account=self.repo.split("/")[0], app=slug)
        marker = "<!-- open-swe:ci-permissions -->"
        await self.call(
            lambda c: c.create_comment(self.repo, self.number, f"{body}\n\n{marker}", marker=marker)
        )
        await self.ctx.store.save_ci_pull(self.repo, self.number, noted_at=utcnow())
        return Outcome("refused", reason)
