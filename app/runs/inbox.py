"""A run's side of its thread's inbox (the `commands` table): what it was asked to do, the
instructions people send while it works, and the runs a `retry` continues.

The front door records every command once per delivery, with the text snapshotted when it was
accepted. Instructions (`instruct`) wait unconsumed until a run takes them: taking one binds it
to the run and consumes it in the same update, so each is delivered to exactly one run, once.
Answers to a waiting plan are the lifecycle's to take (app.runs.lifecycle).
"""

from __future__ import annotations

from app.agent.host import Remark
from app.runs.models import Run, StoredCommand
from app.runs.store import Store

INSTRUCT = "instruct"
MAX_LINEAGE = 20  # retries of retries: far more than anyone types, bounded all the same


async def lineage(store: Store, run: Run) -> tuple[str, ...]:
    """The run, then the run it retries, and so on back to the first (newest first).

    A `retry` is a new run started by a delivery whose `retry` command names the run retried;
    the retry goes on from that run's last checkpoint and answers what it was asked.
    """
    ids = [run.id]
    delivery = run.delivery_id
    while delivery is not None and len(ids) < MAX_LINEAGE:
        retried = await store.retried_run_id(delivery)
        if retried is None or retried in ids:
            break
        ids.append(retried)
        earlier = await store.run(retried)
        delivery = earlier.delivery_id if earlier is not None else None
    return tuple(ids)


def as_remark(command: StoredCommand) -> Remark:
    return Remark(command.author, command.text, path=command.path, line=command.line)


class RunInbox:
    """The inbox as one run sees it (`FollowUps` for its agents, requests for its host)."""

    def __init__(self, store: Store, run: Run, runs: tuple[str, ...] | None = None) -> None:
        self._store = store
        self._run = run
        self._runs = runs or (run.id,)  # this run and those it retries

    async def take(self) -> list[Remark]:
        """Instructions on the thread not yet taken, sent to this run (or its lineage) or to
        no run yet; each is taken by one run, once."""
        taken = []
        for command in await self._waiting():
            if await self._store.consume_command(command.id, run_id=self._run.id):
                taken.append(as_remark(command))
        return taken

    async def waiting(self) -> bool:
        return bool(await self._waiting())

    async def _waiting(self) -> list[StoredCommand]:
        return [
            command
            for command in await self._store.pending_commands(self._run.thread)
            if command.verb == INSTRUCT and (command.run_id is None or command.run_id in self._runs)
        ]

    async def requests(self) -> list[StoredCommand]:
        """Everything asked of this run and the runs it retries, oldest first, after taking
        what is pending (a follow-up's task)."""
        await self.take()
        return await self.asked()

    async def asked(self) -> list[StoredCommand]:
        """The instructions already taken by this run or the runs it retries."""
        return await self._store.commands_of(self._runs, INSTRUCT)
