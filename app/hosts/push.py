"""A GitHub host's publication: the pull request's words made safe to publish, and why a push
failed, in words a person can act on."""

from __future__ import annotations

import asyncio
import re

from app.agent.host import Change
from app.sandbox.base import Sandbox, SandboxError
from app.sandbox.git import GIT_ENV, HARDENING, PushRefused, shell
from app.text.github import defuse_mentions, unclose_others
from app.text.redact import Redactor

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


def model_words(text: str, change: Change, repo: str, scrub: Redactor) -> str:
    """The model's text made safe to publish: no secret, no ping, and no closing keyword for
    any issue but the one this change fixes."""
    text = defuse_mentions(scrub(text))
    return unclose_others(text, repo=repo, issue_number=change.issue_number)


def pull_body(change: Change, repo: str, scrub: Redactor, max_chars: int) -> str:
    """The pull request's body: the model's words, bounded, closing the change's issue."""
    body = model_words(change.body, change, repo, scrub)
    closing = f"Fixes #{change.issue_number}" if change.issue_number is not None else None
    limit = max_chars - (len(closing) + 2 if closing else 0)
    if len(body) > limit:
        body = body[: limit - 20].rstrip() + "\n\n… (truncated)"
    if closing and not re.search(rf"\b{re.escape(closing)}\b", body, re.IGNORECASE):
        body = body.rstrip() + "\n\n" + closing + "\n"
    return body
