"""A scripted model that many runs can share at once: each reply is chosen from the request
alone (which step's tools it offers, how many turns the conversation has), never from the
order requests arrived in, so concurrent runs cannot steal each other's replies.

The trajectory is the end-to-end tests' (tests/agent/conftest.py): read calc.py and submit a
plan; write todos, edit calc.py, run the tests, summarise; write the pull request's text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.model import ModelRequest, Reply, ScriptedModel, calls, offers, text, tool

TEST_COMMAND = "python3 -m unittest -q"
BUGGY = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
TEST_FILE = """\
import unittest

from calc import add


class AddTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)
"""
REPO_FILES = {
    "calc.py": BUGGY,
    "test_calc.py": TEST_FILE,
    ".open-swe.yml": f"test: {TEST_COMMAND}\n",
    "AGENTS.md": "# Notes\n\nKeep functions small.\n",
}
PLAN: dict[str, Any] = {
    "title": "Fix add()",
    "steps": ["Make add() in calc.py return a + b", "Run the tests"],
}
_CHECKOUT = re.compile(r"checked out at (/\S+) \(use absolute paths")


def turns(request: ModelRequest) -> int:
    """Assistant turns so far in this request's conversation."""
    return sum(1 for m in request.body.get("messages", []) if m.get("role") == "assistant")


def checkout(request: ModelRequest) -> str:
    return request.find(_CHECKOUT.pattern)


def plan_step(request: ModelRequest) -> Reply:
    if turns(request) == 0:
        return tool("read_file", file_path=f"{checkout(request)}/calc.py")
    return tool("SubmitPlan", **PLAN)


def code_step(request: ModelRequest) -> Reply:
    step = turns(request)
    if step == 0:
        return calls(("write_todos", {"todos": [{"content": "fix add", "status": "in_progress"}]}))
    if step == 1:
        return tool(
            "edit_file",
            file_path=f"{checkout(request)}/calc.py",
            old_string="return a - b",
            new_string="return a + b",
        )
    if step == 2:
        return tool("execute", command=TEST_COMMAND)
    return text("Changed add() in calc.py to return the sum; the tests pass.")


def pr_step(_request: ModelRequest) -> Reply:
    return tool(
        "PullRequestText",
        title="Fix add() to return the sum",
        summary="`add()` subtracted its arguments; it now adds them.",
    )


CALLS_PER_RUN = 2 + 4 + 1  # plan, code, pull request


@dataclass
class Pace:
    """How long the model takes to answer, in seconds (may change between batches)."""

    seconds: float = 0.0


def script_runs(model: ScriptedModel, *, delay: float = 0.0) -> Pace:
    """Every run's trajectory, each reply after `pace.seconds` (set to `delay` at first)."""
    pace = Pace(delay)

    def later(step: Callable[[ModelRequest], Reply]) -> Callable[[ModelRequest], Reply]:
        def reply(request: ModelRequest) -> Reply:
            if pace.seconds > 0:
                time.sleep(pace.seconds)  # the fake's own thread for this request
            return step(request)

        return reply

    model.on(offers("SubmitPlan"), later(plan_step), repeat_last=True)
    model.on(offers("PullRequestText"), later(pr_step), repeat_last=True)
    model.on(offers("edit_file"), later(code_step), repeat_last=True)
    return pace
