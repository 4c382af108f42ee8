"""The Daytona session script, run by a real sh on this machine (no SDK, no double)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from app.sandbox.base import SandboxError
from app.sandbox.daytona.script import session_script, unclip
from app.sandbox.output import Clipped

CLIP = "open-swe-clip-test"


def run(
    command: str,
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    limit: float = 10,
    keep: int = 1 << 20,
) -> tuple[int, str]:
    script = session_script(command, cwd=str(cwd), env=env or {}, limit=limit, clip=CLIP, keep=keep)
    # A session hands the script to a shell, as here.
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def test_exit_code_streams_cwd_env_and_closed_stdin(tmp_path: Path) -> None:
    code, output = run(
        'read x; echo "[$x] $GREETING"; echo err >&2; pwd; exit 7',
        tmp_path,
        env={"GREETING": 'it\'s "quoted"'},
    )
    assert code == 7
    assert output == f'[] it\'s "quoted"\nerr\n{tmp_path}\n'
    assert unclip(output, CLIP) == output


def test_a_missing_working_directory_is_reported(tmp_path: Path) -> None:
    code, output = run("true", tmp_path / "nowhere")
    assert code != 0
    assert "nowhere" in output


def test_timeout_kills_the_process_group_and_keeps_the_output(tmp_path: Path) -> None:
    started = time.monotonic()
    code, output = run("echo before; sleep 30 & sleep 30", tmp_path, limit=1)
    assert time.monotonic() - started < 5
    assert code == 124
    assert output == "before\n"


def test_big_output_comes_back_as_head_and_tail(tmp_path: Path) -> None:
    code, output = run("seq 1 1000", tmp_path, keep=100)
    assert code == 0
    clipped = unclip(output, CLIP)
    assert isinstance(clipped, Clipped)
    full = "".join(f"{n}\n" for n in range(1, 1001)).encode()
    assert clipped.head == full[:100]
    assert clipped.tail == full[-100:]
    assert clipped.omitted_chars == len(full) - 200
    assert clipped.omitted_lines == full[100:-100].count(b"\n")


def test_output_at_the_limit_is_not_clipped(tmp_path: Path) -> None:
    _, output = run("printf '%0200d' 0", tmp_path, keep=100)
    assert unclip(output, CLIP) == "0" * 200


def test_environment_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="invalid environment variable name"):
        session_script("true", cwd=str(tmp_path), env={"X;rm -rf /": "1"}, limit=1, clip=CLIP)
