"""The terminal host of local mode (`open-swe run`, driven by app.local): no GitHub.

The same workflow as for an issue, hosted by a terminal: progress lines and the plan go to
stderr, approval is asked on stdin (or skipped with --auto), and the result is a branch
`open-swe/<slug>` pushed from the sandbox into the user's repository. Their working tree and
current branch are never touched: the sandbox clones the repository, and the push only
creates or fast-forwards the work branch. Run state (checkpoints, sandboxes) lives in the
repository's git directory unless OPEN_SWE_DATA_DIR says otherwise, so nothing appears in
`git status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from app.agent.host import (
    ApprovalRequest,
    Change,
    Checkout,
    Publication,
    RunOutcome,
    TaskText,
)
from app.agent.prompts import describe_tests
from app.agent.state import PlanDecision, PlanDict, StepName
from app.agent.usage import Usage
from app.agent.workspace import RunFailed
from app.config import Settings
from app.sandbox.base import GitIdentity, Sandbox, SandboxError
from app.text.sanitize import sanitize

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
LOCAL_BOT = GitIdentity("open-swe", "open-swe@localhost")
MAX_SLUG = 40
PROMPT = "Approve this plan? [a]pprove, [r]evise, [q]uit: "


class BadInput(Exception):
    """The command line cannot work as given; the message is one actionable line."""


@dataclass(frozen=True)
class LocalRepo:
    path: Path  # the repository's top level
    git_dir: Path
    branch: str | None  # the current branch (None when HEAD is detached)
    head: str
    identity: GitIdentity | None  # user.name / user.email: the co-author


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def inspect_repo(path: Path) -> LocalRepo:
    if not path.is_dir():
        raise BadInput(f"{path} is not a directory")
    top = _git(path, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise BadInput(f"{path} is not a git repository (run `git init` and commit first)")
    root = Path(top.stdout.strip())
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    if head.returncode != 0:
        raise BadInput(f"{root} has no commits yet: commit something to start from")
    branch = _git(root, "symbolic-ref", "-q", "--short", "HEAD").stdout.strip() or None
    git_dir = Path(_git(root, "rev-parse", "--absolute-git-dir").stdout.strip())
    name = _git(root, "config", "user.name").stdout.strip()
    email = _git(root, "config", "user.email").stdout.strip()
    identity = GitIdentity(name, email) if name and email else None
    return LocalRepo(root, git_dir, branch, head.stdout.strip(), identity)


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:MAX_SLUG].rstrip("-")
    return slug or "task"


def split_task(text: str) -> tuple[str, str]:
    """First non-empty line is the title; the rest is the body."""
    lines = text.strip().splitlines()
    return (lines[0].strip(), "\n".join(lines[1:]).strip()) if lines else ("", "")


class LocalHost:
    """The RunHost of a terminal: one line per step on stderr, plan approval on stdin."""

    def __init__(
        self,
        repo: LocalRepo,
        task: str,
        *,
        stdin: TextIO,
        stdout: TextIO,
        stderr: TextIO,
    ) -> None:
        self.repo = repo
        self.title, self.body = split_task(task)
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr

    def _say(self, line: str) -> None:
        print(line, file=self.stderr, flush=True)

    async def load_task(self) -> TaskText:
        return TaskText(title=self.title, body=self.body, requested_by=self.repo.identity)

    async def checkout(self) -> Checkout:
        return Checkout(url=str(self.repo.path), default_branch=self.repo.branch, bot=LOCAL_BOT)

    async def progress(self, step: StepName, detail: str, usage: Usage) -> None:
        self._say(f"open-swe: {step}: {detail}")

    async def post_plan(
        self, plan: PlanDict, *, awaiting_approval: bool, revision: int | None = None
    ) -> None:
        lines = [f"Plan: {plan['title']}"]
        lines += [f"  {number}. {step}" for number, step in enumerate(plan["steps"], 1)]
        self._say("\n".join(lines))

    async def decide(self, request: ApprovalRequest) -> PlanDecision:
        while True:
            answer = await self._ask(PROMPT)
            verb = (answer or "q").strip().lower()[:1]
            if verb == "a":
                return {"verb": "approve", "by": "you"}
            if verb == "q":
                return {"verb": "stop", "by": "you"}
            if verb == "r":
                feedback = await self._ask("What should change? ")
                if feedback and feedback.strip():
                    return {"verb": "revise", "feedback": feedback.strip(), "by": "you"}

    async def _ask(self, prompt: str) -> str | None:
        print(prompt, end="", file=self.stderr, flush=True)
        line = await _readline(self.stdin)
        return line if line else None  # "" is end of input

    async def publish(self, sandbox: Sandbox, change: Change) -> Publication:
        """Push the work branch into the user's repository (never forced)."""
        try:
            await asyncio.to_thread(sandbox.push, change.repo_dir, change.branch)
        except SandboxError as exc:
            raise RunFailed(
                f"could not update branch {change.branch} in {self.repo.path}: {exc}"
            ) from None
        return Publication(branch=change.branch)

    async def finish(self, outcome: RunOutcome) -> None:
        if outcome.status in ("succeeded", "tests_failing"):
            self._report_branch(outcome)
        elif outcome.status == "no_changes":
            print("open-swe: nothing changed, so no branch was left", file=self.stdout)
        elif outcome.status == "stopped":
            self._say(f"open-swe: stopped: {outcome.reason}")
        else:
            self._say(f"open-swe: run failed: {outcome.reason}")
        self._say(f"open-swe: usage: {outcome.usage.describe()}")

    async def waiting_on(self, what: str, retry_at: datetime) -> None:
        when = retry_at.astimezone(UTC).strftime("%H:%M:%S")
        self._say(f"open-swe: waiting: {what} unavailable, retrying at {when} UTC")

    def _report_branch(self, outcome: RunOutcome) -> None:
        base = self.repo.branch or self.repo.head[:12]
        lines = [
            outcome.title or "",
            f"branch {outcome.branch} in {self.repo.path} (from {base})",
        ]
        if outcome.status == "tests_failing":
            lines.insert(0, "open-swe: the tests still fail; the branch holds the attempt")
        if outcome.tests_command is not None:
            lines.append(f"tests: `{outcome.tests_command}` " + (
                "passed" if outcome.tests_passed else "failing"))  # fmt: skip
        else:
            lines.append("tests: " + describe_tests(None))
        stat = _git(self.repo.path, "diff", "--stat", f"{self.repo.head}...{outcome.branch}")
        print("\n".join(lines) + "\n" + stat.stdout.rstrip(), file=self.stdout, flush=True)


async def _readline(stream: TextIO) -> str:
    """A line from stream without blocking the event loop, in a daemon thread: on Ctrl-C the
    run stops at once (asyncio.run would wait for a default-executor thread stuck in read)."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def deliver(text: str) -> None:
        if not line.done():  # cancelled meanwhile (Ctrl-C)
            line.set_result(text)

    def read() -> None:
        try:
            text = stream.readline()
        except (OSError, ValueError):  # a closed or broken stdin ends the input
            text = ""
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(deliver, text)

    threading.Thread(target=read, name="open-swe-stdin", daemon=True).start()
    return await line


def local_settings(settings: Settings, repo: LocalRepo) -> Settings:
    """Local mode settings: the local sandbox; checkpoints and sandboxes inside .git (in the
    data directory), unless OPEN_SWE_DATA_DIR says otherwise. Sandbox commands never see the
    repository around them: bubblewrap shows them their sandbox only, and git is told not to
    look above it (GIT_CEILING_DIRECTORIES)."""
    update: dict[str, object] = {"sandbox": "local", "local_mode": True}
    if "data_dir" not in settings.model_fields_set:
        update["data_dir"] = repo.git_dir / "open-swe"
    return settings.model_copy(update=update)


def read_task(task: str | None, issue_file: Path | None) -> str:
    if issue_file is not None:
        try:
            task = issue_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read {issue_file}: {exc}") from None
    if not task or not sanitize(task):
        raise BadInput("the task is empty: pass the task text or --issue-file FILE")
    return task
