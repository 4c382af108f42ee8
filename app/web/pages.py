"""The dashboard's pages: runs, a run (with its actions), a repository's totals."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.config import Settings
from app.github.errors import GitHubError
from app.web import csrf
from app.web.actions import DONE, VERBS, ActionRefused, take_action
from app.web.auth import Viewer
from app.web.dashboard import PERIODS, STATUSES, Dashboard, parse_status
from app.web.render import Renderer
from app.webhooks.context import HandlerContext


class Pages:
    def __init__(
        self,
        settings: Settings,
        renderer: Renderer,
        dashboard: Dashboard,
        ctx: HandlerContext,
    ) -> None:
        self._settings = settings
        self._renderer = renderer
        self._dashboard = dashboard
        self._ctx = ctx

    async def runs(self, request: Request, viewer: Viewer) -> Response:
        repo = request.query_params.get("repo") or None
        status = parse_status(request.query_params.get("status"))
        if repo is not None and viewer.access.grant(repo) is None:
            repo = None
        views = await self._dashboard.runs(viewer.access, repo=repo, status=status)
        filters = {k: v for k, v in (("repo", repo), ("status", status)) if v}
        return self._renderer.page(
            "runs.html",
            runs=views,
            api_url="/api/runs" + (f"?{urlencode(filters)}" if filters else ""),
            repos=viewer.access.repos,
            repo=repo or "",
            status=status or "",
            statuses=STATUSES,
            signed_in=viewer.login,
            csrf=viewer.session.csrf,
        )

    async def run(self, request: Request, viewer: Viewer) -> Response:
        view = await self._dashboard.run(viewer.access, request.path_params["run_id"])
        if view is None:
            return self._not_found(viewer)
        return self._renderer.page(
            "run.html",
            view=view,
            run=view.run,
            shown=view.detail(),
            notice=DONE.get(request.query_params.get("done") or ""),
            signed_in=viewer.login,
            csrf=viewer.session.csrf,
        )

    async def repo(self, request: Request, viewer: Viewer) -> Response:
        name = f"{request.path_params['owner']}/{request.path_params['name']}"
        days = _int(request.query_params.get("days"), 30)
        if days not in PERIODS:
            days = 30
        totals = await self._dashboard.totals(viewer.access, name, days)
        if totals is None:
            return self._not_found(viewer)
        return self._renderer.page(
            "repo.html",
            totals=totals,
            periods=PERIODS,
            signed_in=viewer.login,
            csrf=viewer.session.csrf,
        )

    async def act(self, request: Request, viewer: Viewer) -> Response:
        form = await request.form()
        if not csrf.valid_post(
            request, viewer.session, form.get(csrf.FIELD), self._settings.public_url
        ):
            return self._message(viewer, "Not done", "This form has expired; reload the page.", 403)
        run_id = request.path_params["run_id"]
        verb = VERBS.get(request.path_params["verb"])
        view = await self._dashboard.run(viewer.access, run_id)
        if view is None or verb is None:
            return self._not_found(viewer)
        if not viewer.access.can_act(view.run):
            return self._message(
                viewer, "Not allowed", f"You need write access to {view.run.repo} to do this.", 403
            )
        feedback = form.get("feedback")
        try:
            done = await take_action(
                self._ctx,
                view.run,
                verb,
                user=viewer.login,
                feedback=feedback if isinstance(feedback, str) else "",
            )
        except ActionRefused as exc:
            return self._message(viewer, "Not done", str(exc), exc.status, run_id)
        except GitHubError as exc:
            return self._message(viewer, "Not done", f"GitHub refused it: {exc}", 502, run_id)
        return RedirectResponse(f"/runs/{done.run_id}?done={verb.value}", status_code=303)

    def _not_found(self, viewer: Viewer) -> Response:
        return self._message(
            viewer, "Not found", "There is no such run or repository, or you cannot see it.", 404
        )

    def _message(
        self, viewer: Viewer, title: str, text: str, status: int, run_id: str | None = None
    ) -> Response:
        link = ("Back to the run", f"/runs/{run_id}") if run_id else ("All runs", "/")
        return self._renderer.page(
            "message.html",
            http_status=status,
            title=title,
            text=text,
            link=link,
            signed_in=viewer.login,
            csrf=viewer.session.csrf,
        )


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default
