"""A run's transcript, the audit log of what it did: the one small interface every seam emits to.

The workflow's steps, the model and tool callbacks, the sandbox's command wrapper, the GitHub
host and the lifecycle each call `emit(kind, **data)` on the run's `Emitter` as things happen.
An emitter never raises and never waits: it redacts (the one policy, `app.text.redact`), bounds
every text, and hands the event to a sink that batches writes to the store
(app.runs.transcript). A run without a transcript (local mode, tests) gets `NO_TRANSCRIPT`.

Sandbox commands run in worker threads: `emit` is thread-safe as long as the sink is.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import structlog

from app.text.redact import Redactor

log = structlog.get_logger(__name__)

EventKind = Literal[
    "status",  # the run's lifecycle status changed (queued, running, waiting, ended...)
    "step",  # a workflow step completed (prepare, plan, approval, implement, verify...)
    "decision",  # a person answered the plan, or stopped the run: who, and what
    "model",  # one model call: model, tokens, estimated cost
    "tool",  # one tool call of an agent: name, arguments, result (bounded)
    "command",  # one sandbox command: exit code, duration, output (bounded)
    "tests",  # the verify step's verdict
    "sandbox",  # a sandbox acquired: created or reused, and how long it took
    "push",  # a branch pushed
    "github",  # a write on GitHub: a comment posted or edited, a pull request opened...
]
EVENT_KINDS: tuple[EventKind, ...] = EventKind.__args__  # type: ignore[attr-defined]

MAX_TEXT_CHARS = 2_000  # of any text value of an event
MAX_OUTPUT_CHARS = 8_000  # of a command's or tool's output (head and tail kept)
OUTPUT_KEYS = frozenset({"output", "result"})
MAX_ITEMS = 50  # of a list or mapping value
MAX_DEPTH = 4


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a run, as stored: `seq` counts from 1 per run (0 until stored)."""

    run_id: str
    kind: str
    at: datetime
    data: dict[str, Any]
    seq: int = 0

    def shown(self) -> dict[str, Any]:
        """The event as the API and the stream give it."""
        return {"id": self.seq, "kind": self.kind, "at": self.at.isoformat(), "data": self.data}


class Emitter(Protocol):
    def emit(self, kind: EventKind, **data: Any) -> None:
        """Record an event of the run; never raises, never blocks on I/O."""
        ...


class _NoTranscript:
    def emit(self, kind: EventKind, **data: Any) -> None:
        return None


NO_TRANSCRIPT: Emitter = _NoTranscript()
Sink = Callable[[RunEvent], None]


class Transcript:
    """The emitter of one run: redacts and bounds each event, then hands it to `sink`."""

    def __init__(self, run_id: str, sink: Sink, redactor: Redactor | None = None) -> None:
        self.run_id = run_id
        self._sink = sink
        self.redactor = redactor if redactor is not None else Redactor(())

    def emit(self, kind: EventKind, **data: Any) -> None:
        try:
            clean = {key: bounded(self.redactor.scrub(value), key) for key, value in data.items()}
            self._sink(RunEvent(self.run_id, kind, datetime.now(UTC), clean))
        except Exception as exc:  # the transcript must never fail a run
            log.warning("transcript.event_dropped", kind=kind, error=f"{type(exc).__name__}")


def bounded(value: Any, key: str = "", depth: int = 0) -> Any:
    """A JSON value no larger than the limits: texts cut (outputs keep head and tail)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return round(value, 6) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        return cut(value, MAX_OUTPUT_CHARS if key in OUTPUT_KEYS else MAX_TEXT_CHARS)
    if depth >= MAX_DEPTH:
        return cut(str(value), MAX_TEXT_CHARS)
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_ITEMS]
        return {str(k)[:100]: bounded(v, str(k), depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [bounded(v, key, depth + 1) for v in list(value)[:MAX_ITEMS]]
    return cut(str(value), MAX_TEXT_CHARS)


def cut(text: str, limit: int) -> str:
    """`text` within `limit` characters: the head and the tail, saying how much went."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 5], text[-(limit * 3 // 5) :]
    return f"{head}\n[... {len(text) - len(head) - len(tail):,} characters cut ...]\n{tail}"


# Commands the agents' file tools run (read, ls, grep, glob) are the tool call's own detail:
# the tool event records them, so the sandbox does not record each command they run.
_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("transcript_quiet", default=False)


@contextlib.contextmanager
def commands_quiet() -> Iterator[None]:
    """Sandbox commands run inside (in this task, or threads it starts) are not recorded."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def commands_recorded() -> bool:
    return not _quiet.get()


# The emitter of the run this task (and the threads it starts) works for: set by the run's job
# around the run, read by seams below the workflow (the budget's model calls, the sandbox's
# commands, the GitHub host's writes) that have no run at hand.
_current: contextvars.ContextVar[Emitter] = contextvars.ContextVar(
    "transcript", default=NO_TRANSCRIPT
)


def current() -> Emitter:
    return _current.get()


@contextlib.contextmanager
def recording(emitter: Emitter) -> Iterator[None]:
    """Events emitted through `current()` inside (and in threads started inside) go to
    `emitter`."""
    token = _current.set(emitter)
    try:
        yield
    finally:
        _current.reset(token)


class Stopwatch:
    """Seconds since it was made, for events that say how long something took."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    @property
    def seconds(self) -> float:
        return round(time.monotonic() - self._start, 3)
