"""The RunHost wrappers of the run job, around the recording host of the agent tests."""

from __future__ import annotations

from pathlib import Path

from app.agent.budget import Usage
from app.agent.host import RunOutcome
from app.agent.state import PlanDict
from app.runs.host_wrappers import AsksPlan, StoppedReason
from tests.agent.conftest import RecordingHost

PLAN = PlanDict(title="Fix add()", steps=["Make add() return a + b"])


async def test_a_stopped_run_is_reported_with_the_reason_the_front_door_stored(
    tmp_path: Path,
) -> None:
    host = RecordingHost(tmp_path)
    stored: list[str | None] = ["stopped by @carol", None]

    async def reason() -> str | None:
        if not stored:
            raise ConnectionError("database gone")
        return stored.pop(0)

    wrapped = StoppedReason(host, reason)
    stopped = RunOutcome("stopped", "r1", Usage(model_calls=3), reason="the run was stopped")
    for _ in range(3):  # stored reason, none stored, store unreadable
        await wrapped.finish(stopped)
    await wrapped.finish(RunOutcome("failed", "r1", Usage(), reason="boom"))
    assert [o.reason for o in host.outcomes] == [
        "stopped by @carol",
        "the run was stopped",
        "the run was stopped",
        "boom",
    ]
    assert host.outcomes[0].usage.model_calls == 3


async def test_the_plan_question_is_asked_before_a_plan_that_waits_is_shown(
    tmp_path: Path,
) -> None:
    host = RecordingHost(tmp_path)
    asked: list[tuple[int, int]] = []

    def shown() -> int:
        return len(host.calls("plan"))

    async def ask(revision: int) -> None:
        asked.append((revision, shown()))  # how many plans were shown by then

    wrapped = AsksPlan(host, ask)
    await wrapped.post_plan(PLAN, awaiting_approval=False)  # auto-approved: nothing to answer
    await wrapped.post_plan(PLAN, awaiting_approval=True, revision=2)
    await wrapped.post_plan(PLAN, awaiting_approval=True)
    assert asked == [(2, 1), (1, 2)]
    assert shown() == 3
