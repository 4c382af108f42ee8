"""The JSON API, with the pages' access rules: `GET /api/runs` and `GET /api/runs/{id}`.

The run page's transcript comes with the per-run event store (issue 9, phase 2):
`GET /api/runs/{id}/events` (the stored events as JSON) and `GET /api/runs/{id}/stream`
(new events as server-sent events) belong here, guarded the same way.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.web.auth import Viewer
from app.web.dashboard import Dashboard, parse_status
from app.web.render import json_answer


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
            return json_answer({"error": "no such run, or you cannot see it"}, 404)
        return json_answer(view.detail())
