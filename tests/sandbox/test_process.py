"""The process runner: exit codes, deadlines, process groups and bounded output."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from app.sandbox.output import Clipped
from app.sandbox.process import TIMEOUT_EXIT_CODE, run_process
from tests.sandbox.conftest import processes_with

ENV = {"PATH": "/usr/bin:/bin"}


def sh(command: str, tmp_path: Path, **kwargs: Any) -> tuple[int, bytes | str | Clipped, bool]:
    result = run_process(["/bin/sh", "-c", command], cwd=str(tmp_path), env=ENV, **kwargs)
    return result.exit_code, result.output, result.timed_out


def test_exit_code_and_interleaved_output(tmp_path: Path) -> None:
    assert sh("echo a; echo b >&2; echo c; exit 5", tmp_path, timeout=10) == (
        5,
        b"a\nb\nc\n",
        False,
    )


def test_death_by_signal_reads_like_a_shell(tmp_path: Path) -> None:
    code, _, timed_out = sh("kill -9 $$", tmp_path, timeout=10)
    assert (code, timed_out) == (137, False)


def test_only_the_given_environment_and_no_stdin(tmp_path: Path) -> None:
    _, output, _ = sh("env; cat", tmp_path, timeout=10)  # cat gets EOF at once
    assert isinstance(output, bytes)
    names = {line.split(b"=")[0] for line in output.splitlines()}
    assert names - {b"PWD", b"SHLVL", b"_"} == {b"PATH"}


def test_deadline_terminates_the_group_then_kills_what_ignores_it(tmp_path: Path) -> None:
    script = "trap '' TERM; echo ready; sleep 33.3333 & trap '' TERM; while :; do sleep 0.05; done"
    started = time.monotonic()
    code, output, timed_out = sh(script, tmp_path, timeout=0.3, kill_grace=0.3)
    assert time.monotonic() - started < 2
    assert (code, output, timed_out) == (TIMEOUT_EXIT_CODE, b"ready\n", True)
    assert processes_with("33.3333") == []


def test_on_start_sees_the_process(tmp_path: Path) -> None:
    seen: list[subprocess.Popen[bytes]] = []
    run_process(["/bin/true"], cwd=str(tmp_path), env=ENV, timeout=10, on_start=seen.append)
    assert len(seen) == 1
    assert seen[0].returncode == 0


def test_output_beyond_the_kept_bytes_is_clipped(tmp_path: Path) -> None:
    _, output, _ = sh("seq 1 100000", tmp_path, timeout=10, keep_bytes=1000)
    assert isinstance(output, Clipped)
    assert output.head.startswith(b"1\n2\n3\n")
    assert output.tail.endswith(b"99999\n100000\n")
    assert len(output.head) == len(output.tail) == 1000
