"""Daytona sandboxes: the only package importing the `daytona` SDK.

Sync interface, async client. `Sandbox` is sync (deepagents is sync-first; the graph calls it
through `asyncio.to_thread`), but the sync `Daytona` client enforces its timeouts with SIGALRM
in the main thread and, in any other thread, by injecting an exception between bytecodes, which
cannot interrupt a blocked socket read and can land anywhere in urllib3. Its wait loops (create,
start) cannot be stopped from outside either. So this backend drives `AsyncDaytona` on a private
event loop thread (`LoopThread`): every deadline here is an asyncio cancellation that really
stops the request, and all calls share one aiohttp session whichever thread makes them.

Resilience (the SDK neither retries 429 nor backs off):
- 429/502/503 and dropped connections are retried with exponential backoff and jitter,
  honouring Retry-After, up to `RetryPolicy.attempts` calls; the SDK's connection pool caps
  requests in flight.
- Before a 502/503 or a dropped connection is retried, and after a toolbox 404 that did not
  come from the daemon (how an archived sandbox answers), the sandbox's state is refreshed: a
  stopped or archived one is started, a missing or failed one raises `SandboxGone` (the caller
  acquires a new one).
- Calls that are not idempotent are made safe to repeat: a command the daemon already started is
  adopted instead of run twice, a commit that went through is detected, a partial clone removed.
- Creation carries a unique attempt label, so whatever a failed or timed-out create left behind
  (stuck in `creating`, `error`, `build_failed`, a 502 after the sandbox was made) is found and
  deleted before a clear `SandboxError` is raised.

Commands run in a fresh toolbox session each, not `process.exec`: a long `exec` request is cut
by the proxy's idle timeout with a bare 502, and its 408 on timeout loses the output. A session
command is started asynchronously and polled; `timeout -k` inside the sandbox kills its whole
process group, our own deadline bounds the wait, and its output (partial on timeout) is clipped
to head and tail inside the sandbox (see `script`).

File operations stay inside `work_dir` (symlinks resolved in the sandbox), like every backend's.
Git goes through the toolbox git API: credentials travel per call in request bodies, so the token
never lands in `.git/config`; those calls' arguments are never logged.

Modules: `api` (loop, retries, recovery), `provider`, `sandbox`, `script` (the session's shell
script), `errors` (actionable messages).
"""

from app.sandbox.daytona.api import DaytonaTimings
from app.sandbox.daytona.provider import ATTEMPT_LABEL, OWNER_LABEL, DaytonaProvider
from app.sandbox.daytona.sandbox import DaytonaSandbox

__all__ = ["ATTEMPT_LABEL", "OWNER_LABEL", "DaytonaProvider", "DaytonaSandbox", "DaytonaTimings"]
