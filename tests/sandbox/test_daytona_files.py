from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from daytona import AsyncSandbox

from app.sandbox.base import OUTSIDE_WORK_DIR
from app.sandbox.daytona.files import DaytonaFiles, in_work_dir

T = TypeVar("T")
WORK = "/home/daytona/work"


def test_in_work_dir_is_lexical() -> None:
    assert in_work_dir(WORK, "a/./b/../c.txt") == f"{WORK}/a/c.txt"
    assert in_work_dir(WORK, "/etc/passwd") == "/etc/passwd"
    assert in_work_dir(WORK, "../x") == "/home/daytona/x"


async def test_paths_refused_as_text_never_reach_the_sandbox() -> None:
    calls: list[str] = []

    async def toolbox(
        what: str, operation: Callable[[], Awaitable[T]], *, limit: float | None = None
    ) -> T:
        calls.append(what)
        raise AssertionError("no toolbox call expected")

    files = DaytonaFiles(cast(AsyncSandbox, object()), toolbox, transfer_limit=1.0, secrets=set())
    paths = ["../escape", "/etc/passwd", "", "dir/", "a\nb", f"{WORK}-sibling/f"]
    found = await files.download(WORK, paths)
    assert found == [
        (None, OUTSIDE_WORK_DIR),
        (None, OUTSIDE_WORK_DIR),
        (None, "invalid_path"),
        (None, "invalid_path"),
        (None, "invalid_path"),
        (None, OUTSIDE_WORK_DIR),
    ]
    errors = await files.upload(WORK, [(path, b"x") for path in paths])
    assert errors == {i: error for i, (_, error) in enumerate(found) if error is not None}
    assert calls == []
