"""Every InstallationClient operation against the fake GitHub."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.github.client import InstallationClient
from app.github.errors import GitHubError, NotFound
from app.github.transport import RETRIES
from app.github.types import LabelSpec, PullFile, ReactionTarget
from tests.fakes.github import FakeGitHub
from tests.github.conftest import REPO

LABELS = {
    "open-swe": LabelSpec("0e8a16", "Plan, then wait for approval"),
    "open-swe-auto": LabelSpec("1d76db", "Plan and implement"),
}


def make_remote(tmp_path: Path, *branches: str) -> Path:
    """A bare repository with a commit on `main` and on each of `branches`."""
    bare = tmp_path / "remote.git"
    work = tmp_path / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run(
        [*git, "-C", str(work), "commit", "-q", "--allow-empty", "-m", "init"], check=True
    )
    for branch in branches:
        subprocess.run(["git", "-C", str(work), "branch", branch], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", str(bare), "--all"], check=True)
    return bare


def test_get_repo(gh: FakeGitHub, client: InstallationClient) -> None:
    gh.repos[REPO].clone_url = "file:///tmp/remote.git"
    gh.repos[REPO].default_branch = "trunk"

    repo = client.get_repo(REPO)

    assert repo.full_name == REPO
    assert repo.default_branch == "trunk"
    assert repo.clone_url == "file:///tmp/remote.git"
    assert repo.private is True
    assert repo.html_url == f"{gh.web_url}/{REPO}"


@pytest.mark.parametrize(
    ("role", "can_write"),
    [
        ("admin", True),
        ("maintain", True),
        ("write", True),
        ("triage", False),
        ("read", False),
        ("none", False),
    ],
)
def test_permission_and_write_access(
    gh: FakeGitHub, client: InstallationClient, role: str, can_write: bool
) -> None:
    gh.set_permission(REPO, "alice", role)  # type: ignore[arg-type]

    assert client.permission(REPO, "alice") == role
    assert client.has_write(REPO, "alice") is can_write


def test_strangers_have_no_write_access(gh: FakeGitHub, client: InstallationClient) -> None:
    assert client.permission(REPO, "mallory") == "none"
    assert client.has_write(REPO, "mallory") is False


def test_has_write_is_false_when_github_says_not_found(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    gh.fail("GET", "/repos/*/collaborators/*/permission", 404)
    assert client.has_write(REPO, "ghost") is False


def test_ensure_labels_creates_only_the_missing_ones(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    gh.add_label(REPO, "Open-SWE", color="ffffff")

    assert client.ensure_labels(REPO, LABELS) == ["open-swe-auto"]
    assert client.ensure_labels(REPO, LABELS) == []

    labels = gh.repos[REPO].labels
    assert labels["open-swe"].color == "ffffff"  # left alone
    assert (labels["open-swe-auto"].color, labels["open-swe-auto"].description) == (
        "1d76db",
        "Plan and implement",
    )
    assert len(gh.calls_matching("POST", f"/repos/{REPO}/labels")) == 1


def test_ensure_labels_tolerates_a_concurrent_creation(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    gh.fail("GET", f"/repos/{REPO}/labels", 200, body=[])  # a stale view: no labels yet
    gh.add_label(REPO, "open-swe")

    assert client.ensure_labels(REPO, LABELS) == ["open-swe-auto"]
    assert [c.status for c in gh.calls_matching("POST", f"/repos/{REPO}/labels")] == [422, 201]


@pytest.mark.parametrize("kind", ["issue", "issue_comment", "review_comment"])
def test_reaction_is_created_once(gh: FakeGitHub, client: InstallationClient, kind: str) -> None:
    pull = gh.add_pull(REPO, head="feature")
    target_id = {
        "issue": pull.issue.number,
        "issue_comment": gh.add_comment(REPO, pull.issue.number, "@bot do it").id,
        "review_comment": gh.add_review_comment(REPO, pull.issue.number, "fix this").id,
    }[kind]
    target = ReactionTarget(kind, target_id)  # type: ignore[arg-type]

    assert client.add_reaction(REPO, target) is True
    assert client.add_reaction(REPO, target) is False

    (reaction,) = gh.reactions_on(REPO, kind, target_id)
    assert (reaction.content, reaction.user) == ("eyes", gh.bot_login)
    assert [c.status for c in gh.calls_matching("POST", "*/reactions")] == [201, 200]


def test_reaction_on_a_missing_comment_is_not_found(client: InstallationClient) -> None:
    with pytest.raises(NotFound):
        client.add_reaction(REPO, ReactionTarget("issue_comment", 999999), "rocket")


def test_get_issue(gh: FakeGitHub, client: InstallationClient) -> None:
    number = gh.add_issue(
        REPO, title="Crash", body="Steps", user="alice", labels=["bug", "open-swe"]
    ).number

    issue = client.get_issue(REPO, number)

    assert (issue.number, issue.title, issue.body, issue.author) == (
        number,
        "Crash",
        "Steps",
        "alice",
    )
    assert issue.labels == ("bug", "open-swe")
    assert issue.is_pull_request is False
    assert issue.state == "open"
    assert issue.html_url == f"{gh.web_url}/{REPO}/issues/{number}"


def test_get_issue_for_a_pull_request_and_an_empty_body(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    number = gh.add_pull(REPO, head="x", body=None).issue.number
    issue = client.get_issue(REPO, number)
    assert issue.is_pull_request is True
    assert issue.body == ""


def test_comments_list_create_update(gh: FakeGitHub, client: InstallationClient) -> None:
    number = gh.add_issue(REPO).number
    gh.add_comment(REPO, number, "first", user="alice")
    gh.add_comment(REPO, number, "bot says", user="other-app[bot]")

    created = client.create_comment(REPO, number, "Working on it")
    updated = client.update_comment(REPO, created.id, "Done")
    comments = client.list_comments(REPO, number)

    assert [(c.author, c.author_is_bot, c.body) for c in comments] == [
        ("alice", False, "first"),
        ("other-app[bot]", True, "bot says"),
        (gh.bot_login, True, "Done"),
    ]
    assert created.author_is_bot is True
    assert updated.id == created.id
    assert updated.body == "Done"
    assert gh.comments[created.id].body == "Done"
    assert created.created_at.tzinfo is not None
    assert abs((created.created_at - datetime.now(UTC)).total_seconds()) < 60
    assert created.html_url.endswith(f"#issuecomment-{created.id}")


MARKER = "<!-- open-swe:status run=r1 -->"
COMMENTS = f"/repos/{REPO}/issues/*/comments"


def test_a_marked_comment_that_landed_despite_a_server_error_is_not_posted_again(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    number = gh.add_issue(REPO).number
    gh.fail("POST", COMMENTS, 502, applied=True)  # GitHub stored it, the answer was lost

    created = client.create_comment(REPO, number, f"{MARKER}\nWorking", marker=MARKER)

    [stored] = gh.comments.values()
    assert (created.id, created.body) == (stored.id, f"{MARKER}\nWorking")
    assert [c.status for c in gh.calls_matching("POST", COMMENTS)] == [502]
    assert [c.status for c in gh.calls_matching("GET", COMMENTS)] == [200]


def test_a_marked_comment_is_retried_until_it_is_posted_once(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    number = gh.add_issue(REPO).number
    gh.add_comment(REPO, number, f"{MARKER} pasted by a person", user="mallory")
    gh.fail("POST", COMMENTS, 502, times=2)

    created = client.create_comment(REPO, number, f"{MARKER}\nWorking", marker=MARKER)

    assert created.author == gh.bot_login
    assert [c.body for c in gh.comments.values() if c.user == gh.bot_login] == [created.body]
    assert [c.status for c in gh.calls_matching("POST", COMMENTS)] == [502, 502, 201]


def test_a_marked_comment_that_keeps_failing_gives_up(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    number = gh.add_issue(REPO).number
    gh.fail("POST", COMMENTS, 500, times=RETRIES + 1)

    with pytest.raises(GitHubError, match="500"):
        client.create_comment(REPO, number, MARKER, marker=MARKER)
    assert len(gh.calls_matching("POST", COMMENTS)) == RETRIES + 1
    assert gh.comments == {}


def test_a_marked_comment_is_not_posted_blindly_when_the_lookup_fails(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    number = gh.add_issue(REPO).number
    gh.fail("POST", COMMENTS, 502, applied=True)
    gh.fail("GET", COMMENTS, 502, times=RETRIES + 1)

    with pytest.raises(GitHubError, match="kept failing"):
        client.create_comment(REPO, number, MARKER, marker=MARKER)
    assert len(gh.calls_matching("POST", COMMENTS)) == 1
    assert len(gh.comments) == 1


def test_a_refused_marked_comment_is_not_retried(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    number = gh.add_issue(REPO).number
    gh.fail("POST", COMMENTS, 422, message="Validation Failed")

    with pytest.raises(GitHubError, match="422"):
        client.create_comment(REPO, number, MARKER, marker=MARKER)
    assert len(gh.calls_matching("POST", COMMENTS)) == 1
    assert gh.calls_matching("GET", COMMENTS) == []


def test_a_marker_must_be_in_the_body(client: InstallationClient) -> None:
    with pytest.raises(ValueError, match="marker"):
        client.create_comment(REPO, 1, "no marker here", marker=MARKER)


def test_creations_github_deduplicates_are_retried_after_a_lost_answer(
    gh: FakeGitHub, client: InstallationClient, tmp_path: Path
) -> None:
    gh.repos[REPO].clone_url = make_remote(tmp_path, "open-swe/issue-3").as_uri()
    for path in ("/pulls", "/labels", "/issues/*/reactions", "/pulls/*/requested_reviewers"):
        gh.fail("POST", f"/repos/{REPO}{path}", 502, applied=True)

    pull = client.create_draft_pull(
        REPO, title="Fix it", body="Fixes #3", head="open-swe/issue-3", base="main"
    )
    client.ensure_labels(REPO, {"open-swe": LABELS["open-swe"]})
    client.add_reaction(REPO, ReactionTarget("issue", pull.number))
    client.request_review(REPO, pull.number, ["bob"])

    assert [p.issue.number for p in gh.pulls.values()] == [pull.number]
    assert list(gh.repos[REPO].labels) == ["open-swe"]
    assert len(gh.reactions_on(REPO, "issue", pull.number)) == 1
    assert gh.pulls[(REPO, pull.number)].requested_reviewers == ["bob"]
    assert [c.status for c in gh.calls_matching("POST", f"/repos/{REPO}/pulls")] == [502, 422]


def test_update_of_a_missing_comment_is_not_found(client: InstallationClient) -> None:
    with pytest.raises(NotFound, match="update comment 4"):
        client.update_comment(REPO, 4, "x")


def test_get_pull_and_fork_detection(gh: FakeGitHub, client: InstallationClient) -> None:
    own = gh.add_pull(REPO, head="open-swe/issue-1", user="alice", draft=True).issue.number
    fork = gh.add_pull(
        REPO, head="patch-1", head_repo="mallory/widgets", user="mallory"
    ).issue.number

    pull = client.get_pull(REPO, own)
    assert (pull.head_ref, pull.head_repo, pull.base_ref) == ("open-swe/issue-1", REPO, "main")
    assert (pull.draft, pull.state, pull.author, pull.base_repo) == (True, "open", "alice", REPO)
    assert pull.html_url == f"{gh.web_url}/{REPO}/pull/{own}"
    assert pull.is_fork is False

    forked = client.get_pull(REPO, fork)
    assert forked.head_repo == "mallory/widgets"
    assert forked.is_fork is True


def test_find_pull_matches_open_pulls_of_this_repository_only(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    gh.add_pull(REPO, head="open-swe/issue-1", state="closed")
    gh.add_pull(REPO, head="open-swe/issue-1", head_repo="mallory/widgets")
    assert client.find_pull(REPO, "open-swe/issue-1") is None

    wanted = gh.add_pull(REPO, head="open-swe/issue-1").issue.number
    found = client.find_pull(REPO, "open-swe/issue-1")
    assert found is not None
    assert found.number == wanted
    (call, *_) = gh.calls_matching("GET", f"/repos/{REPO}/pulls")
    assert call.query["head"] == "acme:open-swe/issue-1"
    assert call.query["state"] == "open"


def test_create_draft_pull_is_idempotent(
    gh: FakeGitHub, client: InstallationClient, tmp_path: Path
) -> None:
    gh.repos[REPO].clone_url = make_remote(tmp_path, "open-swe/issue-3").as_uri()

    first = client.create_draft_pull(
        REPO, title="Fix it", body="Fixes #3", head="open-swe/issue-3", base="main"
    )
    again = client.create_draft_pull(
        REPO, title="Fix it", body="Fixes #3", head="open-swe/issue-3", base="main"
    )

    assert first.draft is True
    assert (first.title, first.body, first.author) == ("Fix it", "Fixes #3", gh.bot_login)
    assert again.number == first.number
    assert len(gh.pulls) == 1
    assert [c.status for c in gh.calls_matching("POST", f"/repos/{REPO}/pulls")] == [201, 422]


def test_create_draft_pull_from_a_branch_that_was_not_pushed(
    gh: FakeGitHub, client: InstallationClient, tmp_path: Path
) -> None:
    gh.repos[REPO].clone_url = make_remote(tmp_path).as_uri()

    with pytest.raises(GitHubError, match="422"):
        client.create_draft_pull(REPO, title="t", body="b", head="nowhere", base="main")


def test_update_pull(gh: FakeGitHub, client: InstallationClient) -> None:
    number = gh.add_pull(REPO, head="b", title="Old", body="old").issue.number

    updated = client.update_pull(REPO, number, body="new body")

    assert (updated.title, updated.body) == ("Old", "new body")
    (call,) = gh.calls_matching("PATCH", f"/repos/{REPO}/pulls/{number}")
    assert call.json == {"body": "new body"}


def test_request_review_skips_the_author(gh: FakeGitHub, client: InstallationClient) -> None:
    number = gh.add_pull(REPO, head="b", user="alice").issue.number

    client.request_review(REPO, number, ["bob"])
    client.request_review(REPO, number, ["alice"])  # GitHub answers 422: ignored
    client.request_review(REPO, number, [])

    assert gh.pulls[(REPO, number)].requested_reviewers == ["bob"]
    assert len(gh.calls_matching("POST", "*/requested_reviewers")) == 2


def test_request_review_reports_other_failures(gh: FakeGitHub, client: InstallationClient) -> None:
    number = gh.add_pull(REPO, head="b").issue.number
    gh.fail(
        "POST",
        "*/requested_reviewers",
        422,
        message="Reviews may only be requested from collaborators",
    )
    with pytest.raises(GitHubError, match="collaborators"):
        client.request_review(REPO, number, ["stranger"])


def test_review_comments_and_replies(gh: FakeGitHub, client: InstallationClient) -> None:
    number = gh.add_pull(REPO, head="b").issue.number
    root = gh.add_review_comment(REPO, number, "rename this", user="alice", path="a.py", line=3)

    reply = client.reply_to_review_comment(REPO, number, root.id, "Renamed")
    comments = client.list_review_comments(REPO, number)

    assert (reply.author, reply.author_is_bot, reply.body) == (gh.bot_login, True, "Renamed")
    assert [(c.id, c.author, c.path, c.line, c.in_reply_to_id) for c in comments] == [
        (root.id, "alice", "a.py", 3, None),
        (reply.id, gh.bot_login, "a.py", 3, root.id),
    ]
    assert comments[0].author_is_bot is False


def test_reply_to_a_comment_of_another_pull_is_not_found(
    gh: FakeGitHub, client: InstallationClient
) -> None:
    one = gh.add_pull(REPO, head="a").issue.number
    two = gh.add_pull(REPO, head="b").issue.number
    comment = gh.add_review_comment(REPO, one, "x")
    with pytest.raises(NotFound):
        client.reply_to_review_comment(REPO, two, comment.id, "y")


def test_pull_files(gh: FakeGitHub, client: InstallationClient) -> None:
    files = [("app.py", "modified", 3, 1), ("new.py", "added", 10, 0)]
    number = gh.add_pull(REPO, head="b", files=files).issue.number

    assert client.pull_files(REPO, number) == [PullFile(*f) for f in files]


def test_from_token_uses_the_given_token(gh: FakeGitHub) -> None:
    grant = gh.issue_token(7, ["widgets"])
    client = InstallationClient.from_token(grant.token, gh.url, throttle=False)

    assert client.get_repo(REPO).full_name == REPO
    assert client.token == grant.token
    assert gh.calls[-1].token == grant.token
    assert grant.token not in repr(client)
