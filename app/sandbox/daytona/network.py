"""The network policy on Daytona: the sandbox's outbound network settings, switched as needed.

A Daytona sandbox has one network setting at a time, for everything in it, which Daytona lets us
change while it runs. Sandboxes are created *restricted*: only the CIDRs of
OPEN_SWE_DAYTONA_NETWORK_ALLOW_LIST, or nothing at all (`network_block_all`). They are *open*
(all outbound traffic) while something that needs the network runs:

- the repository's setup script, under the policies `setup` and `always`;
- git clone and push, which Daytona's toolbox runs inside the sandbox (they reach GitHub);
- every command, under `always` (then the sandbox simply stays open).

The switch back happens as soon as the operation ends, in all cases. Processes a command left
running in the background (Daytona keeps them) would share an open window: `none` and `setup`
keep agent commands offline, not code that outlives them. Daytona runs the sandbox on its own
machines, so "this machine" here is Daytona's runner, never open-swe's host.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from daytona import AsyncSandbox

from app.sandbox.daytona.api import DaytonaApi


def restricted(allow_list: str | None) -> dict[str, Any]:
    """The creation (and update) fields of a restricted sandbox."""
    if allow_list:
        return {"network_allow_list": allow_list}
    return {"network_block_all": True}


def is_open(sdk: AsyncSandbox) -> bool:
    return not sdk.network_block_all and not sdk.network_allow_list


class DaytonaNetwork:
    """Opens and restricts one sandbox's network."""

    def __init__(self, api: DaytonaApi, sdk: AsyncSandbox) -> None:
        self._api, self._sdk = api, sdk
        self._allow_list = api.settings.daytona_network_allow_list

    async def set(self, *, open_: bool) -> None:
        """Make the sandbox open or restricted (no request when it already is)."""
        if is_open(self._sdk) == open_:
            return
        fields = {"network_block_all": False} if open_ else restricted(self._allow_list)
        sdk = self._sdk
        what = "opening the sandbox's network" if open_ else "restricting the sandbox's network"
        await self._api.call(what, lambda: sdk.update_network_settings(**fields))

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        """Open for the block, then restricted again (if it was), even on errors."""
        if is_open(self._sdk):
            yield
            return
        await self.set(open_=True)
        try:
            yield
        finally:
            await asyncio.shield(self.set(open_=False))
