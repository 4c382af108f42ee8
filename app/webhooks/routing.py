"""Routing by (event, action): each feature module has a small Router, merged at the top.

A route has two halves. `wants(event, slug)` is pure and cheap: the request uses it to decide
whether a delivery matters (and is worth storing for background work) without any I/O. The
handler runs later, in the background, and does the gating and the GitHub calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.webhooks.event import Event

if TYPE_CHECKING:
    from app.webhooks.context import HandlerContext


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a delivery ended, as recorded in the store: e.g. ("started", "<run id>")."""

    status: str
    detail: str = ""


Handler = Callable[["HandlerContext", Event], Awaitable[Outcome]]
Wants = Callable[[Event, str | None], bool]


def always(_event: Event, _slug: str | None) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Route:
    event: str
    action: str | None
    handler: Handler
    wants: Wants
    otherwise: str  # why a delivery this route does not want is ignored


@dataclass(frozen=True, slots=True)
class Verdict:
    """The request-time verdict: does this delivery need background work?"""

    accepted: bool
    reason: str = ""


class Router:
    def __init__(self, *routers: Router) -> None:
        self._routes: dict[tuple[str, str | None], Route] = {}
        for router in routers:
            for route in router.routes:
                self._add(route)

    @property
    def routes(self) -> list[Route]:
        return list(self._routes.values())

    def route(
        self, event: str, action: str | None, *, wants: Wants = always, otherwise: str = ""
    ) -> Callable[[Handler], Handler]:
        """Register the decorated handler for (event, action); stackable."""

        def register(handler: Handler) -> Handler:
            self._add(Route(event, action, handler, wants, otherwise or "not relevant"))
            return handler

        return register

    def _add(self, route: Route) -> None:
        key = (route.event, route.action)
        if key in self._routes:
            raise ValueError(f"two handlers for {route.event}.{route.action}")
        self._routes[key] = route

    def match(self, event: Event) -> Route | None:
        return self._routes.get(event.key)

    def decide(self, event: Event, slug: str | None) -> Verdict:
        """Pure and fast: safe to call in the request."""
        route = self.match(event)
        if route is None:
            action = f".{event.action}" if event.action else ""
            return Verdict(False, f"{event.name}{action} is not handled")
        if not route.wants(event, slug):
            return Verdict(False, route.otherwise)
        return Verdict(True)
