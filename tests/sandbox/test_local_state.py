from __future__ import annotations

from pathlib import Path

import pytest

from app.sandbox.base import SandboxGone
from app.sandbox.local_state import (
    SandboxState,
    load_state,
    read_state,
    remove_tree,
    updating_state,
    write_state,
)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    directory = tmp_path / "sbx-1"
    directory.mkdir()
    write_state(directory, SandboxState(id="sbx-1", labels={"issue": "7"}, created_at="now"))
    return directory


def test_updating_state_writes_the_change_back(directory: Path) -> None:
    with updating_state(directory, "sbx-1") as state:
        state.state = "stopped"
        state.repos["repo"] = "https://example.invalid/r.git"
    again = read_state(directory)
    assert again.state == "stopped"
    assert again.repos == {"repo": "https://example.invalid/r.git"}
    assert load_state(directory, "sbx-1") == again


def test_a_removed_sandbox_is_gone(directory: Path) -> None:
    remove_tree(directory)
    with pytest.raises(SandboxGone, match="sandbox sbx-1 no longer exists"):
        load_state(directory, "sbx-1")
    with (
        pytest.raises(SandboxGone, match="sandbox sbx-1 no longer exists"),
        updating_state(directory, "sbx-1"),
    ):
        pass
