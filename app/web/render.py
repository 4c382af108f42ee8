"""Server-rendered pages: Jinja2 templates (autoescaped) and the headers every answer carries.

Everything shown may be untrusted text (issue titles, plans, command output), so templates
escape everything and never mark a value safe. The Content-Security-Policy allows scripts,
styles and fetches from this origin only: no inline script or style, no framing, and forms
post only here.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse, JSONResponse

from app.web.run_view import duration

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: browsers then send a real Origin on our own form posts
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages and answers hold what one person may see
}


class Renderer:
    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("app.web", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.globals["duration"] = duration

    def page(self, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        html = self._env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=http_status, headers=SECURITY_HEADERS)


def json_answer(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=SECURITY_HEADERS)
