"""Why a push to GitHub failed, in words a person can act on (a GitHub host's publication)."""

from __future__ import annotations

import asyncio

from app.agent.host import Change
from app.sandbox.base import Sandbox, SandboxError
from app.sandbox.git import GIT_ENV, HARDENING, PushRefused, shell

WORKFLOWS_DIR = ".github/workflows/"

PUSH_FAILED = "could not push the branch {branch}: {error}"
PUSH_REFUSED = "GitHub refused the push of {branch}: {reason}"
PUSH_WORKFLOWS = (
    "GitHub refused the push of {branch}: it changes {files}, and a GitHub App needs the "
    "`workflows` permission to push changes under .github/workflows/ ({error})"
)


async def push_failure(sandbox: Sandbox, change: Change, error: SandboxError) -> str:
    """Why a push failed, in words a person can act on."""
    message = str(error)
    if "never force-pushes" in message:  # the remote branch moved on: not about workflows
        return message
    if isinstance(error, PushRefused):  # GitHub's own reason beats a guess from the diff
        return PUSH_REFUSED.format(branch=change.branch, reason=error.reason)
    files = await _changed_workflows(sandbox, change)
    if files:
        shown = ", ".join(files[:3]) + (" and more" if len(files) > 3 else "")
        return PUSH_WORKFLOWS.format(branch=change.branch, files=shown, error=message)
    return PUSH_FAILED.format(branch=change.branch, error=message)


async def _changed_workflows(sandbox: Sandbox, change: Change) -> list[str]:
    """Workflow files the branch changes compared with the default branch it started from."""
    argv = [
        "git",
        *HARDENING,
        "diff",
        "--name-only",
        f"origin/{change.base_branch}...{change.commit}",
    ]
    argv += ["--", WORKFLOWS_DIR]
    try:
        result = await asyncio.to_thread(sandbox.run, shell(argv), cwd=change.repo_dir, env=GIT_ENV)
    except SandboxError:
        return []
    return (
        [line for line in result.output.splitlines() if line.startswith(WORKFLOWS_DIR)]
        if result.ok
        else []
    )
