"""Installation events: installations and repos recorded; trigger labels created idempotently."""

from __future__ import annotations

from app.webhooks.labels import TRIGGER_LABELS
from tests.webhooks.conftest import INSTALLATION, OTHER_REPO, REPO, Harness, payload


def label_posts(harness: Harness, repo: str) -> list[str]:
    return [c.json["name"] for c in harness.gh.calls_matching("POST", f"/repos/{repo}/labels")]


async def test_installing_records_the_installation_and_creates_the_labels(
    harness: Harness,
) -> None:
    response = await harness.deliver("installation", payload("installation.created"), delivery="i1")
    assert response.status_code == 202
    installation = await harness.store.installation(INSTALLATION)
    assert installation is not None
    assert (installation.account, installation.account_type) == ("Codertocat", "User")
    assert installation.active
    assert await harness.store.installation_repos(INSTALLATION) == [REPO]
    assert sorted(label_posts(harness, REPO)) == sorted(TRIGGER_LABELS)
    repo_labels = harness.gh.repos[REPO].labels
    for name, spec in TRIGGER_LABELS.items():
        assert (repo_labels[name].color, repo_labels[name].description) == (
            spec.color,
            spec.description,
        )
    delivery = await harness.store.delivery("i1")
    assert delivery is not None
    assert delivery.outcome == "recorded"


async def test_labels_that_exist_are_not_created_again(harness: Harness) -> None:
    harness.gh.add_label(REPO, "Open-SWE")  # same name, other case
    harness.gh.add_label(REPO, "open-swe-auto")
    await harness.deliver("installation", payload("installation.created"))
    assert label_posts(harness, REPO) == []
    # A second installation event (a redelivery with a new id, or a reinstall): still none.
    await harness.deliver("installation", payload("installation.created"))
    assert label_posts(harness, REPO) == []


async def test_a_second_install_event_creates_nothing_new(harness: Harness) -> None:
    await harness.deliver("installation", payload("installation.created"))
    await harness.deliver("installation", payload("installation.created"))
    assert len(label_posts(harness, REPO)) == len(TRIGGER_LABELS)
    assert await harness.store.installation_repos(INSTALLATION) == [REPO]


async def test_adding_repositories_records_them_and_labels_them(harness: Harness) -> None:
    # The installation itself was made while the server was down: learnt from this event.
    await harness.deliver("installation_repositories", payload("installation_repositories.added"))
    assert await harness.store.installation_repos(INSTALLATION) == [OTHER_REPO]
    installation = await harness.store.installation(INSTALLATION)
    assert installation is not None
    assert installation.account == "Codertocat"
    assert sorted(label_posts(harness, OTHER_REPO)) == sorted(TRIGGER_LABELS)


async def test_removing_repositories_forgets_them(harness: Harness) -> None:
    await harness.deliver("installation", payload("installation.created"))
    await harness.deliver("installation_repositories", payload("installation_repositories.added"))
    removed = payload("installation_repositories.added")
    removed["action"] = "removed"
    removed["repositories_removed"], removed["repositories_added"] = (
        removed["repositories_added"],
        [],
    )
    await harness.deliver("installation_repositories", removed)
    assert await harness.store.installation_repos(INSTALLATION) == [REPO]


async def test_uninstalling_marks_the_installation_deleted(harness: Harness) -> None:
    data = payload("installation.deleted")
    gone = data["installation"]["id"]
    await harness.store.save_installation(gone, account="octocat", account_type="User")
    await harness.store.add_installation_repos(gone, [(1296269, "octocat/Hello-World")])
    await harness.deliver("installation", data)
    installation = await harness.store.installation(gone)
    assert installation is not None
    assert installation.deleted_at is not None
    assert await harness.store.installation_repos(gone) == []
    assert harness.gh.calls_matching("POST", "*") == []  # nothing to call: we are uninstalled


async def test_suspend_and_unsuspend(harness: Harness) -> None:
    suspended = payload("installation.created") | {"action": "suspend"}
    await harness.deliver("installation", suspended)
    installation = await harness.store.installation(INSTALLATION)
    assert installation is not None
    assert installation.suspended_at is not None
    await harness.deliver("installation", suspended | {"action": "unsuspend"})
    installation = await harness.store.installation(INSTALLATION)
    assert installation is not None
    assert installation.active


async def test_one_repository_refusing_labels_does_not_stop_the_others(
    harness: Harness,
) -> None:
    data = payload("installation.created")
    data["repositories"].append({"id": 186853007, "full_name": OTHER_REPO, "name": "Space"})
    harness.gh.fail(
        "GET", f"/repos/{REPO}/labels", 403, times=10, message="Resource not accessible"
    )
    await harness.deliver("installation", data, delivery="partial")
    assert sorted(label_posts(harness, OTHER_REPO)) == sorted(TRIGGER_LABELS)
    delivery = await harness.store.delivery("partial")
    assert delivery is not None
    assert delivery.outcome == "recorded"
    assert f"labels failed in {REPO}" in (delivery.detail or "")
