"""The fake GitHub answers in the shapes of GitHub's OpenAPI description.

Each answer is checked against the operation's response schema from
shared/fixtures/github/rest-openapi-subset.json: required properties present, JSON types right
(recursively), and every API URL under the fake's base URL (PyGithub follows them).
"""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from app.github.app import GitHubApp
from tests.fakes.github import FakeGitHub
from tests.github.conftest import INSTALLATION, REPO

OPENAPI = Path(__file__).resolve().parents[3] / "shared/fixtures/github/rest-openapi-subset.json"
TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@cache
def spec() -> dict[str, Any]:
    return json.loads(OPENAPI.read_text())  # type: ignore[no-any-return]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec()
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def problems(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    """Where `value` breaks `schema` (required keys and types; enough to catch shape drift)."""
    schema = resolve(schema)
    if value is None:
        nullable = schema.get("nullable") or "null" in str(schema.get("type"))
        return [] if nullable or not schema else [f"{where}: null not allowed"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [problems(value, option, where) for option in schema[key]]
            return [] if any(not o for o in options) else min(options, key=len)
    if "allOf" in schema:
        return [p for part in schema["allOf"] for p in problems(value, part, where)]
    kind = schema.get("type")
    wrong_type = (
        isinstance(kind, str)
        and kind in TYPES
        and (not isinstance(value, TYPES[kind]) or (kind == "integer" and isinstance(value, bool)))
    )
    if wrong_type:
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    found: list[str] = []
    if isinstance(value, dict):
        found += [
            f"{where}.{key}: missing" for key in schema.get("required", []) if key not in value
        ]
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                found += problems(value[key], sub, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value[:3]):
            found += problems(item, schema["items"], f"{where}[{index}]")
    return found


def response_schema(method: str, template: str, status: int) -> dict[str, Any]:
    responses = spec()["paths"][template][method.lower()]["responses"]
    return responses[str(status)]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


def api_urls(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in api_urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in api_urls(v)]
    if isinstance(value, str) and value.startswith("http") and "/repos/" in value:
        return [value]
    return []


@pytest.fixture
def seeded(gh: FakeGitHub) -> dict[str, int]:
    issue = gh.add_issue(REPO, title="Bug", labels=["bug"])
    pull = gh.add_pull(REPO, head="feature", files=[("a.py", "modified", 1, 1)])
    comment = gh.add_comment(REPO, issue.number, "hello")
    review = gh.add_review_comment(REPO, pull.issue.number, "nit")
    gh.add_manifest_conversion("code")
    return {
        "issue": issue.number,
        "pull": pull.issue.number,
        "comment": comment.id,
        "review": review.id,
    }


# (method, OpenAPI path template, concrete path, JSON body, auth, expected status)
CASES: list[tuple[str, str, str, Any, str, int]] = [
    ("GET", "/app", "/app", None, "jwt", 200),
    ("GET", "/app/installations/{installation_id}", f"/app/installations/{INSTALLATION}", None, "jwt", 200),
    ("POST", "/app/installations/{installation_id}/access_tokens", f"/app/installations/{INSTALLATION}/access_tokens", {"repositories": ["widgets"]}, "jwt", 201),
    ("GET", "/repos/{owner}/{repo}/installation", f"/repos/{REPO}/installation", None, "jwt", 200),
    ("POST", "/app-manifests/{code}/conversions", "/app-manifests/code/conversions", None, "none", 201),
    ("GET", "/rate_limit", "/rate_limit", None, "token", 200),
    ("GET", "/installation/repositories", "/installation/repositories", None, "token", 200),
    ("GET", "/repos/{owner}/{repo}", f"/repos/{REPO}", None, "token", 200),
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission", f"/repos/{REPO}/collaborators/alice/permission", None, "token", 200),
    ("POST", "/repos/{owner}/{repo}/labels", f"/repos/{REPO}/labels", {"name": "new", "color": "ffffff"}, "token", 201),
    ("GET", "/repos/{owner}/{repo}/labels/{name}", f"/repos/{REPO}/labels/bug", None, "token", 200),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}", f"/repos/{REPO}/issues/{{issue}}", None, "token", 200),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels", f"/repos/{REPO}/issues/{{issue}}/labels", {"labels": ["x"]}, "token", 200),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments", f"/repos/{REPO}/issues/{{issue}}/comments", None, "token", 200),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", f"/repos/{REPO}/issues/{{issue}}/comments", {"body": "hi"}, "token", 201),
    ("GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}", f"/repos/{REPO}/issues/comments/{{comment}}", None, "token", 200),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}", f"/repos/{REPO}/issues/comments/{{comment}}", {"body": "edited"}, "token", 200),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/reactions", f"/repos/{REPO}/issues/{{issue}}/reactions", {"content": "eyes"}, "token", 201),
    ("POST", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", f"/repos/{REPO}/issues/comments/{{comment}}/reactions", {"content": "eyes"}, "token", 201),
    ("POST", "/repos/{owner}/{repo}/pulls/comments/{comment_id}/reactions", f"/repos/{REPO}/pulls/comments/{{review}}/reactions", {"content": "eyes"}, "token", 201),
    ("GET", "/repos/{owner}/{repo}/pulls", f"/repos/{REPO}/pulls", None, "token", 200),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", f"/repos/{REPO}/pulls/{{pull}}", None, "token", 200),
    ("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}", f"/repos/{REPO}/pulls/{{pull}}", {"title": "t"}, "token", 200),
    ("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/comments/{comment_id}/replies", f"/repos/{REPO}/pulls/{{pull}}/comments/{{review}}/replies", {"body": "ok"}, "token", 201),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "template", "path", "body", "auth", "status"),
    CASES,
    ids=[f"{c[0]} {c[1]}" for c in CASES],
)
def test_answers_match_the_openapi_schema(
    gh: FakeGitHub,
    seeded: dict[str, int],
    method: str,
    template: str,
    path: str,
    body: Any,
    auth: str,
    status: int,
) -> None:
    assert gh.private_key_pem is not None
    headers = {}
    if auth == "jwt":
        headers["Authorization"] = (
            f"Bearer {GitHubApp(gh.app_id, gh.private_key_pem, gh.url).jwt()}"
        )
    elif auth == "token":
        headers["Authorization"] = f"token {gh.issue_token(INSTALLATION).token}"

    response = requests.request(
        method, gh.url + path.format(**seeded), json=body, headers=headers, timeout=10
    )

    assert response.status_code == status, response.text
    data = response.json()
    assert problems(data, response_schema(method, template, status), "response") == []
    assert all(url.startswith(gh.url + "/") for url in api_urls(data)), api_urls(data)


# The fake's own rules: auth like GitHub, call log, faults -------------------------------


def app_jwt(gh: FakeGitHub, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iat": now - 60, "exp": now + 300, "iss": str(gh.app_id)} | claims
    assert gh.private_key_pem is not None
    return jwt.encode(payload, gh.private_key_pem, algorithm="RS256")


# Times are offsets from the moment the test runs (parametrize values are built at collection,
# which can be minutes earlier in a long suite).
@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": 660}, "too far in the future"),
        ({"exp": -10}, "Expiration time"),
        ({"iss": "999"}, "Issuer"),
        ({"iat": 120}, "Issued at"),
    ],
)
def test_app_jwt_claims_are_checked(gh: FakeGitHub, claims: dict[str, Any], message: str) -> None:
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "iat") else v for k, v in claims.items()}
    response = requests.get(
        gh.url + "/app", headers={"Authorization": f"Bearer {app_jwt(gh, **claims)}"}, timeout=10
    )
    assert response.status_code == 401
    assert message in response.json()["message"]
    assert gh.calls[-1].auth == "invalid"


@pytest.mark.parametrize(
    ("path", "authorization"),
    [
        ("/app", None),
        ("/app", "token {token}"),  # an installation token is no App JWT
        (f"/repos/{REPO}", None),
        (f"/repos/{REPO}", "Bearer {jwt}"),  # nor the other way round
        (f"/repos/{REPO}", "token ghs_unknown"),
    ],
)
def test_wrong_kind_of_credentials_get_401(
    gh: FakeGitHub, path: str, authorization: str | None
) -> None:
    headers = {}
    if authorization:
        value = authorization.format(token=gh.issue_token(INSTALLATION).token, jwt=app_jwt(gh))
        headers["Authorization"] = value
    response = requests.get(gh.url + path, headers=headers, timeout=10)
    assert response.status_code == 401


def test_bearer_installation_tokens_are_accepted(gh: FakeGitHub) -> None:
    token = gh.issue_token(INSTALLATION).token
    response = requests.get(
        gh.url + f"/repos/{REPO}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200
    assert gh.calls[-1].token == token


def test_paths_outside_the_prefix_are_not_found(gh: FakeGitHub) -> None:
    assert requests.get(gh.web_url + "/app", timeout=10).status_code == 404


def test_calls_are_recorded_in_order_with_faults_counted_down(gh: FakeGitHub) -> None:
    token = gh.issue_token(INSTALLATION).token
    headers = {"Authorization": f"token {token}"}
    gh.fail("GET", "/repos/*", 502, times=2)

    codes = [
        requests.get(gh.url + f"/repos/{REPO}", headers=headers, timeout=10).status_code
        for _ in range(3)
    ]

    assert codes == [502, 502, 200]
    assert [(c.method, c.path, c.auth, c.status) for c in gh.calls] == [
        ("GET", f"/repos/{REPO}", "token", 502),
        ("GET", f"/repos/{REPO}", "token", 502),
        ("GET", f"/repos/{REPO}", "token", 200),
    ]


def test_rate_limit_faults_carry_github_headers(gh: FakeGitHub) -> None:
    gh.rate_limit("GET", "/rate_limit", status=429, retry_after=7)
    gh.rate_limit("GET", "/rate_limit", reset_in=100)

    secondary = requests.get(gh.url + "/rate_limit", timeout=10)
    primary = requests.get(gh.url + "/rate_limit", timeout=10)

    assert (secondary.status_code, secondary.headers["Retry-After"]) == (429, "7")
    assert primary.status_code == 403
    assert primary.headers["X-RateLimit-Remaining"] == "0"
    assert int(primary.headers["X-RateLimit-Reset"]) >= int(time.time()) + 99
    assert "rate limit" in primary.json()["message"]
