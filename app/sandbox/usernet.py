"""Outbound network for an online sandbox command (the setup script) that never reaches this
machine.

The command gets a network namespace of its own (`unshare --user --map-root-user --net`, as the
sandbox user) whose only way out is a user-mode network stack, slirp4netns (preferred) or pasta:
it turns the namespace's packets into ordinary sockets of this machine. Before the command
starts, a script of ours, root of that namespace and nothing else, builds the routing table:

- `lo`, a route to the stack's DNS forwarder (10.0.2.3) and a default route through its gateway
  (10.0.2.2); nothing else from the stack's own configuration survives, and IPv6 has no route;
- `unreachable` routes for every private and special-purpose IPv4 range (RFC 1918, CGNAT,
  link-local with the cloud metadata address, the stack's own 10.0.2.0/24 and so its gateway,
  documentation, benchmarking, multicast and reserved ranges) and for each IPv4 address of this
  machine, so the kernel refuses those destinations before a packet exists.

So 127.0.0.1 is the namespace's own loopback, this machine's addresses and private networks
(a database, the metadata service) are unreachable, and public addresses are reachable. As a
second line, neither stack has a path to this machine's loopback: slirp4netns runs with
--disable-host-loopback; pasta with -T none -U none (no port of this machine's loopback
forwarded) and --no-map-gw (the gateway is not this machine). The command itself then starts in
bubblewrap with no capabilities, so it cannot change the routes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.sandbox.local_user import SandboxUser
from app.sandbox.types import SandboxError

TOOLS = ("slirp4netns", "pasta")  # preferred first
DEVICE = "tap0"
GATEWAY = "10.0.2.2"
DNS = "10.0.2.3"
ADDRESS = "10.0.2.100"
RESOLV_CONF = f"nameserver {DNS}\n"
# Private and special-purpose IPv4 ranges (IANA registry); 127.0.0.0/8 is the namespace's own.
BLOCKED_RANGES = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_READY_SECONDS = 10.0
_POLL_SECONDS = 0.005
# Runs as root of the new namespace, before the command: waits (on stdin) until the stack is
# attached, builds the routes, then becomes the command (bubblewrap), stdin /dev/null.
_NET_SCRIPT = r"""
ip=$1 dev=$2 blocked=$3 dns=$4 gateway=$5
shift 5
IFS= read -r word || word="the network stack did not start"
fail() { echo "open-swe: no network for this command: $*" >&2; exit 125; }
[ "$word" = go ] || fail "$word"
"$ip" link set lo up || fail "cannot bring up lo"
"$ip" route flush table main || fail "cannot clear the routes"
"$ip" -6 route flush table main 2>/dev/null
"$ip" route add "$dns" dev "$dev" || fail "cannot route to the DNS forwarder"
"$ip" route add default via "$gateway" dev "$dev" onlink || fail "cannot add the default route"
for net in $blocked; do
  "$ip" route add unreachable "$net" 2>/dev/null || "$ip" route replace unreachable "$net" \
    || fail "cannot block $net"
done
exec "$@" </dev/null
"""


@dataclass(frozen=True)
class UserNet:
    """A user-mode network stack and the tools to build a namespace around it."""

    tool: str  # "slirp4netns" or "pasta"
    executable: str
    unshare: str
    ip: str

    def stack_argv(self, pid: int) -> list[str]:
        """The stack, attached to the network namespace of `pid` (as its user namespace's owner)."""
        userns, netns = f"/proc/{pid}/ns/user", f"/proc/{pid}/ns/net"
        if self.tool == "slirp4netns":
            return [
                self.executable,
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                f"--userns-path={userns}",
                str(pid),
                DEVICE,
            ]
        return [
            self.executable,
            "--foreground",
            "--quiet",
            "--config-net",
            "--ipv4-only",
            "--ns-ifname", DEVICE,
            "--address", ADDRESS,
            "--netmask", "24",
            "--gateway", GATEWAY,
            "--dns-forward", DNS,
            "--tcp-ports", "none",
            "--udp-ports", "none",
            "--tcp-ns", "none",
            "--udp-ns", "none",
            "--no-map-gw",
            "--userns", userns,
            "--netns", netns,
        ]  # fmt: skip


def find_usernet(tools: Sequence[str] = TOOLS) -> tuple[UserNet | None, str]:
    """The first of `tools` installed (with unshare and ip), and a phrase saying what is used."""
    unshare = shutil.which("unshare", path=_SYSTEM_PATH)
    ip = shutil.which("ip", path=_SYSTEM_PATH)
    for tool in tools:
        executable = shutil.which(tool, path=_SYSTEM_PATH)
        if executable is not None and unshare is not None and ip is not None:
            return UserNet(tool, executable, unshare, ip), tool
    if not tools or all(shutil.which(t, path=_SYSTEM_PATH) is None for t in tools):
        return None, "neither slirp4netns nor pasta is installed"
    return None, "unshare or ip (util-linux, iproute2) is not installed"


def blocked_networks(ip: str) -> list[str]:
    """BLOCKED_RANGES and each IPv4 address of this machine (but loopback) as a /32.

    SandboxError when the addresses cannot be listed: an online command never goes out with
    one of this machine's addresses left open."""
    ranges = list(BLOCKED_RANGES)
    try:
        listing = subprocess.run(
            [ip, "-json", "-4", "address", "show"],
            capture_output=True,
            env={"PATH": _SYSTEM_PATH},
            timeout=10.0,
            check=True,
        )
        interfaces: list[dict[str, Any]] = json.loads(listing.stdout)
        for interface in interfaces:
            for info in interface.get("addr_info", []):
                address = ipaddress.ip_address(info["local"])
                if address.version == 4 and not address.is_loopback:
                    ranges.append(f"{address}/32")
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError) as exc:
        raise SandboxError(f"cannot list this machine's addresses to block them: {exc}") from None
    return ranges


class NetworkedCommand:
    """One online command, as a context manager: `wrap` its argv, spawn it with `stdin`, call
    `attach` with the started process; leaving the block stops the stack."""

    def __init__(self, net: UserNet, user: SandboxUser | None) -> None:
        self.net, self.user = net, user
        self._go_read, self._go_write = os.pipe()
        self._open = {self._go_read, self._go_write}
        self._stack: subprocess.Popen[bytes] | None = None

    @property
    def stdin(self) -> int:
        """The command's stdin until it goes on: the word to go, or why it cannot."""
        return self._go_read

    def wrap(self, command: Sequence[str]) -> list[str]:
        unshare = [self.net.unshare, "--user", "--map-root-user", "--net", "--"]
        script = ["/bin/sh", "-c", _NET_SCRIPT, "open-swe-network"]
        blocked = " ".join(blocked_networks(self.net.ip))
        return [*unshare, *script, self.net.ip, DEVICE, blocked, f"{DNS}/32", GATEWAY, *command]

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        """Start the stack for the namespace `proc` made, then let the command go on (or end
        it with the reason when the stack does not come up)."""
        self._close(self._go_read)  # the command holds it now
        word = "go"
        try:
            if not _in_new_namespace(proc.pid, _READY_SECONDS):
                word = "the network namespace was not created"
            else:
                word = self._start_stack(proc.pid)
        finally:
            with contextlib.suppress(OSError):
                os.write(self._go_write, f"{word}\n".encode())

    def _start_stack(self, pid: int) -> str:
        options = self.user.popen_options() if self.user is not None else {}
        try:
            self._stack = subprocess.Popen(
                self.net.stack_argv(pid),
                cwd="/",
                env={"PATH": _SYSTEM_PATH},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                **options,
            )
        except OSError as exc:
            return f"{self.net.tool} did not start ({exc.strerror})"
        give_up = time.monotonic() + _READY_SECONDS
        while time.monotonic() < give_up:
            if _has_default_route(pid):
                return "go"
            if self._stack.poll() is not None:
                assert self._stack.stderr is not None
                lines = self._stack.stderr.read().decode("utf-8", "replace").strip()
                last = lines.splitlines()[-1] if lines else f"exit status {self._stack.returncode}"
                return f"{self.net.tool} failed: {last}"
            time.sleep(_POLL_SECONDS)
        return f"{self.net.tool} did not configure the namespace in {_READY_SECONDS:g} s"

    def close(self) -> None:
        if self._stack is not None and self._stack.poll() is None:
            self._stack.kill()
        if self._stack is not None:
            self._stack.wait()
            if self._stack.stderr is not None:
                self._stack.stderr.close()
        for fd in list(self._open):
            self._close(fd)

    def _close(self, fd: int) -> None:
        if fd in self._open:  # once only: the number may be reused after
            self._open.discard(fd)
            os.close(fd)

    def __enter__(self) -> NetworkedCommand:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _in_new_namespace(pid: int, seconds: float) -> bool:
    """Wait until `pid` is in a network namespace other than ours (unshare did its work)."""
    ours = os.readlink("/proc/self/ns/net")
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != ours:
                return True
        except OSError:
            return False  # it is gone
        time.sleep(_POLL_SECONDS)
    return False


def _has_default_route(pid: int) -> bool:
    """Whether the namespace of `pid` has a default route on DEVICE (the stack configured it)."""
    try:
        table = Path(f"/proc/{pid}/net/route").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(
        fields[0] == DEVICE and fields[1] == "00000000"
        for fields in (line.split() for line in table)
        if len(fields) > 1
    )
