"""Bubblewrap argv and probing (confinement behaviour itself is tested in test_local)."""

from __future__ import annotations

import os
from pathlib import Path

from app.sandbox.bwrap import Bubblewrap, Online, find_bubblewrap, probe


def argv(online: Online | None = None) -> list[str]:
    bwrap = Bubblewrap("/usr/bin/bwrap")
    return bwrap.argv(
        ["sh", "-c", "x"],
        work_dir="/s/work",
        home="/s/home",
        tmp="/s/tmp",
        cwd="/s/work",
        online=online,
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
    assert args[args.index("--cap-drop") + 1] == "ALL"


def test_offline_commands_get_a_network_namespace_of_their_own() -> None:
    assert "--unshare-net" in argv()
    assert "--unshare-user" not in argv()


def test_online_commands_keep_the_namespace_around_them_and_map_back_the_user() -> None:
    args = argv(Online(uid=65534, gid=65533, resolv_conf="/r/.resolv.conf"))
    assert "--unshare-net" not in args  # usernet.py built the network namespace
    index = args.index("--unshare-user")
    assert args[index : index + 5] == ["--unshare-user", "--uid", "65534", "--gid", "65533"]
    resolv = args.index("/r/.resolv.conf")
    assert args[resolv - 1 : resolv + 2] == [
        "--ro-bind",
        "/r/.resolv.conf",
        os.path.realpath("/etc/resolv.conf"),
    ]
    assert resolv > args.index("/etc")  # on top of the system's /etc


def test_nothing_is_masked_permissions_protect_root_only_files() -> None:
    # Commands never run as root (local_user.py): /etc/shadow stays a real permission error.
    assert "/dev/null" not in argv()[: argv().index("--proc")]


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
