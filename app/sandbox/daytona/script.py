"""The shell script a Daytona session runs for one command, and reading its output back.

Pure string work (no SDK), so it is tested on its own with a real `sh`.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping

from app.sandbox.output import Clipped
from app.sandbox.process import STREAM_KEEP_BYTES
from app.sandbox.types import SandboxError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def session_script(
    command: str,
    *,
    cwd: str,
    env: Mapping[str, str],
    limit: float,
    clip: str,
    keep: int = STREAM_KEEP_BYTES,
) -> str:
    """The script a session runs (as `sh -c`, so its `exit` cannot end the session's shell).

    The command gets `sh -c` semantics, closed stdin, stderr into stdout, and `timeout -k`
    killing its whole process group (when the image has timeout(1); our deadline remains).
    Its output goes to a file; what comes back is all of it, or its first and last `keep`
    bytes around a `clip` line counting what was left out, so a command printing gigabytes
    costs megabytes.
    """
    for name in env:
        if not _ENV_NAME.fullmatch(name):
            raise SandboxError(f"invalid environment variable name {name!r}")
    assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in env.items())
    inner = f"sh -c {shlex.quote(command)}"
    seconds = max(1, math.ceil(limit))
    script = f"""out=$(mktemp) || exit 125
{{ cd -- {shlex.quote(cwd)} && if command -v timeout >/dev/null 2>&1; \\
then env {assignments}timeout -k 5 {seconds} {inner}; \\
else env {assignments}{inner}; fi; }} </dev/null >"$out" 2>&1
rc=$?
size=$(wc -c <"$out")
if [ "$size" -le {2 * keep} ]; then cat "$out"; else
middle=$((size - {2 * keep}))
lines=$(tail -c +{keep + 1} "$out" | head -c "$middle" | wc -l)
head -c {keep} "$out"; printf '\\n%s %s %s\\n' {clip} "$middle" "$lines"; tail -c {keep} "$out"
fi
rm -f "$out"
exit "$rc"
"""
    return f"sh -c {shlex.quote(script)}"


def unclip(output: str, clip: str) -> str | Clipped:
    """The output, or its head and tail when the script cut the middle (see session_script)."""
    start = output.find(f"\n{clip} ")
    if start < 0:
        return output
    end = output.find("\n", start + 1)
    _, middle, lines = output[start + 1 : end].split()
    head, tail = output[:start].encode(), output[end + 1 :].encode()
    return Clipped(head, tail, omitted_chars=int(middle), omitted_lines=int(lines))
