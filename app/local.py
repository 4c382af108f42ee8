"""`open-swe run`: one run of the workflow on a repository on this machine, at a terminal.

The entry point of local mode, beside `serve` (app.server) and `worker` (app.worker), wired by
app.wiring like them: the sandbox provider and the checkpointer, no store, GitHub or queue. The
terminal host (app.hosts.terminal) shows progress and asks for approval.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TextIO

from app.agent.context import RunContext
from app.agent.graph import build_graph
from app.agent.models import check_models
from app.agent.state import RunInput
from app.config import ConfigError, Settings
from app.hosts.terminal import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    BadInput,
    LocalHost,
    inspect_repo,
    local_settings,
    read_task,
    slugify,
    split_task,
)
from app.runs.drive import run_to_end
from app.sandbox.factory import UNCONFINED_WARNING, unconfined_reason
from app.sandbox.types import SandboxProvider
from app.text.sanitize import sanitize
from app.wiring import wire


async def run_local(
    settings: Settings,
    *,
    repo_path: Path,
    task: str | None,
    issue_file: Path | None,
    auto: bool,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    provider: SandboxProvider | None = None,
) -> int:
    """`open-swe run`: 0 when the branch was left with passing tests, 1 otherwise, 2 bad input."""
    try:
        text = read_task(task, issue_file)
        repo = inspect_repo(repo_path)
        check_models(settings)
    except (BadInput, ConfigError) as exc:
        print(f"open-swe: {exc}", file=stderr)
        return EXIT_BAD_INPUT
    title, _ = split_task(text)
    slug = slugify(sanitize(title))
    branch = f"open-swe/{slug}"
    if repo.branch == branch:
        print(f"open-swe: {branch} is checked out in {repo.path}; switch away first", file=stderr)
        return EXIT_BAD_INPUT
    settings = local_settings(settings, repo)
    host = LocalHost(repo, text, stdin=stdin, stdout=stdout, stderr=stderr)
    start = RunInput(
        thread_id=f"local:{repo.path}:{slug}",
        run_id=uuid.uuid4().hex[:12],
        repo=str(repo.path),
        issue_number=None,
        branch=branch,
        auto_approve=auto,
    )
    async with wire(settings, sandboxes=provider) as wiring:
        try:
            sandboxes = wiring.sandboxes()
        except ConfigError as exc:
            print(f"open-swe: configuration error: {exc}", file=stderr)
            return EXIT_BAD_INPUT
        why = unconfined_reason(sandboxes)
        if why is not None:  # your own repository: warn, and run
            print(f"open-swe: {UNCONFINED_WARNING.format(why=why)}", file=stderr)
        context = RunContext(settings=settings, host=host, sandboxes=sandboxes)
        graph = build_graph(await wiring.checkpointer())
        outcome = await run_to_end(graph, context, start, start)
    return EXIT_OK if outcome.status == "succeeded" else EXIT_FAILED
