from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from app.github.app import GitHubApp
from app.github.errors import AuthenticationFailed, GitHubError
from app.text.redact import REDACTED
from tests.fakes.github import FakeGitHub, generate_rsa_keypair
from tests.github.conftest import INSTALLATION, REPO


def test_jwt_is_rs256_signed_with_the_app_key_and_short_lived(
    gh: FakeGitHub, github_app: GitHubApp
) -> None:
    before = int(time.time())
    token = github_app.jwt()

    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, gh.public_key_pem, algorithms=["RS256"])
    assert claims["iss"] == str(gh.app_id)
    assert before - 61 <= claims["iat"] <= before - 59
    assert claims["exp"] - int(time.time()) <= 600
    assert claims["exp"] > time.time() + 60


def test_jwt_signed_with_another_key_is_rejected_by_github(gh: FakeGitHub) -> None:
    other_private, _ = generate_rsa_keypair()
    app = GitHubApp(gh.app_id, other_private, gh.url, throttle=False)

    with pytest.raises(AuthenticationFailed, match="GITHUB_APP_ID and the private key"):
        app.slug()
    assert gh.calls[-1].auth == "invalid"


@pytest.mark.parametrize(
    "pem",
    [
        "not a key",
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    ],
)
def test_a_private_key_that_is_not_a_pem_is_refused_up_front(gh: FakeGitHub, pem: str) -> None:
    with pytest.raises(GitHubError, match="not a readable PEM") as caught:
        GitHubApp(1, pem, gh.url)
    assert "AAAA" not in str(caught.value)


def test_a_non_rsa_key_is_refused(gh: FakeGitHub) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(GitHubError, match="must be an RSA key"):
        GitHubApp(1, pem, gh.url)


def test_slug_is_fetched_once_with_a_jwt(gh: FakeGitHub, github_app: GitHubApp) -> None:
    assert github_app.slug() == gh.app_slug
    assert github_app.slug() == gh.app_slug

    calls = gh.calls_matching("GET", "/app")
    assert len(calls) == 1
    assert calls[0].auth == "jwt"


def test_installation_lookup(gh: FakeGitHub, github_app: GitHubApp) -> None:
    gh.add_installation(9, "octo-user", [], account_type="User")

    info = github_app.installation(INSTALLATION)
    assert info is not None
    assert (info.id, info.account, info.account_type, info.suspended) == (
        INSTALLATION,
        "acme",
        "Organization",
        False,
    )
    user_install = github_app.installation(9)
    assert user_install is not None
    assert user_install.account_type == "User"
    assert github_app.installation(12345) is None


def test_repo_installation(github_app: GitHubApp) -> None:
    info = github_app.repo_installation(REPO)
    assert info is not None
    assert info.id == INSTALLATION
    assert github_app.repo_installation("acme/unknown") is None


def test_token_is_scoped_to_the_one_repository(gh: FakeGitHub, github_app: GitHubApp) -> None:
    token = github_app.installation_token(INSTALLATION, REPO)

    (call,) = gh.calls_matching("POST", f"/app/installations/{INSTALLATION}/access_tokens")
    assert call.auth == "jwt"
    assert call.json == {"repositories": ["widgets"]}
    assert gh.tokens[token.token].repositories == ["widgets"]
    assert token.expires_at > datetime.now(UTC) + timedelta(minutes=50)
    assert token.token not in repr(token)


def test_scoped_token_cannot_see_other_repositories(github_app: GitHubApp) -> None:
    client = github_app.client(INSTALLATION, REPO)
    assert client.get_repo(REPO).full_name == REPO
    with pytest.raises(GitHubError, match="not found"):
        client.get_repo("acme/other")


def test_unscoped_token_sends_no_repositories(gh: FakeGitHub, github_app: GitHubApp) -> None:
    github_app.installation_token(INSTALLATION)
    (call,) = gh.calls_matching("POST", "/app/installations/*/access_tokens")
    assert call.json in (None, {})


def test_tokens_are_cached_per_installation_and_repo(gh: FakeGitHub, github_app: GitHubApp) -> None:
    first = github_app.installation_token(INSTALLATION, REPO)
    again = github_app.installation_token(INSTALLATION, "widgets")
    other = github_app.installation_token(INSTALLATION, "acme/other")

    assert again.token == first.token
    assert other.token != first.token
    assert len(gh.calls_matching("POST", "/app/installations/*/access_tokens")) == 2


def test_token_is_renewed_shortly_before_it_expires(gh: FakeGitHub, github_app: GitHubApp) -> None:
    gh.token_ttl = timedelta(seconds=90)  # renewed when fewer than 60 s remain
    first = github_app.installation_token(INSTALLATION, REPO)
    assert github_app.installation_token(INSTALLATION, REPO).token == first.token

    gh.token_ttl = timedelta(seconds=59)
    short = github_app.installation_token(INSTALLATION, "acme/other")
    renewed = github_app.installation_token(INSTALLATION, "acme/other")
    assert renewed.token != short.token
    assert len(gh.calls_matching("POST", "/app/installations/*/access_tokens")) == 3


def test_a_long_lived_client_picks_up_the_renewed_token(
    gh: FakeGitHub, github_app: GitHubApp
) -> None:
    gh.token_ttl = timedelta(seconds=30)  # always inside the renewal margin
    client = github_app.client(INSTALLATION, REPO)
    client.get_repo(REPO)
    gh.expire_tokens()  # GitHub would now answer 401 to the old token

    assert client.get_repo(REPO).full_name == REPO
    tokens = [c.token for c in gh.calls_matching("GET", f"/repos/{REPO}")]
    assert len(set(tokens)) == 2


def test_token_for_a_missing_installation_is_a_clear_error(github_app: GitHubApp) -> None:
    with pytest.raises(GitHubError, match="installation 404"):
        github_app.installation_token(404)


def test_retries_a_bad_gateway_then_succeeds(gh: FakeGitHub, github_app: GitHubApp) -> None:
    gh.fail("POST", "/app/installations/*/access_tokens", 502)

    token = github_app.installation_token(INSTALLATION, REPO)

    statuses = [c.status for c in gh.calls_matching("POST", "/app/installations/*/access_tokens")]
    assert statuses == [502, 201]
    assert token.token in gh.tokens


def test_repr_holds_no_key_material(gh: FakeGitHub, github_app: GitHubApp) -> None:
    assert gh.private_key_pem is not None
    assert "PRIVATE" not in repr(github_app)


def test_a_minted_installation_token_is_redacted_from_the_process_logs(
    github_app: GitHubApp, capsys: pytest.CaptureFixture[str]
) -> None:
    import structlog

    import app.logs as logs

    logs.configure_logging(level="info", fmt="console", secrets=[])
    try:
        token = github_app.installation_token(INSTALLATION, REPO).token
        structlog.get_logger().error("git said", output=f"https://x:{token}@github.com")
    finally:
        structlog.reset_defaults()
        logs._process_redactor = None

    err = capsys.readouterr().err
    assert token not in err
    assert REDACTED in err


# The App's webhook deliveries ------------------------------------------------------------


def test_webhook_deliveries_are_listed_newest_first_page_by_page(
    gh: FakeGitHub, github_app: GitHubApp
) -> None:
    sent = [gh.hook.deliver("issues", {"action": "labeled", "n": n}) for n in range(5)]

    first, cursor = github_app.hook_deliveries(per_page=2)
    second, cursor2 = github_app.hook_deliveries(per_page=2, cursor=cursor)
    third, end = github_app.hook_deliveries(per_page=2, cursor=cursor2)

    listed = [d.guid for d in first + second + third]
    assert listed == [attempt.guid for attempt in reversed(sent)]
    assert end is None
    newest = first[0]
    assert (newest.event, newest.action, newest.redelivery) == ("issues", "labeled", False)
    assert newest.status_code == 0  # nobody listens: "failed to connect"
    assert not newest.succeeded
    assert newest.delivered_at.tzinfo is not None
    assert all(c.auth == "jwt" for c in gh.calls_matching("GET", "/app/hook/deliveries"))


def test_a_redelivery_sends_the_same_delivery_again(gh: FakeGitHub, github_app: GitHubApp) -> None:
    original = gh.hook.deliver("issues", {"action": "closed"})
    [listed], _ = github_app.hook_deliveries()

    github_app.redeliver(listed.id)
    gh.hook.join()

    assert gh.hook.redeliveries == [original.id]
    first, again = gh.hook.of(original.guid)
    assert (first.redelivery, again.redelivery) == (False, True)
    [call] = gh.calls_matching("POST", f"/app/hook/deliveries/{original.id}/attempts")
    assert (call.auth, call.status) == ("jwt", 202)


def test_forgetting_an_installation_drops_its_cached_tokens(
    gh: FakeGitHub, github_app: GitHubApp
) -> None:
    github_app.installation_token(INSTALLATION, REPO)
    github_app.installation_token(INSTALLATION)
    assert github_app.forget_installation(INSTALLATION) == 2
    assert github_app.forget_installation(INSTALLATION) == 0
    github_app.installation_token(INSTALLATION, REPO)  # a new one is asked for
    assert len(gh.calls_matching("POST", "/app/installations/*/access_tokens")) == 3
