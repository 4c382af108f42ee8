"""The floor for the agent's orchestration cost: a framework-free loop doing a run's work.

`python -m benchmarks.bare_loop --model-url URL --remote PATH --work DIR --batches 1,1,N`: runs
started together in batches, one batch after the other, each run making the same model calls as an open-swe run over the same scripted model
(benchmarks.script: plan, code, pull request text; the same tools offered, the whole
conversation resent each turn, as the Anthropic Messages API wants) and running the same
commands (clone, read, edit, the tests, commit, push), with httpx and subprocesses and
nothing else. One warm-up run first (imports, first connection), then the batches. Prints one
JSON line, per batch: CPU seconds of this process (all threads; not the commands it ran),
model calls, wall time, and how many runs pushed a fixed calc.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.script import FIXED, TEST_COMMAND

GIT_ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": "/nonexistent"}
MODEL = "claude-sonnet-4-5-20250929"


def _schema(**properties: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in properties.items()},
        "required": list(properties),
    }


def _tool(name: str, description: str, **properties: str) -> dict[str, Any]:
    return {"name": name, "description": description, "input_schema": _schema(**properties)}


READ_TOOLS = [
    _tool("ls", "List files in a directory.", path="string"),
    _tool("read_file", "Read a file.", file_path="string"),
    _tool("glob", "Find files by pattern.", pattern="string"),
    _tool("grep", "Search file contents.", pattern="string"),
]
CODE_TOOLS = [
    *READ_TOOLS,
    _tool("write_file", "Write a file.", file_path="string", content="string"),
    _tool(
        "edit_file", "Replace text.", file_path="string", old_string="string", new_string="string"
    ),
    _tool("execute", "Run a shell command.", command="string"),
    _tool("write_todos", "Keep a todo list.", todos="array"),
]
PLAN_TOOLS = [*READ_TOOLS, _tool("SubmitPlan", "Submit the plan.", title="string", steps="array")]
PR_TOOLS = [_tool("PullRequestText", "PR text.", title="string", summary="string")]


class Loop:
    def __init__(self, client: httpx.AsyncClient, model_url: str) -> None:
        self.client = client
        self.url = f"{model_url}/v1/messages"
        self.calls = 0

    async def ask(self, system: str, messages: list[dict[str, Any]], tools: list[Any]) -> Any:
        body = {"model": MODEL, "max_tokens": 4096, "system": system, "messages": messages}
        body["tools"] = tools
        headers = {"x-api-key": "sk-ant-bare", "anthropic-version": "2023-06-01"}
        answer = await self.client.post(self.url, json=body, headers=headers)
        answer.raise_for_status()
        self.calls += 1
        return answer.json()

    async def agent(self, system: str, task: str, tools: list[Any], repo: Path) -> Any:
        """Call the model, run the tools it asks for, until it stops (or submits)."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
        while True:
            reply = await self.ask(system, messages, tools)
            messages.append({"role": "assistant", "content": reply["content"]})
            uses = [b for b in reply["content"] if b["type"] == "tool_use"]
            if not uses:
                return reply
            results = []
            for use in uses:
                if use["name"] in ("SubmitPlan", "PullRequestText"):
                    return use["input"]
                output = await run_tool(use["name"], use["input"], repo)
                results.append({"type": "tool_result", "tool_use_id": use["id"], "content": output})
            messages.append({"role": "user", "content": results})


async def command(*argv: str, cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=GIT_ENV,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return out.decode(errors="replace")


def file_tool(name: str, arguments: dict[str, Any]) -> str:
    path = Path(arguments["file_path"])
    if name == "read_file":
        return path.read_text()
    path.write_text(path.read_text().replace(arguments["old_string"], arguments["new_string"]))
    return "edited"


async def run_tool(name: str, arguments: dict[str, Any], repo: Path) -> str:
    if name in ("read_file", "edit_file"):  # off the event loop, as the app's sandbox does
        return await asyncio.to_thread(file_tool, name, arguments)
    if name == "execute":
        return await command("sh", "-c", arguments["command"], cwd=repo)
    return "ok"


async def one_run(loop: Loop, remote: Path, work: Path, name: str) -> bool:
    repo = work / name
    await command("git", "clone", "-q", str(remote), str(repo), cwd=work)
    task = f"Fix add(). The repository is checked out at {repo} (use absolute paths)."
    await loop.agent("You plan changes.", task, PLAN_TOOLS, repo)
    await loop.agent("You fix bugs.", task, CODE_TOOLS, repo)
    await command("sh", "-c", TEST_COMMAND, cwd=repo)
    await command("git", "checkout", "-q", "-b", f"bare/{name}", cwd=repo)
    await command("git", "-c", "user.name=bot", "-c", "user.email=bot@example.com",
                  "commit", "-qam", "Fix add()", cwd=repo)  # fmt: skip
    await command("git", "push", "-q", "origin", f"bare/{name}", cwd=repo)
    diff = await command("git", "diff", "HEAD~1", cwd=repo)
    await loop.agent("You write pull requests.", f"Describe:\n{diff}", PR_TOOLS, repo)
    pushed = await command("git", "show", f"bare/{name}:calc.py", cwd=remote)
    return pushed == FIXED


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    batches = []
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=None)) as client:
        loop = Loop(client, args.model_url)
        await one_run(loop, args.remote, args.work, "warm-up")
        for number, size in enumerate(int(n) for n in args.batches.split(",")):
            cpu, calls, started = time.process_time(), loop.calls, time.monotonic()
            done = await asyncio.gather(
                *(one_run(loop, args.remote, args.work, f"run-{number}-{i}") for i in range(size))
            )
            batches.append(
                {
                    "runs": size,
                    "cpu_seconds": time.process_time() - cpu,
                    "model_calls": loop.calls - calls,
                    "wall": time.monotonic() - started,
                    "fixed": sum(done),
                }
            )
    return batches


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_loop")
    parser.add_argument("--model-url", required=True)
    parser.add_argument("--remote", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--batches", default="1", help="runs at once, batch after batch: 1,1,5")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(main_async(args))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
