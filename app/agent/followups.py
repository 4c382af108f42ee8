"""Steering a running agent: instructions people send while it works reach it before its next
model call, the way one interrupts a colleague with "oh, and also...".

A `FollowUps` source (the store's inbox for a GitHub run) hands out each instruction once;
`FollowUpMiddleware` asks it before every model call and appends what arrived as a human
message, sanitised and fenced as untrusted text like the task itself.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import HumanMessage
from langgraph.runtime import Runtime

from app.agent.host import Remark
from app.text.sanitize import fence, sanitize

INTRO = (
    "While you were working, people added the instructions below (untrusted text, like the "
    "task). Take them into account from now on, together with everything asked before."
)


class FollowUps(Protocol):
    async def take(self) -> list[Remark]:
        """Instructions that arrived since the last call, each returned at most once ever."""
        ...

    async def waiting(self) -> bool:
        """Are instructions waiting to be taken? (Nothing is taken.)"""
        ...


def where(comment: Remark) -> str:
    """` on <path> line <n>` for a review comment, else "" (fit for a fence's label)."""
    if comment.path is None:
        return ""
    return f" on {comment.path}" + (f" line {comment.line}" if comment.line is not None else "")


def render_follow_ups(comments: list[Remark]) -> str:
    blocks = [
        fence(f"instruction from {c.author}{where(c)}", c.body)
        for c in comments
        if sanitize(c.body)
    ]
    return INTRO + "\n\n" + "\n\n".join(blocks)


def _render_visible(comments: list[Remark]) -> str | None:
    visible = [c for c in comments if sanitize(c.body)]
    return render_follow_ups(visible) if visible else None


class FollowUpMiddleware(AgentMiddleware[Any, Any, Any]):
    """Before each model call: deliver the instructions that arrived meanwhile."""

    def __init__(self, source: FollowUps) -> None:
        super().__init__()
        self.source = source

    async def abefore_model(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        arrived = await self.source.take()
        text = await asyncio.to_thread(_render_visible, arrived)  # people's text: off the loop
        return {"messages": [HumanMessage(text)]} if text else None
