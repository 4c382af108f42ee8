"""What each run of a thread did, read back from the thread's checkpoints (read-only).

A thread (one issue or pull request) keeps one checkpoint per completed step of every run it
had, oldest first. They are split between the thread's runs like this:

- A run that starts afresh begins at an `input` checkpoint whose pending input names it
  (`__start__.run_id`). That checkpoint and the next one still hold the previous run's values
  (LangGraph merges the new input into them before the first step runs); the run's own state
  begins with the checkpoint after its first step (`prepare`, which resets everything).
- A run that continues another (`retry` from the last good step) writes no input checkpoint:
  its checkpoints are those stamped after it was created.

A run's usage is what its own checkpoints added: all of it for a fresh start, the growth over
the last checkpoint before it for a continuation. A pull request counts as opened at the first
checkpoint of the run whose outcome has a URL it did not inherit.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.agent.state import RunInput
from app.agent.usage import Usage

if TYPE_CHECKING:
    # Only named: the saver is opened elsewhere (app.agent.checkpoint), so this module imports
    # no langgraph.
    from langgraph.checkpoint.base import BaseCheckpointSaver

MAX_CHECKPOINTS = 2_000  # per thread: a long history is cut, not read forever
INPUT_KEYS = frozenset(RunInput.__annotations__)


@dataclass(frozen=True, slots=True)
class RunKey:
    """What this module needs of a run: its id and when it was created."""

    id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Checkpoint:
    at: datetime
    source: str
    values: Mapping[str, Any]

    @property
    def starts(self) -> str | None:
        """The run an `input` checkpoint starts afresh, if it is one."""
        if self.source != "input":
            return None
        start = self.values.get("__start__")
        run_id = start.get("run_id") if isinstance(start, Mapping) else None
        return run_id if isinstance(run_id, str) else None


@dataclass(frozen=True)
class RunRecord:
    """A run as its checkpoints tell it (empty before its first checkpoint)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    pr_opened_at: datetime | None = None
    last_at: datetime | None = None


async def read_thread(saver: BaseCheckpointSaver[str], thread_id: str) -> list[Checkpoint]:
    """The thread's top-level checkpoints, oldest first."""
    config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    found: list[Checkpoint] = []
    async for item in saver.alist(config, limit=MAX_CHECKPOINTS):
        at = datetime.fromisoformat(item.checkpoint["ts"])
        source = str(item.metadata.get("source") or "") if item.metadata else ""
        found.append(Checkpoint(at, source, dict(item.checkpoint.get("channel_values") or {})))
    found.reverse()
    return found


def split_runs(checkpoints: Sequence[Checkpoint], runs: Sequence[RunKey]) -> dict[str, RunRecord]:
    """Each run's record, for the runs of one thread (in any order)."""
    ordered = sorted(runs, key=lambda run: run.created_at)
    starts = {cp.starts: index for index, cp in enumerate(checkpoints) if cp.starts}
    times = [cp.at for cp in checkpoints]
    begins = [
        starts[run.id] if run.id in starts else bisect.bisect_left(times, run.created_at)
        for run in ordered
    ]
    records: dict[str, RunRecord] = {}
    for position, run in enumerate(ordered):
        begin = begins[position]
        later = [b for b in begins[position + 1 :] if b >= begin]
        end = min(later) if later else len(checkpoints)
        records[run.id] = _record(checkpoints, begin, end)
    return records


def _record(checkpoints: Sequence[Checkpoint], begin: int, end: int) -> RunRecord:
    own = list(checkpoints[begin:end])
    if not own:
        return RunRecord()
    fresh = own[0].starts is not None
    before = checkpoints[begin - 1] if begin > 0 and not fresh else None
    if fresh:
        start = own[0].values.get("__start__")
        started = {k: v for k, v in dict(start or {}).items() if k in INPUT_KEYS}
        own = own[2:]  # the input and the step that applies it: the previous run's values
        if not own:
            return RunRecord(values=started, last_at=checkpoints[end - 1].at)
    last = own[-1]
    baseline = _usage(before.values) if before else Usage()
    inherited = _pr_url(before.values) if before else None
    opened = next(
        (cp.at for cp in own if _pr_url(cp.values) and _pr_url(cp.values) != inherited), None
    )
    return RunRecord(
        values=last.values,
        usage=_growth(_usage(last.values), baseline),
        pr_opened_at=opened,
        last_at=last.at,
    )


def _usage(values: Mapping[str, Any]) -> Usage:
    data = values.get("usage")
    if not isinstance(data, dict):
        return Usage()
    try:
        return Usage(**data)
    except TypeError:  # a state from another version: shown as no usage
        return Usage()


def _growth(now: Usage, before: Usage) -> Usage:
    return Usage(
        model_calls=max(0, now.model_calls - before.model_calls),
        input_tokens=max(0, now.input_tokens - before.input_tokens),
        output_tokens=max(0, now.output_tokens - before.output_tokens),
        cost_usd=max(0.0, now.cost_usd - before.cost_usd),
        seconds=max(0.0, now.seconds - before.seconds),
    )


def _pr_url(values: Mapping[str, Any]) -> str | None:
    outcome = values.get("outcome")
    url = outcome.get("url") if isinstance(outcome, Mapping) else None
    return url if isinstance(url, str) and url else None
