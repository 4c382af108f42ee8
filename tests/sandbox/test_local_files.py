from __future__ import annotations

from pathlib import Path

import pytest

from app.sandbox.base import OUTSIDE_WORK_DIR, PathOutsideSandbox
from app.sandbox.local_files import confine, read_files, write_files


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work.resolve()


def test_confine_resolves_relative_and_absolute_paths_inside(work: Path) -> None:
    assert confine(work, "a/b.txt") == work / "a" / "b.txt"
    assert confine(work, str(work / "a" / ".." / "c.txt")) == work / "c.txt"
    assert confine(work, ".") == work


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/hostname"])
def test_confine_refuses_paths_leaving_work(work: Path, path: str) -> None:
    with pytest.raises(PathOutsideSandbox, match="outside the sandbox work directory"):
        confine(work, path)


def test_confine_follows_symlinks_before_deciding(work: Path, tmp_path: Path) -> None:
    (work / "link").symlink_to(tmp_path)
    with pytest.raises(PathOutsideSandbox):
        confine(work, "link/secret.txt")


def test_write_then_read_round_trip_with_parents_made(work: Path) -> None:
    [written] = write_files(work, [("deep/dir/f.bin", b"\x00\x01")])
    assert written.error is None
    [read] = read_files(work, ["deep/dir/f.bin"])
    assert (read.content, read.error) == (b"\x00\x01", None)


def test_errors_are_reported_per_file_with_deepagents_codes(work: Path, tmp_path: Path) -> None:
    (work / "adir").mkdir()
    outside = tmp_path / "outside" / "f.txt"
    uploads = write_files(work, [(str(outside), b"x"), ("adir", b"x"), ("ok.txt", b"x")])
    assert [u.error for u in uploads] == [OUTSIDE_WORK_DIR, "is_directory", None]
    assert not outside.parent.exists()  # nothing made for a refused path
    downloads = read_files(work, ["missing.txt", "adir", "/etc/hostname", "ok.txt"])
    assert [d.error for d in downloads] == [
        "file_not_found",
        "is_directory",
        OUTSIDE_WORK_DIR,
        None,
    ]
    assert [d.content for d in downloads] == [None, None, None, b"x"]
