"""The App setup flow end to end: our pages, the fake GitHub's conversion, the .env file."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from app.config import Settings
from app.setup_routes import SetupStateStore, setup_routes
from tests.fakes.github import FakeGitHub

TOKEN = "setup-token-for-tests"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake
        assert not fake.errors


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    return tmp_path / "conf" / ".env"


def make_settings(gh: FakeGitHub, env_file: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "github_app_id": None,
        "github_app_private_key": None,
        "github_app_private_key_path": None,
        "github_webhook_secret": None,
        "github_app_slug": None,
        "github_api_url": gh.url,
        "github_web_url": gh.web_url,
        "env_file_path": env_file,
        "public_url": "https://swe.example.com",
    }
    return Settings(_env_file=None, **(base | values))  # type: ignore[call-arg]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> SetupStateStore:
    return SetupStateStore(token=TOKEN, clock=clock)


def client_for(settings: Settings, store: SetupStateStore) -> TestClient:
    app = Starlette(routes=setup_routes(settings, state_store=store))
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def client(gh: FakeGitHub, env_file: Path, store: SetupStateStore) -> TestClient:
    return client_for(make_settings(gh, env_file), store)


def registration_form(html: str) -> tuple[str, dict[str, Any]]:
    """The POST form's action and the manifest it sends."""
    action = re.search(r'<form method="post" action="([^"]+)"', html)
    manifest = re.search(r'<input type="hidden" name="manifest" value="([^"]+)"', html)
    assert action is not None, html
    assert manifest is not None, html
    return unescape(action.group(1)), json.loads(unescape(manifest.group(1)))


def state_of(action: str) -> str:
    match = re.search(r"[?&]state=([^&]+)", action)
    assert match is not None
    return match.group(1)


def test_setup_page_offers_to_register_from_the_manifest(
    gh: FakeGitHub, client: TestClient
) -> None:
    response = client.get("/setup", params={"token": TOKEN})

    assert response.status_code == 200
    action, manifest = registration_form(response.text)
    assert action.startswith(f"{gh.web_url}/settings/apps/new?state=")
    assert manifest["hook_attributes"]["url"] == "https://swe.example.com/webhooks/github"
    assert manifest["redirect_url"] == "https://swe.example.com/setup/callback"
    assert manifest["default_permissions"]["contents"] == "write"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "GitHub cannot deliver webhooks" not in response.text


def test_home_page_is_the_setup_page_until_configured(client: TestClient) -> None:
    response = client.get("/", params={"token": TOKEN})
    registration_form(response.text)


def test_every_page_view_gets_its_own_state(client: TestClient) -> None:
    first, _ = registration_form(client.get("/setup", params={"token": TOKEN}).text)
    second, _ = registration_form(client.get("/setup", params={"token": TOKEN}).text)
    assert state_of(first) != state_of(second)


def test_without_the_setup_token_nothing_can_be_registered(
    client: TestClient, store: SetupStateStore
) -> None:
    for params in ({}, {"token": "guess"}):
        response = client.get("/setup", params=params)
        assert response.status_code == 403
        assert "setup link printed in the server's log" in response.text
        assert 'method="post"' not in response.text
        assert TOKEN not in response.text
    assert store.consume_state("anything") is False


@pytest.mark.parametrize("path", ["/", "/setup"])
def test_a_non_ascii_setup_token_is_refused_not_a_server_error(
    gh: FakeGitHub, env_file: Path, store: SetupStateStore, path: str
) -> None:
    app = Starlette(routes=setup_routes(make_settings(gh, env_file), state_store=store))
    client = TestClient(app, raise_server_exceptions=False)

    response = client.get(f"{path}?token=%C3%A9t%C3%A9")  # compare_digest refuses non-ASCII str

    assert response.status_code == 403
    assert "setup link printed in the server's log" in response.text


def test_organization_and_name_options(gh: FakeGitHub, client: TestClient) -> None:
    response = client.get("/setup", params={"token": TOKEN, "org": "acme-inc", "name": "acme-swe"})

    action, manifest = registration_form(response.text)
    assert action.startswith(f"{gh.web_url}/organizations/acme-inc/settings/apps/new?state=")
    assert manifest["name"] == "acme-swe"
    assert 'value="acme-inc"' in response.text  # the option form keeps what was typed


def test_bad_options_are_explained_and_escaped(client: TestClient) -> None:
    response = client.get("/setup", params={"token": TOKEN, "org": "<script>x</script>"})

    assert response.status_code == 400
    assert "is not a GitHub organization name" in response.text
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text
    assert 'method="post"' not in response.text


def test_html_in_the_app_name_is_escaped(client: TestClient) -> None:
    response = client.get("/setup", params={"token": TOKEN, "name": "<b>swe</b>"})

    assert "<b>swe</b>" not in response.text
    _, manifest = registration_form(response.text)
    assert manifest["name"] == "<b>swe</b>"  # sent to GitHub as typed; GitHub decides


def test_local_address_gets_a_webhook_warning(
    gh: FakeGitHub, env_file: Path, store: SetupStateStore
) -> None:
    client = client_for(make_settings(gh, env_file, public_url="http://localhost:8000"), store)
    response = client.get("/setup", params={"token": TOKEN})
    assert "GitHub cannot deliver webhooks" in response.text
    _, manifest = registration_form(response.text)
    assert manifest["hook_attributes"]["url"] == "http://localhost:8000/webhooks/github"


@pytest.mark.parametrize(
    ("host", "port", "base"),
    [("127.0.0.1", 8000, "http://127.0.0.1:8000"), ("0.0.0.0", 9000, "http://127.0.0.1:9000")],
)
def test_without_a_public_url_the_manifest_uses_the_served_address_not_the_host_header(
    gh: FakeGitHub, env_file: Path, store: SetupStateStore, host: str, port: int, base: str
) -> None:
    settings = make_settings(gh, env_file, public_url=None, host=host, port=port)
    client = client_for(settings, store)
    page = client.get("/setup", params={"token": TOKEN}, headers={"Host": "evil.example"})
    _, manifest = registration_form(page.text)
    assert manifest["url"] == base
    assert manifest["hook_attributes"]["url"] == f"{base}/webhooks/github"
    assert manifest["redirect_url"] == f"{base}/setup/callback"
    assert manifest["setup_url"] == f"{base}/setup"
    assert manifest["callback_urls"] == [f"{base}/auth/callback"]
    assert "evil.example" not in page.text
    assert "GitHub cannot deliver webhooks" in page.text  # a loopback address: it says so


def test_the_manifest_registers_the_sign_in_callback(client: TestClient) -> None:
    _, manifest = registration_form(client.get("/setup", params={"token": TOKEN}).text)
    assert manifest["callback_urls"] == ["https://swe.example.com/auth/callback"]


def test_the_app_name_in_the_register_button_is_readable(client: TestClient) -> None:
    """The name sat in a <code> inside the green button: white on light grey. WCAG AA asks for
    a contrast of 4.5:1 for text; the cascade here is two rules deep, resolved by hand."""
    page = client.get("/setup", params={"token": TOKEN}).text
    assert re.search(r"<button>Register the GitHub App <code>open-swe</code>", page)
    rules = {
        selector.strip(): dict(
            (name.strip(), value.strip())
            for name, _, value in (d.partition(":") for d in body.split(";") if ":" in d)
        )
        for selector, body in re.findall(r"^\s*([^{}\n]+)\{([^}]*)\}", page, re.M)
    }
    button, code, code_in_button = rules["button"], rules["code"], rules.get("button code", {})
    color = code_in_button.get("color") or code.get("color") or button["color"]
    background = code_in_button.get("background") or code["background"]
    assert contrast(color, background) >= 4.5, (color, background)
    assert contrast(button["color"], button["background"]) >= 4.5


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb / #rgb colours."""

    def luminance(colour: str) -> float:
        digits = colour.lstrip("#")
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted([luminance(first), luminance(second)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_callback_writes_private_env_and_sends_the_user_to_install(
    gh: FakeGitHub, client: TestClient, env_file: Path
) -> None:
    action, _ = registration_form(client.get("/setup", params={"token": TOKEN}).text)
    gh.add_manifest_conversion("the-code", app_id=777, slug="acme-swe")

    response = client.get("/setup/callback", params={"code": "the-code", "state": state_of(action)})

    assert response.status_code == 303
    assert response.headers["location"] == f"{gh.web_url}/apps/acme-swe/installations/new"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    loaded = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert loaded.github_app_id == 777
    assert loaded.github_app_slug == "acme-swe"
    assert loaded.app_configured
    # The App's OAuth client, for signing people in (issue 9's web pages).
    assert loaded.github_app_client_id
    assert loaded.github_app_client_secret is not None
    assert loaded.github_app_client_secret.get_secret_value()
    assert "GITHUB_APP_CLIENT_SECRET=" in env_file.read_text()
    assert len(gh.calls_matching("POST", "/app-manifests/the-code/conversions")) == 1

    # Until restarted, the setup page says so instead of offering a second registration.
    page = client.get("/setup", params={"token": TOKEN})
    assert "Restart open-swe" in page.text
    assert 'method="post"' not in page.text


def test_callback_with_a_wrong_state_changes_nothing(
    gh: FakeGitHub, client: TestClient, env_file: Path
) -> None:
    registration_form(client.get("/setup", params={"token": TOKEN}).text)
    gh.add_manifest_conversion("the-code")

    for params in ({"code": "the-code", "state": "forged"}, {"code": "the-code"}):
        response = client.get("/setup/callback", params=params)
        assert response.status_code == 400
        assert "start again" in response.text

    assert not env_file.exists()
    assert gh.calls == []  # the code was never exchanged


def test_state_is_single_use(gh: FakeGitHub, client: TestClient, env_file: Path) -> None:
    action, _ = registration_form(client.get("/setup", params={"token": TOKEN}).text)
    state = state_of(action)
    gh.add_manifest_conversion("bad-code-first")

    client.get("/setup/callback", params={"code": "unknown", "state": state})
    response = client.get("/setup/callback", params={"code": "bad-code-first", "state": state})

    assert response.status_code == 400
    assert not env_file.exists()


def test_state_expires_after_an_hour(
    gh: FakeGitHub, client: TestClient, clock: Clock, env_file: Path
) -> None:
    action, _ = registration_form(client.get("/setup", params={"token": TOKEN}).text)
    gh.add_manifest_conversion("the-code")
    clock.now += 3601

    response = client.get("/setup/callback", params={"code": "the-code", "state": state_of(action)})

    assert response.status_code == 400
    assert not env_file.exists()


def test_a_failed_conversion_is_reported(
    gh: FakeGitHub, client: TestClient, env_file: Path
) -> None:
    action, _ = registration_form(client.get("/setup", params={"token": TOKEN}).text)

    response = client.get("/setup/callback", params={"code": "expired", "state": state_of(action)})

    assert response.status_code == 502
    assert "start the setup again" in response.text
    assert not env_file.exists()


def test_an_unwritable_env_file_is_reported_with_a_way_out(
    gh: FakeGitHub, tmp_path: Path, store: SetupStateStore
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    client = client_for(make_settings(gh, blocker / ".env"), store)
    action, _ = registration_form(client.get("/setup", params={"token": TOKEN}).text)
    gh.add_manifest_conversion("the-code", slug="acme-swe")

    response = client.get("/setup/callback", params={"code": "the-code", "state": state_of(action)})

    assert response.status_code == 500
    assert "could not be written" in response.text
    assert "generate a new private key" in response.text


def configured(gh: FakeGitHub, env_file: Path) -> Settings:
    return make_settings(
        gh,
        env_file,
        github_app_id=55,
        github_app_slug="acme-swe",
        github_app_private_key="-----BEGIN RSA PRIVATE KEY-----\\nx\\n-----END RSA PRIVATE KEY-----",
        github_webhook_secret="s",
    )


def test_configured_app_is_not_registered_again(
    gh: FakeGitHub, env_file: Path, store: SetupStateStore
) -> None:
    client = client_for(configured(gh, env_file), store)
    state = store.new_state()
    gh.add_manifest_conversion("the-code")

    page = client.get("/setup", params={"token": TOKEN})
    callback = client.get("/setup/callback", params={"code": "the-code", "state": state})

    assert "set up as GitHub App acme-swe (ID 55)" in page.text  # the token shows the details
    assert 'method="post"' not in page.text
    installed = client.get("/setup", params={"token": TOKEN, "setup_action": "install"})
    assert "The App is installed." in installed.text
    assert f"{gh.web_url}/apps/acme-swe/installations/new" in installed.text
    assert callback.status_code == 409
    assert gh.calls == []
    assert not env_file.exists()


@pytest.mark.parametrize("path", ["/", "/setup", "/setup?setup_action=install&installation_id=9"])
def test_a_visitor_learns_nothing_about_a_configured_deployment(
    gh: FakeGitHub, env_file: Path, store: SetupStateStore, path: str
) -> None:
    client = client_for(configured(gh, env_file), store)
    page = client.get(path)
    assert page.status_code == 200
    assert "This open-swe server is set up." in page.text
    for detail in ("acme-swe", "55", str(env_file), "installations/new"):
        assert detail not in page.text


def registered_client(gh: FakeGitHub, env_file: Path, store: SetupStateStore) -> TestClient:
    """A browser that went through the setup page and GitHub's callback: the App is written
    to .env, the server not restarted yet. https, as the public URL is: the cookie is Secure."""
    app = Starlette(routes=setup_routes(make_settings(gh, env_file), state_store=store))
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    action, _ = registration_form(client.get("/setup", params={"token": TOKEN}).text)
    gh.add_manifest_conversion("the-code", slug="acme-swe")
    response = client.get("/setup/callback", params={"code": "the-code", "state": state_of(action)})
    assert response.status_code == 303
    return client


def test_after_registration_a_visitor_sees_neither_the_app_nor_the_env_path(
    gh: FakeGitHub, env_file: Path, store: SetupStateStore
) -> None:
    registered_client(gh, env_file, store)
    stranger = client_for(make_settings(gh, env_file), store)
    for path in ("/", "/setup", "/setup?setup_action=install&installation_id=9"):
        page = stranger.get(path)
        assert "This open-swe server is set up." in page.text
        assert "acme-swe" not in page.text
        assert str(env_file) not in page.text
    forged = stranger.get("/setup", cookies={"open_swe_setup": "guess"})
    assert "acme-swe" not in forged.text


def test_the_operator_back_from_installing_is_told_to_restart(
    gh: FakeGitHub, env_file: Path, store: SetupStateStore
) -> None:
    operator = registered_client(gh, env_file, store)
    # GitHub sends the browser to the App's setup URL, without the token: the cookie has it.
    page = operator.get("/setup", params={"installation_id": "9", "setup_action": "install"})
    assert "The App is installed." in page.text
    assert "Restart open-swe" in page.text
    assert "acme-swe" in page.text
    assert str(env_file) in page.text
    cookie = next(c for c in operator.cookies.jar if c.name == "open_swe_setup")
    assert (cookie.path, cookie.secure) == ("/setup", True)
    assert cookie.has_nonstandard_attr("HttpOnly")


def test_the_setup_link_is_logged_when_not_configured(gh: FakeGitHub, env_file: Path) -> None:
    store = SetupStateStore()
    with capture_logs() as logs:
        setup_routes(make_settings(gh, env_file), state_store=store)
        setup_routes(configured(gh, env_file), state_store=store)

    assert [entry["setup_link"] for entry in logs] == [
        f"https://swe.example.com/setup?token={store.token}"
    ]
