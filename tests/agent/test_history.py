"""Runs read back from a thread's checkpoints, written by a real LangGraph graph and saver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from app.agent.history import Checkpoint, RunKey, read_thread, split_runs

THREAD = "acme/widgets#7"
URL = "https://github.example/acme/widgets/pull/8"


class State(TypedDict, total=False):
    run_id: str
    thread_id: str
    fail: bool
    steps_done: list[str]
    usage: dict[str, Any]
    outcome: dict[str, Any] | None


def usage(calls: int) -> dict[str, Any]:
    return {
        "model_calls": calls,
        "input_tokens": 100 * calls,
        "output_tokens": 10 * calls,
        "cost_usd": 0.01 * calls,
        "seconds": float(calls),
    }


FAILING = {"work": False}


async def prepare(state: State) -> dict[str, Any]:
    return {"steps_done": ["prepare"], "usage": usage(1), "outcome": None}


async def work(state: State) -> dict[str, Any]:
    if FAILING["work"]:
        raise RuntimeError("the sandbox went away")
    calls = state["usage"]["model_calls"] + 2
    return {"steps_done": [*state["steps_done"], "implement"], "usage": usage(calls)}


async def publish(state: State) -> dict[str, Any]:
    return {
        "steps_done": [*state["steps_done"], "publish"],
        "outcome": {"url": URL, "status": "succeeded"},
    }


@pytest.fixture
async def graph() -> AsyncIterator[Any]:
    builder = StateGraph(State)
    for name, node in (("prepare", prepare), ("work", work), ("publish", publish)):
        builder.add_node(name, node)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "work")
    builder.add_edge("work", "publish")
    builder.add_edge("publish", END)
    async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
        yield builder.compile(checkpointer=saver), saver


CONFIG: Any = {"configurable": {"thread_id": THREAD}}


def now() -> datetime:
    return datetime.now(UTC)


async def test_each_run_gets_its_own_checkpoints_usage_and_pull_request(graph: Any) -> None:
    compiled, saver = graph
    first = RunKey("r1", now())
    await compiled.ainvoke({"run_id": "r1", "thread_id": THREAD}, CONFIG)
    # A second run starts afresh on the same thread and fails in `work`.
    second = RunKey("r2", now())
    FAILING["work"] = True
    try:
        with pytest.raises(RuntimeError):
            await compiled.ainvoke({"run_id": "r2", "thread_id": THREAD}, CONFIG)
    finally:
        FAILING["work"] = False
    # A retry goes on from r2's last good step (no new input) and opens the pull request.
    retry = RunKey("r3", now())
    await compiled.ainvoke(None, CONFIG)
    queued = RunKey("r4", now() + timedelta(seconds=5))  # not started yet

    checkpoints = await read_thread(saver, THREAD)
    assert [cp.at for cp in checkpoints] == sorted(cp.at for cp in checkpoints)
    records = split_runs(checkpoints, [retry, queued, second, first])  # any order

    one = records["r1"]
    assert one.values["run_id"] == "r1"
    assert one.values["steps_done"] == ["prepare", "implement", "publish"]
    assert (one.usage.model_calls, one.usage.input_tokens) == (3, 300)
    assert one.pr_opened_at is not None
    assert one.pr_opened_at >= first.created_at

    two = records["r2"]
    assert two.values["run_id"] == "r2"
    assert two.values["steps_done"] == ["prepare"]  # not r1's steps: its own, after prepare
    assert (two.usage.model_calls, two.usage.cost_usd) == (1, pytest.approx(0.01))
    assert two.pr_opened_at is None

    three = records["r3"]
    assert three.values["steps_done"] == ["prepare", "implement", "publish"]
    assert (three.usage.model_calls, three.usage.output_tokens) == (2, 20)  # its growth only
    assert three.pr_opened_at is not None
    assert three.pr_opened_at >= retry.created_at

    assert records["r4"].values == {}
    assert records["r4"].usage.tokens == 0


def test_a_run_still_in_its_first_step_shows_only_its_input() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    earlier = {"run_id": "r1", "steps_done": ["prepare", "publish"], "usage": usage(9)}
    checkpoints = [
        Checkpoint(at, "loop", earlier),
        Checkpoint(at + timedelta(1), "input", {**earlier, "__start__": {"run_id": "r2"}}),
        Checkpoint(at + timedelta(2), "loop", {**earlier, "run_id": "r2"}),  # before prepare
    ]
    records = split_runs(
        checkpoints, [RunKey("r1", at - timedelta(1)), RunKey("r2", at + timedelta(hours=1))]
    )

    assert records["r2"].values == {"run_id": "r2"}
    assert records["r2"].usage.tokens == 0
    assert records["r1"].values == earlier
    assert records["r1"].usage.model_calls == 9
