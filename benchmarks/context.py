"""Context that stays small: the tokens sent to the model over one long, fixed trajectory.

A scripted model drives the coding agent through CALLS model calls over a real repository (a
copy of open-swe's own `app/`): it reads files (by range, and whole with `cat`), greps, runs
commands with long output. The same trajectory runs twice, in the same process, against
the same loopback model server:

- the keep-everything agent (the floor to beat): LangChain's agent with the same tools and
  nothing else: every tool result kept whole, every message resent on every call;
- open-swe's coding agent (app.agent.agents.implement): tool results cut head and tail,
  long histories summarised, Anthropic prompt caching marks (`cache_control`).

Tokens are what the fake model counts, as Anthropic does (about 4 characters a token):
every request's input, and of it what the prompt cache served (usage's
`cache_read_input_tokens`, derived by the fake from the request's `cache_control` marks).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from benchmarks.processes import REPO_ROOT
from benchmarks.stats import Summary
from tests.fakes.model import ModelRequest, Reply, ScriptedModel, offers, text, tool

CALLS = 64
QUICK_CALLS = 16
GIT_ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": "/nonexistent"}
SUMMARY = "SUMMARY: read the app's modules; nothing changed yet."


@dataclass
class Tokens:
    calls: int = 0
    sent: int = 0  # all input tokens of every request
    cache_read: int = 0
    cache_written: int = 0

    @property
    def uncached(self) -> int:
        return self.sent - self.cache_read


def repository(work: Path) -> tuple[Path, list[str]]:
    """A git repository holding a copy of open-swe's `app/`; its largest Python files (paths
    relative to the repository)."""
    repo = work / "repo"
    shutil.copytree(REPO_ROOT / "app", repo / "app", ignore=shutil.ignore_patterns("__pycache__"))
    for argv in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=a", "-c", "user.email=a@example.com", "commit", "-qm", "app"],
    ):
        subprocess.run(["git", *argv], cwd=repo, env=GIT_ENV, check=True, capture_output=True)
    files = sorted(repo.rglob("*.py"), key=lambda p: p.stat().st_size, reverse=True)
    return repo, [str(p.relative_to(repo)) for p in files[:24]]


def trajectory(repo_dir: str, files: list[str], calls: int) -> list[Reply]:
    """calls - 1 tool calls, then the closing words: a fixed mix of what coding agents do."""
    replies: list[Reply] = []
    for i in range(calls - 1):
        path = f"{repo_dir}/{files[i % len(files)]}"
        kind = i % 4
        if kind == 0:
            replies.append(tool("read_file", file_path=path, offset=0, limit=400))
        elif kind == 1:
            replies.append(tool("execute", command="grep -rn 'def ' app | head -300"))
        elif kind == 2:
            replies.append(tool("read_file", file_path=path, offset=100, limit=100))
        else:
            replies.append(tool("execute", command=f"cat {path}"))
    return [*replies, text("Read what matters; no change needed.")]


def is_summary_request(request: ModelRequest) -> bool:
    return not request.tool_names


def count(model: ScriptedModel, first: int) -> Tokens:
    tokens = Tokens()
    for request, (read, written) in zip(
        model.requests[first:], model.cache_usage[first:], strict=True
    ):
        tokens.calls += 1
        tokens.sent += max(1, len(request.raw) // 4)
        tokens.cache_read += read
        tokens.cache_written += written
    return tokens


async def _run(work: Path, calls: int) -> tuple[Tokens, Tokens]:
    from langchain.agents import create_agent
    from langchain_core.messages import HumanMessage

    from app.agent import agents, workspace
    from app.agent.budget import Budget
    from app.agent.host import Checkout
    from app.agent.models import chat_model
    from app.agent.tools import RepoWorkingDirectory, filesystem
    from app.config import Settings
    from app.sandbox.local import LocalProvider
    from app.text.redact import Redactor

    source, files = repository(work)
    with ScriptedModel() as model:
        values: dict[str, Any] = {
            "anthropic_api_key": SecretStr("sk-ant-context-bench"),
            "anthropic_base_url": model.url,
            "sandbox": "local",
            "data_dir": work / "data",
            "max_model_calls": 10 * calls,
            "max_cost_usd": 10_000.0,
            "max_tokens_per_run": 10**9,
            "command_timeout": 60.0,
        }
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        provider = LocalProvider(work / "sandboxes", secrets=(), command_timeout=60)
        sandbox = provider.acquire({"bench": "context"})
        repo, *_ = await workspace.clone(sandbox, Checkout(url=str(source)), "open-swe/bench")
        system = f"You fix bugs. The repository is checked out at {repo}."
        request = "Find where deliveries are retried and explain it."

        model.on(is_summary_request, text(SUMMARY), repeat_last=True)
        model.on(offers("edit_file"), *trajectory(repo, files, calls))
        everything = create_agent(
            chat_model(settings, "implement"),
            system_prompt=system,
            middleware=[
                filesystem(sandbox, read_only=False, max_seconds=60),
                RepoWorkingDirectory(repo),
            ],
        )
        await everything.ainvoke({"messages": [HumanMessage(request)]}, {"recursion_limit": 999})
        floor = count(model, 0)

        first = len(model.requests)
        model.on(offers("edit_file"), *trajectory(repo, files, calls))
        model._rules.pop(1)  # the keep-everything agent's script is spent
        await agents.implement(
            settings=settings,
            redactor=Redactor(()),
            sandbox=sandbox,
            budget=Budget(settings, None, model="claude-sonnet-4-5"),
            model=chat_model(settings, "implement"),
            summarizer=chat_model(settings, "summarize"),
            repo_dir=repo,
            system=system,
            request=request,
        )
        ours = count(model, first)
        if model.unmatched:
            raise RuntimeError(f"{len(model.unmatched)} context-benchmark requests unmatched")
    return floor, ours


def run(quick: bool) -> tuple[str, Summary, list[Summary], str]:
    """The table (thousands of tokens, totals over the trajectory) and a note."""
    calls = QUICK_CALLS if quick else CALLS
    with tempfile.TemporaryDirectory(prefix="open-swe-context-") as work:
        Path(work).chmod(0o711)
        floor, ours = asyncio.run(_run(Path(work), calls))

    def total(name: str, tokens: int, n: int) -> Summary:
        return Summary(name, n, tokens / 1000, tokens / 1000)

    title = f"Input tokens over a {calls}-call trajectory (thousands, totals)"
    rows = [
        total("open-swe: all input", ours.sent, ours.calls),
        total("open-swe: input not served by the cache", ours.uncached, ours.calls),
        total("open-swe: cache reads", ours.cache_read, ours.calls),
    ]
    note = (
        f"context: {calls} scripted calls; the keep-everything agent sent "
        f"{floor.sent / 1000:.0f}k input tokens in {floor.calls} calls, open-swe "
        f"{ours.sent / 1000:.0f}k in {ours.calls} (summaries included), of which "
        f"{ours.cache_read / 1000:.0f}k were cache reads and {ours.cache_written / 1000:.0f}k "
        f"cache writes (usage fields)"
    )
    return title, total("keep-everything agent (baseline)", floor.sent, floor.calls), rows, note


if __name__ == "__main__":
    import sys

    from benchmarks.stats import render_table

    title, baseline, rows, note = run("--quick" in sys.argv)
    print(render_table(title, baseline, rows, unit="ktok"))
    print(note)
