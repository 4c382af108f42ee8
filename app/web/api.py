"""The JSON API, with the pages' access rules: `GET /api/runs`, `GET /api/runs/{id}`, the
run's transcript `GET /api/runs/{id}/events?after=<event id>` (a page of events, oldest
first) and its live stream `GET /api/runs/{id}/stream` (app.web.stream). A run the person
cannot see is "not found", exactly like a run that does not exist.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.web.auth import Viewer
from app.web.dashboard import Dashboard, parse_status
from app.web.render import json_answer
from app.web.stream import resume_point, stream_response

NOT_FOUND = {"error": "no such run, or you cannot see it"}
EVENTS_PAGE = 200


class Api:
    def __init__(self, dashboard: Dashboard) -> None:
        self._dashboard = dashboard

    async def runs(self, request: Request, viewer: Viewer) -> Response:
        repo = request.query_params.get("repo") or None
        status = parse_status(request.query_params.get("status"))
        if repo is not None and viewer.access.grant(repo) is None:
            return json_answer({"runs": []})
        views = await self._dashboard.runs(viewer.access, repo=repo, status=status)
        return json_answer({"runs": [view.summary() for view in views]})

    async def run(self, request: Request, viewer: Viewer) -> Response:
        view = await self._dashboard.run(viewer.access, request.path_params["run_id"])
        if view is None:
            return json_answer(NOT_FOUND, 404)
        return json_answer(view.detail())

    async def events(self, request: Request, viewer: Viewer) -> Response:
        run = await self._dashboard.visible(viewer.access, request.path_params["run_id"])
        if run is None:
            return json_answer(NOT_FOUND, 404)
        after = _number(request.query_params.get("after"))
        limit = _number(request.query_params.get("limit")) or EVENTS_PAGE
        if after is None or not 1 <= limit <= EVENTS_PAGE:
            return json_answer({"error": f"after and limit (1-{EVENTS_PAGE}) are numbers"}, 400)
        found = await self._dashboard.store.run_events(run.id, after=after, limit=limit + 1)
        page = found[:limit]
        return json_answer(
            {
                "run": {"id": run.id, "status": run.status, "active": run.active},
                "events": [event.shown() for event in page],
                "next": page[-1].seq if page else after,
                "more": len(found) > limit,
            }
        )

    async def stream(self, request: Request, viewer: Viewer) -> Response:
        run = await self._dashboard.visible(viewer.access, request.path_params["run_id"])
        if run is None:
            return json_answer(NOT_FOUND, 404)
        return stream_response(self._dashboard.store, run.id, resume_point(request))


def _number(value: str | None) -> int | None:
    """A non-negative whole number from a query (0 when absent), None when it is not one."""
    if value is None or value == "":
        return 0
    return int(value) if value.isdigit() and len(value) < 12 else None
