"""The suspension marker, shared by the agent (which honours it) and the queues (which send it).

Cancelling a run's task with this message suspends the run instead of stopping it (the
server is shutting down): no final status, the sandbox and the checkpoint are kept, and the
run goes on from its last step when the server is back. It lives here, below both, so a
web-only node's queue does not import the agent to name it.
"""

from __future__ import annotations

import asyncio

SUSPEND = "open-swe:suspend"


def is_suspension(exc: asyncio.CancelledError) -> bool:
    """Was the run cancelled to be suspended (shutdown), not stopped?"""
    return bool(exc.args) and exc.args[0] == SUSPEND
