"""The sandbox's network: offline commands see only `lo`; online ones (the setup script) go out
through slirp4netns or pasta and never reach this machine.

Every probe here connects to loopback only (PostgreSQL's port, a listener the test opens). The
other ranges are shown to be blocked by how the namespace is built: its interfaces and routes,
and route lookups (`ip route get`, which sends nothing). The one connection to the stack's
gateway is made only after the lookup in the same namespace said it is unreachable, so the
kernel refuses it before a packet exists.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.sandbox import local_exec
from app.sandbox.base import NetworkPolicy, SandboxError, capped, granted
from app.sandbox.local import LocalProvider, LocalSandbox
from app.sandbox.local_user import SandboxUser, sandbox_user
from app.sandbox.usernet import (
    BLOCKED_RANGES,
    DNS,
    GATEWAY,
    UserNet,
    blocked_networks,
    find_usernet,
)
from tests.sandbox.conftest import bwrap_problem, fast_provider
from tests.unavailable import unavailable

POSTGRES = ("127.0.0.1", 5432)
PUBLIC = "8.8.8.8"  # only ever looked up in a routing table, never contacted

# Runs inside the sandbox: what its network looks like, and loopback connection attempts.
PROBE = r"""
import json, socket, subprocess, sys
listener, gateway = int(sys.argv[1]), sys.argv[2]
def ip(*args):
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    return (done.stdout + done.stderr).strip()
def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as exc:
        return f"errno {exc.errno}"
facts = {
    "links": [line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link").splitlines()],
    "routes": ip("-4", "route", "show", "table", "main"),
    "routes6": ip("-6", "route", "show", "table", "main"),
    "lookup": {a: ip("-4", "route", "get", a) for a in sys.argv[3:]},
    "postgres": connect("127.0.0.1", 5432),
    "listener": connect("127.0.0.1", listener),
    "resolv": open("/etc/resolv.conf").read(),
}
facts["lookup"][gateway] = ip("-4", "route", "get", gateway)
if "No route to host" in facts["lookup"][gateway]:  # refused locally: no packet can leave
    facts["gateway"] = connect(gateway, listener)
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def host_addresses() -> list[str]:
    """This machine's IPv4 addresses but loopback (looked up, never contacted)."""
    return [n.removesuffix("/32") for n in blocked_networks("ip") if n not in BLOCKED_RANGES]


@pytest.fixture
def listener() -> Iterator[int]:
    """A service on this machine's loopback, like open-swe's own port."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def postgres() -> None:
    try:
        socket.create_connection(POSTGRES, timeout=3).close()
    except OSError:
        unavailable("PostgreSQL is not listening on 127.0.0.1:5432")


def user() -> SandboxUser | None:
    return sandbox_user("nobody")  # None unless the suite runs as root


def provider(tmp_path: Path, tools: tuple[str, ...], **options: Any) -> LocalProvider:
    tmp_path.mkdir(parents=True, exist_ok=True)
    if bwrap_problem(tmp_path):
        unavailable("bubblewrap unusable here")
    for tool in tools:
        if find_usernet((tool,))[0] is None:
            unavailable(f"{tool} is not installed (apt-get install slirp4netns passt)")
    return fast_provider(tmp_path / "root", user=user(), usernet_tools=tools, **options)


def probe(box: LocalSandbox, port: int, lookups: list[str], *, networked: bool) -> dict[str, Any]:
    script = box.work_dir + "/probe.py"
    box.write_file(script, PROBE.encode())
    args = " ".join([str(port), GATEWAY, PUBLIC, *lookups])
    result = box.run(f"python3 {script} {args}", networked=networked)
    assert result.ok, result.output
    facts: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    return facts


def assert_offline(facts: dict[str, Any], lookups: list[str]) -> None:
    assert facts["links"] == ["lo"]
    assert facts["routes"] == ""
    assert facts["routes6"] == ""
    for address in [PUBLIC, GATEWAY, *lookups]:
        assert "Network is unreachable" in facts["lookup"][address], address


def assert_loopback_is_its_own(facts: dict[str, Any]) -> None:
    refused = "errno 111"  # ECONNREFUSED: nothing listens on the namespace's own loopback
    assert facts["postgres"] == refused
    assert facts["listener"] == refused


# --- policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "ceiling", "policy"),
    [
        ("always", "setup", "setup"),
        ("setup", "always", "setup"),
        ("always", "none", "none"),
        ("none", "always", "none"),
        ("always", "always", "always"),
    ],
)
def test_a_repository_cannot_exceed_the_ceiling(
    wanted: NetworkPolicy, ceiling: NetworkPolicy, policy: NetworkPolicy
) -> None:
    assert capped(wanted, ceiling) == policy


def test_only_the_command_that_asks_gets_the_network_under_setup() -> None:
    assert granted("setup", networked=True)
    assert not granted("setup", networked=False)
    assert granted("always", networked=False)
    assert not granted("none", networked=True)


# --- the namespaces --------------------------------------------------------------------------


@pytest.mark.usefixtures("postgres")
def test_agent_commands_have_only_loopback_of_their_own(
    tmp_path: Path, listener: int, host_addresses: list[str]
) -> None:
    box = provider(tmp_path, ("slirp4netns",)).acquire({})
    assert box.set_network_policy("setup") == "setup"
    facts = probe(box, listener, host_addresses, networked=False)  # what execute() runs
    assert_offline(facts, host_addresses)
    assert_loopback_is_its_own(facts)
    box.destroy()


@pytest.mark.usefixtures("postgres")
@pytest.mark.parametrize("tool", ["slirp4netns", "pasta"])
def test_the_setup_script_goes_out_but_never_reaches_this_machine(
    tmp_path: Path, listener: int, host_addresses: list[str], tool: str
) -> None:
    chosen = provider(tmp_path, (tool,))
    assert f"then through {tool}" in chosen.isolation
    box = chosen.acquire({})
    box.set_network_policy("setup")
    facts = probe(box, listener, host_addresses, networked=True)

    assert sorted(facts["links"]) == ["lo", "tap0"]
    assert_loopback_is_its_own(facts)
    # this machine's loopback through the stack's gateway: refused before any packet exists
    assert "No route to host" in facts["lookup"][GATEWAY]
    assert facts["gateway"] == "errno 113"  # EHOSTUNREACH
    # the only way out is the stack, for public addresses only
    assert f"via {GATEWAY} dev tap0" in facts["lookup"][PUBLIC]
    routes = [route.strip() for route in facts["routes"].splitlines()]
    assert f"default via {GATEWAY} dev tap0 onlink" in routes
    assert f"{DNS} dev tap0 scope link" in routes
    for network in BLOCKED_RANGES:
        assert f"unreachable {network}" in routes, network
    for address in host_addresses:  # this machine's other addresses
        assert f"unreachable {address}" in routes, address
        assert "No route to host" in facts["lookup"][address]
    assert len(routes) == 2 + len(BLOCKED_RANGES) + len(host_addresses)
    assert facts["routes6"] == ""  # no IPv6 at all
    assert facts["resolv"] == f"nameserver {DNS}\n"
    box.destroy()


@pytest.mark.usefixtures("postgres")
def test_always_gives_every_command_the_guarded_network(tmp_path: Path, listener: int) -> None:
    box = provider(tmp_path, ("slirp4netns",)).acquire({})
    box.set_network_policy("always")
    facts = probe(box, listener, [], networked=False)
    assert sorted(facts["links"]) == ["lo", "tap0"]
    assert_loopback_is_its_own(facts)
    box.destroy()


def test_none_keeps_even_the_setup_script_offline(tmp_path: Path, listener: int) -> None:
    box = provider(tmp_path, ("slirp4netns",)).acquire({})
    assert box.network_policy == "none"  # until a run sets one
    box.set_network_policy("none")
    assert_offline(probe(box, listener, [], networked=True), [])
    assert box.offline_reason() is None  # offline by choice, nothing to report
    box.destroy()


def test_the_ceiling_caps_and_the_policy_outlives_this_process(
    tmp_path: Path, listener: int
) -> None:
    capped_provider = provider(tmp_path, ("slirp4netns",), network_ceiling="setup")
    box = capped_provider.acquire({"run": "1"})
    assert box.set_network_policy("always") == "setup"
    again = provider(tmp_path, ("slirp4netns",), network_ceiling="setup").acquire({"run": "1"})
    assert again.network_policy == "setup"
    assert_offline(probe(again, listener, [], networked=False), [])
    again.destroy()


def test_a_ceiling_of_none_starts_no_stack(tmp_path: Path, listener: int) -> None:
    chosen = provider(tmp_path, ("slirp4netns",), network_ceiling="none")
    assert "network: none for any command (ceiling none)" in chosen.isolation
    box = chosen.acquire({})
    assert box.set_network_policy("always") == "none"
    assert_offline(probe(box, listener, [], networked=True), [])
    box.destroy()


def test_without_a_stack_the_setup_script_runs_offline_and_says_why(
    tmp_path: Path, listener: int
) -> None:
    chosen = provider(tmp_path, ())
    assert "network: none for any command (neither slirp4netns nor pasta is installed)" in (
        chosen.isolation
    )
    box = chosen.acquire({})
    box.set_network_policy("setup")
    assert box.offline_reason() == "neither slirp4netns nor pasta is installed"
    assert_offline(probe(box, listener, [], networked=True), [])
    box.destroy()


def test_a_stack_that_fails_its_trial_is_passed_over_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "bin" / "slirp4netns"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'cannot open /dev/net/tun' >&2\nexit 1\n")
    broken.chmod(0o755)
    real = find_usernet(("pasta",))[0]
    if real is None:
        unavailable("pasta is not installed (apt-get install passt)")
    fake = UserNet("slirp4netns", str(broken), real.unshare, real.ip)
    original = local_exec.find_usernet
    monkeypatch.setattr(
        local_exec,
        "find_usernet",
        lambda tools: (fake, "slirp4netns") if tools == ("slirp4netns",) else original(tools),
    )
    assert "then through pasta" in provider(tmp_path / "a", ("slirp4netns", "pasta")).isolation
    alone = provider(tmp_path / "b", ("slirp4netns",))
    assert "network: none for any command (slirp4netns: " in alone.isolation
    assert "slirp4netns failed: cannot open /dev/net/tun" in alone.isolation


# --- the stacks' own options (the second line of defence) ------------------------------------


def test_slirp4netns_never_maps_the_gateway_to_this_machine() -> None:
    argv = UserNet("slirp4netns", "/usr/bin/slirp4netns", "unshare", "ip").stack_argv(42)
    assert "--disable-host-loopback" in argv
    assert "--enable-ipv6" not in argv
    assert argv[-2:] == ["42", "tap0"]
    assert "--userns-path=/proc/42/ns/user" in argv


def test_pasta_forwards_no_port_and_never_maps_the_gateway() -> None:
    argv = UserNet("pasta", "/usr/bin/pasta", "unshare", "ip").stack_argv(42)
    pairs = dict(itertools.pairwise(argv))
    for option in ("--tcp-ports", "--udp-ports", "--tcp-ns", "--udp-ns"):
        assert pairs[option] == "none", option  # nothing of this machine's loopback forwarded
    assert "--no-map-gw" in argv
    assert "--ipv4-only" in argv
    assert pairs["--gateway"] == GATEWAY
    assert pairs["--dns-forward"] == DNS
    assert pairs["--netns"] == "/proc/42/ns/net"


def test_this_machines_addresses_are_blocked_but_not_loopback(host_addresses: list[str]) -> None:
    listing = subprocess.run(["ip", "-4", "-o", "address"], capture_output=True, text=True)
    expected = [
        line.split()[3].split("/")[0]
        for line in listing.stdout.splitlines()
        if not line.split()[3].startswith("127.")
    ]
    assert host_addresses == expected
    assert not any(n.startswith("127.") for n in blocked_networks("ip"))
    assert {"10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"} <= set(
        BLOCKED_RANGES
    )


def test_missing_tools_are_named() -> None:
    assert find_usernet(("no-such-stack",)) == (
        None,
        "neither slirp4netns nor pasta is installed",
    )
    assert find_usernet(()) == (None, "neither slirp4netns nor pasta is installed")


def test_when_this_machines_addresses_cannot_be_listed_nothing_goes_out(tmp_path: Path) -> None:
    broken = tmp_path / "ip"
    broken.write_text("#!/bin/sh\necho 'ip: unknown option -json' >&2\nexit 255\n")
    broken.chmod(0o755)
    with pytest.raises(SandboxError, match="cannot list this machine's addresses"):
        blocked_networks(str(broken))
