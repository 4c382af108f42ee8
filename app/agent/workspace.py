"""The run's checkout inside its sandbox: clone, work branch, repo config, setup, git queries.

All git commands run inside the sandbox with the sandbox layer's hardening (no hooks, no
global config). Sandbox calls block, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import shlex

from app.agent.host import Checkout
from app.agent.repo_config import (
    CONFIG_FILE,
    INSTRUCTION_FILES,
    MAX_INSTRUCTIONS_CHARS,
    RepoConfig,
    RepoConfigError,
    detect_test_command,
    instructed_test_command,
    parse_config,
)
from app.sandbox.base import CommandResult, GitIdentity, Sandbox, SandboxError
from app.sandbox.git import GIT_ENV, HARDENING
from app.text.sanitize import sanitize
from app.transcript import Stopwatch, current

REPO_DIR = "repo"  # relative to the sandbox's work_dir
# Build and tool litter the agent's test runs leave behind: never part of a commit. Written to
# .git/info/exclude (local to the clone), so the repository's own .gitignore is untouched.
LOCAL_EXCLUDES = (
    "__pycache__/",
    "*.py[cod]",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".tox/",
    ".venv/",
    "node_modules/",
    ".DS_Store",
)
MAX_LISTED_FILES = 5_000


class RunFailed(Exception):
    """The run cannot go on; the message is the user-facing reason (one or two lines)."""


class WorkspaceLost(RunFailed):
    """The sandbox (and the uncommitted work in it) disappeared mid-run."""


async def run(
    sandbox: Sandbox,
    command: str,
    *,
    cwd: str | None = None,
    seconds: float | None = None,
    networked: bool = False,
) -> CommandResult:
    """A command in the sandbox (in a worker thread), with `seconds` as its time limit;
    `networked`: it may use the network, as far as the sandbox's policy allows."""
    return await asyncio.to_thread(
        sandbox.run, command, cwd=cwd, env=GIT_ENV, timeout=seconds, networked=networked
    )


async def git(sandbox: Sandbox, repo_dir: str, *args: str, check: bool = True) -> str:
    result = await run(sandbox, shlex.join(["git", *HARDENING, *args]), cwd=repo_dir)
    if check and not result.ok:
        raise RunFailed(f"git {args[0]} failed in the sandbox: {result.output.strip()[-500:]}")
    return result.output.strip()


def repo_dir_of(sandbox: Sandbox) -> str:
    return f"{sandbox.work_dir.rstrip('/')}/{REPO_DIR}"


async def has_checkout(sandbox: Sandbox) -> bool:
    return (await run(sandbox, f"test -d {REPO_DIR}/.git")).ok


BRANCH_GONE = (
    "the branch {branch} no longer exists in the repository, so there is nothing to add to"
)


async def clone(
    sandbox: Sandbox, checkout: Checkout, branch: str, *, existing: bool = False
) -> tuple[str, str, str, str]:
    """Fresh clone on the work branch (reused from the remote when it exists; with
    `existing`, a pull request's branch, it must exist).

    Returns (repo_dir, base_branch, base_sha, start_sha).
    """
    if checkout.credentials is not None:
        sandbox.add_secret(checkout.credentials.password)
    await run(sandbox, f"rm -rf {REPO_DIR}")
    watch, cloning = Stopwatch(), shlex.join(["git", "clone", checkout.url, REPO_DIR])
    try:
        await asyncio.to_thread(
            sandbox.clone,
            checkout.url,
            REPO_DIR,
            branch=checkout.default_branch,
            credentials=checkout.credentials,
        )
    except SandboxError as exc:  # the clone is a command of its own: into the transcript
        current().emit(
            "command", command=cloning, exit_code=1, seconds=watch.seconds, output=str(exc)
        )
        raise
    current().emit("command", command=cloning, exit_code=0, seconds=watch.seconds, output="")
    repo_dir = repo_dir_of(sandbox)
    base_branch = checkout.default_branch or await git(
        sandbox, repo_dir, "rev-parse", "--abbrev-ref", "HEAD"
    )
    base_sha = await git(sandbox, repo_dir, "rev-parse", "HEAD")
    remote = f"refs/remotes/origin/{branch}"
    if await git(sandbox, repo_dir, "rev-parse", "--verify", "-q", remote, check=False):
        await git(sandbox, repo_dir, "checkout", "-q", "-B", branch, remote)
    elif existing:
        raise RunFailed(BRANCH_GONE.format(branch=branch))
    else:
        await git(sandbox, repo_dir, "checkout", "-q", "-b", branch)
    start_sha = await git(sandbox, repo_dir, "rev-parse", "HEAD")
    excludes = "\n".join(LOCAL_EXCLUDES)
    await run(sandbox, f"printf '%s\\n' {shlex.quote(excludes)} >> .git/info/exclude", cwd=repo_dir)
    return repo_dir, base_branch, base_sha, start_sha


async def read_at(sandbox: Sandbox, repo_dir: str, sha: str, path: str) -> str | None:
    """A file's text at a commit (the default branch's, never the work tree's), or None."""
    result = await run(
        sandbox, shlex.join(["git", *HARDENING, "show", f"{sha}:{path}"]), cwd=repo_dir
    )
    return result.output if result.ok else None


async def read_repo_rules(
    sandbox: Sandbox, repo_dir: str, base_sha: str
) -> tuple[RepoConfig, str | None, str | None, str | None]:
    """(config, instructions, instructions file, test command) from the default branch."""
    try:
        config = parse_config(await read_at(sandbox, repo_dir, base_sha, CONFIG_FILE))
    except RepoConfigError as exc:
        raise RunFailed(str(exc)) from None
    instructions, source = None, None
    for name in INSTRUCTION_FILES:
        text = await read_at(sandbox, repo_dir, base_sha, name)
        if text and text.strip():
            visible = await asyncio.to_thread(sanitize, text)  # a long file: off the loop
            instructions, source = visible[:MAX_INSTRUCTIONS_CHARS], name
            break
    command = config.test or instructed_test_command(instructions)
    if command is None:
        listing = await git(sandbox, repo_dir, "ls-tree", "-r", "--name-only", base_sha)
        paths = listing.splitlines()[:MAX_LISTED_FILES]
        files = {p: await read_at(sandbox, repo_dir, base_sha, p) for p in _probe_files(paths)}
        command = detect_test_command(paths, files.get)
    return config, instructions, source, command


def _probe_files(paths: list[str]) -> list[str]:
    wanted = {"pyproject.toml", "setup.cfg", "tox.ini", "package.json"}
    wanted |= {"Makefile", "makefile", "GNUmakefile"}
    return [p for p in paths if p in wanted]


async def run_setup(sandbox: Sandbox, repo_dir: str, script: str, seconds: float) -> str | None:
    """Run the repo's setup script, with the network its policy grants; what it creates
    untracked stays out of commits. Returns a note when it had to run without the network
    its policy grants (e.g. no user-mode network stack installed)."""
    offline = sandbox.offline_reason()
    result = await run(sandbox, script, cwd=repo_dir, seconds=seconds, networked=True)
    if not result.ok:
        why = "timed out" if result.timed_out else f"failed with exit code {result.exit_code}"
        if offline is not None:
            why += f" (it ran without network: {offline})"
        raise RunFailed(
            f"the setup script from {CONFIG_FILE} {why}:\n{result.output.strip()[-1500:]}"
        )
    untracked = await git(
        sandbox, repo_dir, "ls-files", "--others", "--exclude-standard", "--directory"
    )
    if untracked:
        lines = "\n".join("/" + path for path in untracked.splitlines())
        await run(
            sandbox, f"printf '%s\\n' {shlex.quote(lines)} >> .git/info/exclude", cwd=repo_dir
        )
    return None if offline is None else f"setup ran without network: {offline}"


async def has_changes(sandbox: Sandbox, repo_dir: str, start_sha: str) -> bool:
    dirty = await git(sandbox, repo_dir, "status", "--porcelain")
    head = await git(sandbox, repo_dir, "rev-parse", "HEAD")
    return bool(dirty) or head != start_sha


async def fork_point(sandbox: Sandbox, repo_dir: str, base_sha: str) -> str:
    """Where the work branch left the default branch: its commits since are the branch's
    work, pushed by an earlier try or not (a retried run resumes on the pushed branch)."""
    return await git(sandbox, repo_dir, "merge-base", base_sha, "HEAD")


async def staged_diff(sandbox: Sandbox, repo_dir: str, start_sha: str) -> tuple[str, str]:
    """Stage everything; (diff --stat, diff) against where the work branch started."""
    await git(sandbox, repo_dir, "add", "-A")
    stat = await git(sandbox, repo_dir, "diff", "--cached", "--stat", start_sha)
    diff = await git(sandbox, repo_dir, "diff", "--cached", start_sha)
    return stat, diff


async def commit(sandbox: Sandbox, repo_dir: str, message: str, author: GitIdentity) -> str:
    """Commit everything; the head sha (the agent may have committed on its own already)."""
    sha = await asyncio.to_thread(sandbox.commit, repo_dir, message, author=author)
    return sha or await git(sandbox, repo_dir, "rev-parse", "HEAD")
