"""Bubblewrap argv and probing (confinement behaviour itself is tested in test_local)."""

from __future__ import annotations

from pathlib import Path

from app.sandbox.bwrap import Bubblewrap, find_bubblewrap, probe


def argv(network: bool = True) -> list[str]:
    bwrap = Bubblewrap("/usr/bin/bwrap", network=network)
    return bwrap.argv(
        ["sh", "-c", "x"], work_dir="/s/work", home="/s/home", tmp="/s/tmp", cwd="/s/work"
    )


def test_argv_binds_only_the_sandbox_read_write() -> None:
    args = argv()
    pairs = [tuple(args[i : i + 3]) for i, arg in enumerate(args) if arg == "--bind"]
    assert pairs == [
        ("--bind", "/s/tmp", "/tmp"),
        ("--bind", "/s/work", "/s/work"),
        ("--bind", "/s/home", "/s/home"),
    ]
    assert args[-5:] == ["/s/work", "--", "sh", "-c", "x"]
    for flag in ("--die-with-parent", "--unshare-pid", "--new-session"):
        assert flag in args
    assert "--unshare-net" not in args
    assert "--unshare-net" in argv(network=False)


def test_argv_masks_password_hashes_when_present() -> None:
    args = argv()
    if Path("/etc/shadow").exists():
        index = args.index("/etc/shadow")
        assert args[index - 2 : index] == ["--ro-bind", "/dev/null"]


def test_find_uses_an_explicit_path_only_when_executable(tmp_path: Path) -> None:
    assert find_bubblewrap(str(tmp_path / "missing")) is None
    script = tmp_path / "bwrap"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    assert find_bubblewrap(str(script)) == str(script)


def test_probe_reports_the_last_line_of_the_failure(tmp_path: Path) -> None:
    script = tmp_path / "bwrap"
    script.write_text(
        "#!/bin/sh\necho noise >&2\necho 'bwrap: setting up uid map: denied' >&2\nexit 1\n"
    )
    script.chmod(0o755)
    assert probe(Bubblewrap(str(script)), str(tmp_path)) == "bwrap: setting up uid map: denied"
    ok = tmp_path / "ok"
    ok.write_text("#!/bin/sh\nexit 0\n")
    ok.chmod(0o755)
    assert probe(Bubblewrap(str(ok)), str(tmp_path)) is None
