"""Registering the App from a manifest: pure builders, the code conversion and the .env writer.

The flow (GitHub docs, "Registering a GitHub App from a manifest"): our page POSTs the manifest
to GitHub with a `state`; GitHub redirects back with `code` and `state`; we exchange the code
(unauthenticated, within an hour) for the App's id, key and secrets, and store them in `.env`.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import yaml

from app.github.errors import GitHubError
from app.github.types import AppCredentials

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"
WEBHOOK_PATH = "/webhooks/github"
CALLBACK_PATH = "/setup/callback"
SIGN_IN_CALLBACK_PATH = "/auth/callback"  # the dashboard's sign-in (the App's user authorization)
SETUP_PATH = "/setup"
MAX_NAME_LENGTH = 34  # GitHub refuses longer App names
_ORG_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
ENV_KEYS = (
    "GITHUB_APP_ID",
    "GITHUB_APP_SLUG",
    "GITHUB_APP_PRIVATE_KEY",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
)


class ManifestError(ValueError):
    """The manifest file or a value given for it is unusable (message says which and why)."""


def load_manifest(path: Path | None = None) -> dict[str, Any]:
    """The manifest template (manifest.yml at the repository root unless `path` is given)."""
    path = path or DEFAULT_MANIFEST
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"cannot read the App manifest {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"the App manifest {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ManifestError(f"the App manifest {path} needs at least a `name`")
    return data


def build_manifest(
    template: Mapping[str, Any], public_url: str, *, name: str | None = None
) -> dict[str, Any]:
    """The manifest to send: the template with our URLs filled in and, optionally, a new name."""
    base = public_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ManifestError(f"the public URL must be an http(s) URL, not {public_url!r}")
    manifest = copy.deepcopy(dict(template))
    if name is not None:
        manifest["name"] = name.strip()
    if not manifest["name"] or len(manifest["name"]) > MAX_NAME_LENGTH:
        raise ManifestError(f"the App name must be 1 to {MAX_NAME_LENGTH} characters")
    manifest["url"] = base
    hook = dict(manifest.get("hook_attributes") or {})
    hook["url"] = base + WEBHOOK_PATH
    hook.setdefault("active", True)
    manifest["hook_attributes"] = hook
    manifest["redirect_url"] = base + CALLBACK_PATH
    manifest["callback_urls"] = [base + SIGN_IN_CALLBACK_PATH]
    manifest["setup_url"] = base + SETUP_PATH
    return manifest


def manifest_form_url(web_url: str, state: str, *, org: str | None = None) -> str:
    """Where the setup form POSTs the manifest: the personal account's or an organization's."""
    query = urlencode({"state": state})
    web = web_url.rstrip("/")
    if not org:
        return f"{web}/settings/apps/new?{query}"
    if not _ORG_LOGIN.match(org):
        raise ManifestError(f"{org!r} is not a GitHub organization name")
    return f"{web}/organizations/{quote(org)}/settings/apps/new?{query}"


def convert_manifest_code(api_url: str, code: str, *, timeout: float = 30) -> AppCredentials:
    """Exchange the code GitHub sent back for the new App's credentials (once, within 1 h)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", code):
        raise GitHubError("the code from GitHub is malformed; start the setup again")
    url = f"{api_url.rstrip('/')}/app-manifests/{code}/conversions"
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    try:
        response = httpx.post(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise GitHubError(
            f"cannot reach GitHub to finish the setup ({type(exc).__name__})"
        ) from None
    if response.status_code == 404:
        raise GitHubError(
            "GitHub does not know this code: it was used already or is older than an hour; "
            "start the setup again",
            status=404,
        )
    if response.status_code != 201:
        raise GitHubError(
            f"GitHub refused to finish the setup ({response.status_code}); start it again",
            status=response.status_code,
        )
    try:
        return _credentials(response.json())
    except ValueError:  # not JSON, or an id that is not a number: a clear page, not a 500
        raise GitHubError(
            "GitHub sent an unexpected answer to the setup; start the setup again"
        ) from None


def _credentials(data: Any) -> AppCredentials:
    fields = ("id", "slug", "pem", "webhook_secret", "client_id", "client_secret", "html_url")
    missing = [f for f in fields if not isinstance(data, dict) or not data.get(f)]
    if missing:
        raise GitHubError(f"GitHub's answer lacks {', '.join(missing)}; start the setup again")
    return AppCredentials(
        id=int(data["id"]),
        slug=str(data["slug"]),
        pem=str(data["pem"]),
        webhook_secret=str(data["webhook_secret"]),
        client_id=str(data["client_id"]),
        client_secret=str(data["client_secret"]),
        html_url=str(data["html_url"]),
    )


def install_url(credentials: AppCredentials) -> str:
    """Where to send the user next: GitHub's page to install the new App."""
    return f"{credentials.html_url.rstrip('/')}/installations/new"


def credential_env(credentials: AppCredentials) -> dict[str, str]:
    return {
        "GITHUB_APP_ID": str(credentials.id),
        "GITHUB_APP_SLUG": credentials.slug,
        "GITHUB_APP_PRIVATE_KEY": credentials.pem.strip().replace("\n", "\\n"),
        "GITHUB_WEBHOOK_SECRET": credentials.webhook_secret,
        "GITHUB_CLIENT_ID": credentials.client_id,
        "GITHUB_CLIENT_SECRET": credentials.client_secret,
    }


def write_env_credentials(path: Path, credentials: AppCredentials) -> None:
    """Store the credentials in the .env file at `path`, readable by its owner only.

    Other lines are kept; lines setting our keys are replaced in place. The new file is
    created with mode 0600 beside the old one and renamed over it, so no moment exists
    where the secrets sit in a file others can read, nor a half-written file.
    """
    values = credential_env(credentials)
    for key, value in values.items():
        if "'" in value or "\n" in value:
            raise ManifestError(f"{key} from GitHub contains a quote or newline; refusing it")
    try:
        old_lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        old_lines = []
    lines: list[str] = []
    written: set[str] = set()
    for line in old_lines:
        match = _ENV_LINE.match(line)
        name = match.group(1) if match else ""
        if name in values:
            if name not in written:  # replace in place, and keep one assignment per key
                lines.append(f"{name}='{values[name]}'")
                written.add(name)
            continue
        lines.append(line)
    lines += [f"{key}='{value}'" for key, value in values.items() if key not in written]
    _write_private(path, "\n".join(lines) + "\n")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:  # mkstemp creates the file with mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
