"""The sandbox user: who it is, what it may reach, and handing trees over to it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.sandbox.base import SandboxError
from app.sandbox.local_user import (
    SandboxUser,
    check_reachable,
    describe,
    give_tree,
    hand_over,
    sandbox_user,
)


def test_open_swe_as_another_user_cannot_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert sandbox_user("nobody") is None
    assert "cannot switch users" in describe(None)


def test_root_switches_to_the_named_user(unprivileged: SandboxUser) -> None:
    assert unprivileged.name == "nobody"
    assert unprivileged.uid != 0
    assert unprivileged.gid != 0
    assert unprivileged.popen_options() == {
        "user": unprivileged.uid,
        "group": unprivileged.gid,
        "extra_groups": [],
    }
    assert describe(unprivileged) == f"as user nobody (uid {unprivileged.uid})"


def test_an_unknown_user_or_root_is_refused(unprivileged: SandboxUser) -> None:
    with pytest.raises(SandboxError, match="OPEN_SWE_SANDBOX_USER: there is no user 'no-such-u'"):
        sandbox_user("no-such-u")
    with pytest.raises(SandboxError, match="OPEN_SWE_SANDBOX_USER: 'root' is root"):
        sandbox_user("root")


def test_a_root_the_user_cannot_reach_is_a_clear_error(
    tmp_path: Path, unprivileged: SandboxUser
) -> None:
    private = tmp_path / "private"
    (private / "data").mkdir(parents=True)
    private.chmod(0o700)
    with pytest.raises(SandboxError, match=r"cannot reach .*OPEN_SWE_DATA_DIR"):
        check_reachable(unprivileged, private / "data")
    private.chmod(0o711)  # searchable, not listable: enough
    check_reachable(unprivileged, private / "data")


def test_give_tree_changes_links_never_what_they_point_to(
    tmp_path: Path, unprivileged: SandboxUser
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root only")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("x")
    (tree / "link").symlink_to(secret)
    give_tree(tree, unprivileged)
    for path in (tree, tree / "sub", tree / "sub" / "file", tree / "link"):
        assert os.lstat(path).st_uid == unprivileged.uid
    assert secret.stat().st_uid == 0


def test_hand_over_moves_a_finished_tree_into_the_work_directory(
    tmp_path: Path, unprivileged: SandboxUser
) -> None:
    work, staged = tmp_path / "work", tmp_path / "staging" / "repo"
    work.mkdir()
    staged.mkdir(parents=True)
    (staged / "file").write_text("x")
    hand_over(staged, work / "repo", work, unprivileged)
    assert (work / "repo" / "file").read_text() == "x"
    assert (work / "repo" / "file").stat().st_uid == unprivileged.uid
    assert not staged.exists()


def test_hand_over_refuses_a_target_swapped_for_a_link_out_of_the_sandbox(
    tmp_path: Path, unprivileged: SandboxUser
) -> None:
    work, elsewhere, staged = tmp_path / "work", tmp_path / "elsewhere", tmp_path / "s" / "repo"
    work.mkdir()
    elsewhere.mkdir()
    staged.mkdir(parents=True)
    (work / "sub").symlink_to(elsewhere)  # what code in the sandbox could do meanwhile
    with pytest.raises(SandboxError, match="moved out of the sandbox"):
        hand_over(staged, work / "sub" / "repo", work, unprivileged)
    assert list(elsewhere.iterdir()) == []
