"""Run one process with a deadline, bounded output and no stragglers (local backend).

The process leads its own process group (session). When it exits, or its deadline passes, the
whole group is killed: background children would otherwise keep the output pipe open and keep
running after the command "finished". On a deadline the group gets SIGTERM, then SIGKILL after
a grace period. Output (stdout and stderr interleaved) streams into a HeadTailBuffer, so memory
stays bounded however much the process prints.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.sandbox.local_user import SandboxUser
from app.sandbox.output import HeadTailBuffer
from app.sandbox.types import RawResult

STREAM_KEEP_BYTES = 1 << 20  # kept at each end of a command's output (>= TOOL_OUTPUT_LIMIT / 2)
TIMEOUT_EXIT_CODE = 124  # what coreutils' timeout(1) reports
_READ_SIZE = 1 << 16
_POLL_SECONDS = 0.05
_DRAIN_SECONDS = 1.0  # after the group is killed, read what is left for at most this long


def run_process(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float | None,
    kill_grace: float = 2.0,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    keep_bytes: int = STREAM_KEEP_BYTES,
    run_as: SandboxUser | None = None,
    stdin: int = subprocess.DEVNULL,
) -> RawResult:
    """Run argv to completion or until `timeout` seconds pass; see the module docstring.

    run_as: the user to start it as (cwd is entered before the switch); stdin: a descriptor
    to read (default /dev/null).
    """
    user: dict[str, Any] = run_as.popen_options() if run_as is not None else {}
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **user,
    )
    try:
        if on_start is not None:
            on_start(proc)
        output = HeadTailBuffer(keep_bytes, keep_bytes)
        assert proc.stdout is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        timed_out = _pump(proc, output, deadline)
        if timed_out:
            terminate_group(proc, grace=kill_grace)
        _drain(proc, output)
        returncode = proc.wait()
    finally:
        if proc.returncode is None:  # interrupted (e.g. KeyboardInterrupt): leave nothing behind
            kill_group(proc, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    if timed_out:
        return RawResult(TIMEOUT_EXIT_CODE, output.getvalue(), timed_out=True)
    exit_code = 128 - returncode if returncode < 0 else returncode  # killed by a signal
    return RawResult(exit_code, output.getvalue())


def _pump(proc: subprocess.Popen[bytes], output: HeadTailBuffer, deadline: float | None) -> bool:
    """Copy output until EOF; True when the deadline passed first."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        leader_gone = False
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return True
            if not leader_gone and _has_exited(proc):
                # The command is done; background children must not outlive it (or hold the pipe).
                kill_group(proc, signal.SIGKILL)
                leader_gone = True
            wait = _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - now)
            if not selector.select(timeout=wait):
                continue
            try:
                chunk = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                continue
            if not chunk:
                return False
            output.write(chunk)


def _drain(proc: subprocess.Popen[bytes], output: HeadTailBuffer) -> None:
    """Read what is left in the pipe after the group was killed."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    give_up = time.monotonic() + _DRAIN_SECONDS
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while time.monotonic() < give_up and selector.select(timeout=_POLL_SECONDS):
            try:
                chunk = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                continue
            if not chunk:
                return
            output.write(chunk)


def _has_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the leader exited, without reaping it: its pid (= the group id) stays reserved
    until wait(), so killing the group afterwards cannot hit a recycled pid."""
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


def kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the process group `proc` leads, unless proc was already reaped."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def terminate_group(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM the group, then SIGKILL it if the leader is still there after `grace` seconds."""
    kill_group(proc, signal.SIGTERM)
    give_up = time.monotonic() + grace
    while time.monotonic() < give_up:
        if _has_exited(proc):
            break
        time.sleep(0.01)
    kill_group(proc, signal.SIGKILL)
