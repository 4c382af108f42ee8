"""The transcript's emitter: redacted, bounded, JSON-safe, and it never raises."""

from __future__ import annotations

import json
import threading

from app.text.redact import REDACTED, Redactor
from app.transcript import (
    MAX_OUTPUT_CHARS,
    MAX_TEXT_CHARS,
    NO_TRANSCRIPT,
    RunEvent,
    Transcript,
    commands_quiet,
    commands_recorded,
)


def collecting() -> tuple[list[RunEvent], Transcript]:
    found: list[RunEvent] = []
    return found, Transcript("r1", found.append, Redactor(["hunter2-secret-value"]))


def test_an_event_is_redacted_bounded_and_json_safe() -> None:
    found, transcript = collecting()
    transcript.emit(
        "command",
        command="curl https://x:hunter2-secret-value@example.com",
        output="o" * 50_000 + " ghp_" + "a" * 36,
        note="n" * 10_000,
        args={"path": "a.py", "nested": {"token": "hunter2-secret-value"}},
        exit_code=1,
        seconds=float("nan"),
        when=object(),
    )
    [event] = found
    data = event.data
    assert event.run_id == "r1"
    assert event.kind == "command"
    assert "hunter2" not in json.dumps(data)
    assert data["args"]["nested"]["token"] == REDACTED
    assert len(data["output"]) <= MAX_OUTPUT_CHARS + 60
    assert data["output"].endswith(REDACTED)  # the tail is kept: errors are at the end
    assert "characters cut" in data["output"]
    assert len(data["note"]) <= MAX_TEXT_CHARS + 60
    assert data["exit_code"] == 1
    assert data["seconds"] is None
    json.dumps(event.shown())


def test_a_failing_sink_never_reaches_the_run() -> None:
    def broken(_event: RunEvent) -> None:
        raise RuntimeError("database on fire")

    Transcript("r1", broken).emit("step", step="plan")
    NO_TRANSCRIPT.emit("step", step="plan")


def test_commands_are_quiet_inside_the_block_and_in_threads_it_starts() -> None:
    seen: list[bool] = []
    assert commands_recorded()
    with commands_quiet():
        seen.append(commands_recorded())
        import contextvars

        context = contextvars.copy_context()
        thread = threading.Thread(target=lambda: seen.append(context.run(commands_recorded)))
        thread.start()
        thread.join()
    assert seen == [False, False]
    assert commands_recorded()
