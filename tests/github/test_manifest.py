from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app.config import Settings
from app.github.errors import GitHubError
from app.github.manifest import (
    ManifestError,
    build_manifest,
    convert_manifest_code,
    install_url,
    load_manifest,
    manifest_form_url,
    write_env_credentials,
)
from app.github.types import AppCredentials
from tests.fakes.github import FakeGitHub

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAB\n-----END RSA PRIVATE KEY-----\n"
CREDENTIALS = AppCredentials(
    id=321,
    slug="my-open-swe",
    pem=PEM,
    webhook_secret="whsec",
    client_id="Iv1.abc",
    client_secret="csecret",
    html_url="https://github.com/apps/my-open-swe",
)


def test_the_shipped_manifest_asks_for_what_the_bot_needs() -> None:
    manifest = load_manifest()

    assert manifest["public"] is False
    assert manifest["default_permissions"] == {
        "contents": "write",
        "issues": "write",
        "pull_requests": "write",
        "metadata": "read",
        "checks": "read",
        "actions": "read",
    }
    assert set(manifest["default_events"]) == {
        "issues",
        "issue_comment",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "check_suite",
        "check_run",
        "workflow_run",
    }


def test_load_manifest_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("- just a list\n")
    with pytest.raises(ManifestError, match="needs at least a `name`"):
        load_manifest(bad)


def test_build_manifest_fills_in_every_url() -> None:
    template = load_manifest()
    manifest = build_manifest(template, "https://swe.example.com/", name=" acme-swe ")

    assert manifest["name"] == "acme-swe"
    assert manifest["url"] == "https://swe.example.com"
    assert manifest["hook_attributes"] == {
        "url": "https://swe.example.com/webhooks/github",
        "active": True,
    }
    assert manifest["redirect_url"] == "https://swe.example.com/setup/callback"
    assert manifest["setup_url"] == "https://swe.example.com/setup"
    assert manifest["callback_urls"] == ["https://swe.example.com/auth/callback"]  # sign-in
    assert "url" not in template["hook_attributes"]  # the template is not modified


@pytest.mark.parametrize("name", ["", "x" * 35])
def test_build_manifest_refuses_names_github_would_refuse(name: str) -> None:
    with pytest.raises(ManifestError, match="1 to 34 characters"):
        build_manifest({"name": "n"}, "https://x.example", name=name)


def test_build_manifest_needs_an_http_url() -> None:
    with pytest.raises(ManifestError, match="http"):
        build_manifest({"name": "n"}, "swe.example.com")


def test_form_url_for_a_personal_account_and_an_organization() -> None:
    assert (
        manifest_form_url("https://github.com/", "s t")
        == "https://github.com/settings/apps/new?state=s+t"
    )
    assert (
        manifest_form_url("https://ghe.example", "abc", org="acme-inc")
        == "https://ghe.example/organizations/acme-inc/settings/apps/new?state=abc"
    )
    with pytest.raises(ManifestError, match="not a GitHub organization name"):
        manifest_form_url("https://github.com", "abc", org="../evil")


def test_convert_manifest_code_against_the_fake(gh: FakeGitHub) -> None:
    gh.add_manifest_conversion("code123", app_id=321, slug="my-open-swe", pem=PEM)

    credentials = convert_manifest_code(gh.url, "code123")

    assert (credentials.id, credentials.slug, credentials.pem) == (321, "my-open-swe", PEM)
    assert credentials.webhook_secret == "whsec-from-manifest"
    assert install_url(credentials) == f"{gh.web_url}/apps/my-open-swe/installations/new"
    (call,) = gh.calls_matching("POST", "/app-manifests/*/conversions")
    assert call.auth == "none"
    assert PEM not in repr(credentials)


def test_a_used_or_unknown_code_asks_to_start_again(gh: FakeGitHub) -> None:
    gh.add_manifest_conversion("once")
    convert_manifest_code(gh.url, "once")

    with pytest.raises(GitHubError, match="start the setup again"):
        convert_manifest_code(gh.url, "once")


def test_a_malformed_code_is_not_sent(gh: FakeGitHub) -> None:
    with pytest.raises(GitHubError, match="malformed"):
        convert_manifest_code(gh.url, "../../app")
    assert gh.calls == []


def test_conversion_server_error_is_reported(gh: FakeGitHub) -> None:
    gh.fail("POST", "/app-manifests/*/conversions", 500)
    with pytest.raises(GitHubError, match=r"refused to finish the setup \(500\)"):
        convert_manifest_code(gh.url, "abc")


def test_an_answer_of_the_wrong_shape_is_reported_not_raised(gh: FakeGitHub) -> None:
    gh.add_manifest_conversion("odd")["id"] = "not-a-number"
    with pytest.raises(GitHubError, match=r"unexpected answer.*start the setup again"):
        convert_manifest_code(gh.url, "odd")


def test_env_file_is_created_private_and_loads_back(tmp_path: Path) -> None:
    env = tmp_path / ".env"

    write_env_credentials(env, CREDENTIALS)

    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert len(env.read_text().splitlines()) == 6  # the key is on one line
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    assert settings.github_app_id == 321
    assert settings.github_app_slug == "my-open-swe"
    assert settings.private_key_pem is not None
    assert settings.private_key_pem.get_secret_value() == PEM.strip()
    assert settings.github_webhook_secret is not None
    assert settings.github_webhook_secret.get_secret_value() == "whsec"
    assert settings.app_configured
    assert settings.github_app_client_id == "Iv1.abc"
    assert settings.github_app_client_secret is not None
    assert settings.github_app_client_secret.get_secret_value() == "csecret"


def test_env_file_merge_keeps_other_lines_and_replaces_ours(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# my settings\nANTHROPIC_API_KEY=sk-keep\nexport GITHUB_APP_ID=1\n"
        "GITHUB_APP_ID=2\nOPEN_SWE_PUBLIC_URL=https://x.example\n"
    )
    env.chmod(0o644)

    write_env_credentials(env, CREDENTIALS)

    lines = env.read_text().splitlines()
    assert lines[:4] == [
        "# my settings",
        "ANTHROPIC_API_KEY=sk-keep",
        "GITHUB_APP_ID='321'",
        "OPEN_SWE_PUBLIC_URL=https://x.example",
    ]
    assert sum(line.startswith("GITHUB_APP_ID") for line in lines) == 1
    assert "GITHUB_APP_CLIENT_SECRET='csecret'" in lines
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # no temporary file left


def test_env_file_is_never_readable_by_others_even_briefly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_modes: list[int] = []
    real_replace = os.replace

    def spying_replace(src: str, dst: Path) -> None:
        seen_modes.append(stat.S_IMODE(Path(src).stat().st_mode))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spying_replace)
    write_env_credentials(tmp_path / ".env", CREDENTIALS)
    assert seen_modes == [0o600]  # the secrets were written into an owner-only file


def test_the_oauth_client_names_setup_used_to_write_are_replaced(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("GITHUB_CLIENT_ID=Iv1.old\nKEEP=1\nGITHUB_CLIENT_SECRET=old\n")

    write_env_credentials(env, CREDENTIALS)

    text = env.read_text()
    assert "GITHUB_CLIENT_" not in text.replace("GITHUB_APP_CLIENT_", "")
    assert "KEEP=1" in text.splitlines()
    assert "GITHUB_APP_CLIENT_ID='Iv1.abc'" in text.splitlines()
