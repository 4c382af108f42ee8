"""The network policy on Daytona: what the creation request carries, and when the sandbox's
network is opened and restricted again (the double records the network at each exec and git
operation; it cannot enforce it, Daytona does)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.daytona import FakeDaytona, bare_repo
from tests.sandbox.test_daytona import AUTHOR, LABELS, Sleeps, make_provider

ALLOWED = "203.0.113.0/24,198.51.100.7/32"


@pytest.fixture(scope="module")
def shared_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeDaytona]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        patch.chdir(tmp_path_factory.mktemp("cwd"))  # the SDK reads .env files from the cwd
        with FakeDaytona(tmp_path_factory.mktemp("daytona")) as double:
            yield double


@pytest.fixture
def fake(shared_fake: FakeDaytona) -> FakeDaytona:
    shared_fake.reset()
    return shared_fake


def network_updates(fake: FakeDaytona) -> list[object]:
    return [call.body for call in fake.calls("POST", r"/network-settings$")]


def activity(fake: FakeDaytona, sandbox_id: str) -> list[tuple[str, str, bool]]:
    return [(kind, what, open_) for kind, what, open_ in fake.sandboxes[sandbox_id].activity]


def test_sandboxes_are_created_without_network(fake: FakeDaytona) -> None:
    with make_provider(fake, Sleeps()) as provider:
        provider.acquire(LABELS)
        assert "network: none, opened while git or the setup script runs" in provider.isolation
    [create] = fake.calls("POST", "^/api/sandbox$")
    assert create.body["networkBlockAll"] is True
    assert "networkAllowList" not in create.body


def test_a_deployments_allow_list_is_what_a_restricted_sandbox_reaches(fake: FakeDaytona) -> None:
    with make_provider(fake, Sleeps(), OPEN_SWE_DAYTONA_NETWORK_ALLOW_LIST=ALLOWED) as provider:
        provider.acquire(LABELS)
    [create] = fake.calls("POST", "^/api/sandbox$")
    assert create.body["networkAllowList"] == ALLOWED
    assert "networkBlockAll" not in create.body


def test_setup_opens_the_network_for_the_setup_script_alone(fake: FakeDaytona) -> None:
    with make_provider(fake, Sleeps(), OPEN_SWE_DAYTONA_NETWORK_ALLOW_LIST=ALLOWED) as provider:
        sandbox = provider.acquire(LABELS)
        assert sandbox.network_policy == "none"
        assert sandbox.set_network_policy("setup") == "setup"
        assert network_updates(fake) == []  # restricted already
        assert sandbox.run("echo setup-script", networked=True).ok
        assert sandbox.run("echo agent-command").ok
        assert sandbox.run("echo agent-asks-for-nothing-more", networked=False).ok
    markers = ("setup-script", "agent-command", "agent-asks-for-nothing-more")
    ran = [
        (marker, open_)
        for _, what, open_ in activity(fake, sandbox.id)
        for marker in markers
        if f"echo {marker}" in what
    ]
    assert ran == [(markers[0], True), (markers[1], False), (markers[2], False)]
    # opened for it, then back to the deployment's allow list
    assert network_updates(fake) == [
        {"networkBlockAll": False},
        {"networkAllowList": ALLOWED},
    ]


def test_always_opens_once_and_stays_open(fake: FakeDaytona) -> None:
    with make_provider(fake, Sleeps()) as provider:
        sandbox = provider.acquire(LABELS)
        assert sandbox.set_network_policy("always") == "always"
        assert sandbox.run("echo any-command").ok
        assert sandbox.run("echo setup", networked=True).ok
    assert network_updates(fake) == [{"networkBlockAll": False}]
    assert all(open_ for kind, _, open_ in activity(fake, sandbox.id) if kind == "exec")
    assert fake.sandboxes[sandbox.id].network_open


def test_the_ceiling_wins_over_the_repository(fake: FakeDaytona) -> None:
    with make_provider(fake, Sleeps(), OPEN_SWE_SANDBOX_NETWORK="none") as provider:
        sandbox = provider.acquire(LABELS)
        assert sandbox.set_network_policy("always") == "none"
        assert sandbox.run("echo setup", networked=True).ok
        assert "ceiling none" in provider.isolation
    assert network_updates(fake) == []
    assert not any(open_ for kind, _, open_ in activity(fake, sandbox.id) if kind == "exec")


def test_git_opens_the_network_for_its_operation_only(fake: FakeDaytona, tmp_path: Path) -> None:
    remote = bare_repo(tmp_path / "remote", {"README.md": "hello\n"})
    with make_provider(fake, Sleeps()) as provider:
        sandbox = provider.acquire(LABELS)
        sandbox.clone(remote, "repo")
        assert sandbox.run("echo change >> README.md && git checkout -q -b work", cwd="repo").ok
        assert sandbox.commit("repo", "change", author=AUTHOR)
        sandbox.push("repo", "work")
    git = [(what, open_) for kind, what, open_ in activity(fake, sandbox.id) if kind == "git"]
    assert ("clone", True) in git
    assert ("push", True) in git
    assert ("commit", False) in git  # commit needs no network
    assert not fake.sandboxes[sandbox.id].network_open  # restricted again
    updates = network_updates(fake)
    assert updates == [{"networkBlockAll": False}, {"networkBlockAll": True}] * 2


def test_a_sandbox_found_again_keeps_what_its_network_says(fake: FakeDaytona) -> None:
    with make_provider(fake, Sleeps()) as provider:
        provider.acquire(LABELS).set_network_policy("always")
    with make_provider(fake, Sleeps()) as provider:
        assert provider.acquire(LABELS).network_policy == "always"
    fake.reset()
    with make_provider(fake, Sleeps()) as provider:
        provider.acquire(LABELS)
    with make_provider(fake, Sleeps()) as provider:
        assert provider.acquire(LABELS).network_policy == "none"
