"""How the local backend starts a process for a sandbox: as the sandbox user, in bubblewrap where
it works, and either offline (a network namespace with only `lo`) or online through user-mode
networking (usernet.py). Without bubblewrap a process has this machine's network."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.sandbox.bwrap import Bubblewrap, Online, select_confinement
from app.sandbox.local_user import SandboxUser, check_reachable, describe, own
from app.sandbox.output import clean_output
from app.sandbox.process import run_process
from app.sandbox.types import NetworkPolicy, RawResult, SandboxError
from app.sandbox.usernet import RESOLV_CONF, TOOLS, NetworkedCommand, UserNet, find_usernet

OnStart = Callable[[subprocess.Popen[bytes]], None]
_PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class SandboxDirs:
    work: Path
    home: Path
    tmp: Path


@dataclass(frozen=True)
class Confinement:
    """What every process of the provider's sandboxes runs under."""

    bwrap: Bubblewrap | None
    user: SandboxUser | None
    usernet: UserNet | None = None
    no_usernet: str = ""  # why usernet is None (when bwrap is not)
    resolv_conf: Path | None = None

    def online(self, granted: bool) -> bool:
        """Whether a command the policy grants the network gets user-mode networking."""
        return granted and self.bwrap is not None and self.usernet is not None

    def run(
        self,
        command: Sequence[str],
        *,
        dirs: SandboxDirs,
        cwd: Path,
        env: dict[str, str],
        timeout: float,
        kill_grace: float,
        online: bool,
        on_start: OnStart,
    ) -> RawResult:
        """Run command to completion (see process.run_process); `online` per `self.online`."""
        if not online or self.usernet is None:
            return run_process(
                self.argv(command, dirs=dirs, cwd=cwd),
                cwd=str(cwd),
                env=env,
                timeout=timeout,
                kill_grace=kill_grace,
                on_start=on_start,
                run_as=self.user,
            )
        with NetworkedCommand(self.usernet, self.user) as network:

            def started(proc: subprocess.Popen[bytes]) -> None:
                on_start(proc)
                network.attach(proc)

            return run_process(
                network.wrap(self.argv(command, dirs=dirs, cwd=cwd, online=True)),
                cwd=str(cwd),
                env=env,
                timeout=timeout,
                kill_grace=kill_grace,
                on_start=started,
                run_as=self.user,
                stdin=network.stdin,
            )

    def argv(
        self, command: Sequence[str], *, dirs: SandboxDirs, cwd: Path, online: bool = False
    ) -> list[str]:
        if self.bwrap is None:
            return list(command)
        extra = None
        if online:
            assert self.resolv_conf is not None
            uid, gid = (self.user.uid, self.user.gid) if self.user else (os.getuid(), os.getgid())
            extra = Online(uid, gid, str(self.resolv_conf))
        return self.bwrap.argv(
            command,
            work_dir=str(dirs.work),
            home=str(dirs.home),
            tmp=str(dirs.tmp),
            cwd=str(cwd),
            online=extra,
        )

    def exchange(
        self, script: str, path: Path, *, dirs: SandboxDirs, data: bytes | None, timeout: float
    ) -> subprocess.CompletedProcess[bytes]:
        """`sh -c script sh path` offline in the sandbox, `data` on stdin; stdout and stderr
        apart (file operations of a sandbox whose user is not this process's)."""
        argv = self.argv(["/bin/sh", "-c", script, "sh", str(path)], dirs=dirs, cwd=dirs.work)
        return subprocess.run(
            argv,
            input=data if data is not None else b"",
            capture_output=True,
            cwd=str(dirs.work),
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            timeout=timeout,
            check=False,
            start_new_session=True,
            **(self.user.popen_options() if self.user is not None else {}),
        )


def confinement_for(
    root: Path,
    *,
    use_bwrap: bool | None,
    bwrap_executable: str | None,
    user: SandboxUser | None,
    network_ceiling: NetworkPolicy,
    usernet_tools: Sequence[str] = TOOLS,
) -> tuple[Confinement, str]:
    """The confinement for the sandboxes under root, and the isolation line to log.

    use_bwrap as in bwrap.select_confinement. With a sandbox user, root becomes searchable (not
    readable) by others, and the user must be able to reach it.
    """
    if user is not None:
        root.chmod(0o711)
        check_reachable(user, root)
    bwrap, line = select_confinement(use_bwrap, bwrap_executable, root=root, user=user)
    confinement = Confinement(bwrap, user)
    if bwrap is not None and network_ceiling != "none":
        confinement = with_usernet(confinement, root, usernet_tools)
    network = _describe_network(confinement, network_ceiling)
    return confinement, f"{line}; commands run {describe(user)}; {network}"


def _describe_network(confinement: Confinement, ceiling: NetworkPolicy) -> str:
    if confinement.bwrap is None:
        return "network: this machine's, for every command"
    if ceiling == "none":
        return "network: none for any command (ceiling none)"
    if confinement.usernet is None:
        return f"network: none for any command ({confinement.no_usernet})"
    return (
        f"network: none unless the run's policy grants it (ceiling {ceiling}), then through "
        f"{confinement.usernet.tool}, which cannot reach this machine or private networks"
    )


def with_usernet(confinement: Confinement, root: Path, tools: Sequence[str] = TOOLS) -> Confinement:
    """The confinement with the first of `tools` that works here for online commands (each is
    tried with a real online command), or with the reason none does."""
    if confinement.bwrap is None:
        return confinement
    resolv_conf = root / ".resolv.conf"
    resolv_conf.write_text(RESOLV_CONF)
    resolv_conf.chmod(0o644)
    reasons = []
    for tool in tools:
        usernet, _ = find_usernet((tool,))
        if usernet is None:
            continue
        candidate = Confinement(
            confinement.bwrap, confinement.user, usernet, resolv_conf=resolv_conf
        )
        failure = _probe(candidate, root)
        if failure is None:
            return candidate
        reasons.append(f"{tool}: {failure}")
    _, missing = find_usernet(tools)
    why = "; ".join(reasons) if reasons else missing
    return Confinement(confinement.bwrap, confinement.user, no_usernet=why)


def _probe(confinement: Confinement, root: Path) -> str | None:
    """Run one online `true`; None when it works, else the last line of what went wrong."""
    with tempfile.TemporaryDirectory(dir=root, prefix=".probe-") as scratch:
        directory = Path(scratch)
        own(directory, confinement.user)
        dirs = SandboxDirs(directory, directory, directory)
        try:
            result = confinement.run(
                ["/bin/true"],
                dirs=dirs,
                cwd=directory,
                env={"PATH": "/usr/bin:/bin"},
                timeout=_PROBE_TIMEOUT,
                kill_grace=1.0,
                online=True,
                on_start=lambda _: None,
            )
        except SandboxError as exc:
            return str(exc)
    if result.exit_code == 0:
        return None
    text, _ = clean_output(result.output, limit=2_000, secrets=())
    lines = text.strip().splitlines()
    return lines[-1] if lines else f"exit status {result.exit_code}"
