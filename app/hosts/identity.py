"""Who a GitHub run acts for: the person who asked, and the commit identities GitHub links."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.sandbox.types import GitIdentity

GITHUB_NOREPLY = "users.noreply.github.com"


@dataclass(frozen=True)
class Requester:
    """The person who triggered the run: asked for review, credited as co-author."""

    login: str
    id: int | None = None  # GitHub user id: makes the noreply address link to the account


def noreply_domain(web_url: str) -> str:
    """GitHub's noreply e-mail domain for a web URL (GitHub Enterprise: users.noreply.<host>)."""
    host = re.sub(r"^[a-z]+://", "", web_url.strip().lower()).split("/", 1)[0]
    return GITHUB_NOREPLY if host in ("", "github.com") else f"users.noreply.{host}"


def noreply_identity(login: str, user_id: int | None, domain: str = GITHUB_NOREPLY) -> GitIdentity:
    """The commit identity GitHub attributes to an account without exposing an e-mail."""
    local = f"{user_id}+{login}" if user_id is not None else login
    return GitIdentity(login, f"{local}@{domain}")
