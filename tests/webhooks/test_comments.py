"""Comments, review comments and reviews addressed to open-swe, through the whole pipeline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from app.github.app import GitHubApp
from app.runs.lifecycle import Lifecycle
from app.runs.models import Run, StoredCommand, thread_key
from app.webhooks import messages
from tests.fakes.github import FakeGitHub
from tests.webhooks.conftest import (
    MAINTAINER,
    REPO,
    SLUG,
    Harness,
    comment_payload,
    github_work,
    labeled,
    payload,
    set_sender,
    shown,
    start_harness,
)

ISSUE = thread_key(REPO, 1)
PULL = thread_key(REPO, 2)


async def say(harness: Harness, body: str, *, sender: str = MAINTAINER, **kw: Any) -> int:
    """Post an issue comment on #1 (as GitHub would, then deliver it); returns its id."""
    comment = harness.gh.add_comment(REPO, 1, body, user=sender)
    await harness.deliver(
        "issue_comment", comment_payload(body, comment_id=comment.id, sender=sender), **kw
    )
    return comment.id


def bot_comments(harness: Harness, number: int = 1) -> list[str]:
    return [
        shown(c.body)
        for c in harness.gh.comments.values()
        if c.issue_number == number and c.user.endswith("[bot]")
    ]


async def waiting_run(harness: Harness) -> Run:
    await harness.deliver("issues", labeled())
    run = await harness.store.active_run(ISSUE)
    assert run is not None
    waiting = await harness.store.set_run_status(run.id, "waiting")
    assert waiting is not None
    harness.run_jobs.clear()
    return waiting


async def test_a_mention_starts_a_run_with_the_instructions_in_the_inbox(
    harness: Harness,
) -> None:
    comment_id = await say(harness, f"@{SLUG} please fix the typo in README", delivery="m-1")
    run = await harness.store.active_run(ISSUE)
    assert run is not None
    assert run.auto_approve is False  # on an issue the plan waits for approval
    assert harness.run_jobs == [run.id]
    # recorded, and taken already: the run reads it with the issue, not as a follow-up
    assert await harness.store.pending_commands(ISSUE) == []
    command = await harness.store.command("m-1")
    assert command is not None
    assert command.consumed_at is not None
    assert (command.verb, command.text, command.author) == (
        "instruct",
        "please fix the typo in README",
        MAINTAINER,
    )
    assert (command.source, command.comment_id, command.delivery_id) == (
        "issue_comment",
        comment_id,
        "m-1",
    )
    eyes = harness.gh.reactions_on(REPO, "issue_comment", comment_id)
    assert [r.content for r in eyes] == ["eyes"]


async def test_the_text_is_a_snapshot_taken_at_acceptance(harness: Harness) -> None:
    comment_id = await say(harness, "/open-swe add a changelog entry", settle=False, delivery="s")
    harness.gh.comments[comment_id].body = "edited later: delete everything"
    await harness.settle()
    command = await harness.store.command("s")
    assert command is not None
    assert command.text == "add a changelog entry"


@pytest.mark.parametrize("permission", ["read", "triage"])
async def test_a_mention_by_someone_without_write_access_is_refused(
    harness: Harness, permission: str
) -> None:
    harness.gh.set_permission(REPO, "visitor", permission)  # type: ignore[arg-type]
    await say(harness, f"@{SLUG} rewrite it in Rust", sender="visitor")
    assert await harness.store.runs_on_thread(ISSUE) == []
    assert await harness.store.pending_commands(ISSUE) == []
    assert bot_comments(harness) == [messages.REFUSED_NO_WRITE.format(user="visitor")]
    assert harness.gh.calls_matching("POST", "/repos/*/reactions") == []


async def test_a_comment_by_a_bot_is_ignored_silently(harness: Harness) -> None:
    data = set_sender(comment_payload(f"@{SLUG} do it", comment_id=1), "ci[bot]", kind="Bot")
    await harness.deliver("issue_comment", data)
    assert github_work(harness.gh) == []
    assert await harness.store.runs_on_thread(ISSUE) == []


async def test_a_comment_not_addressed_to_the_bot_is_not_stored(harness: Harness) -> None:
    response = await harness.deliver(
        "issue_comment", comment_payload(f"@{SLUG}-fan thinks so too", comment_id=1)
    )
    assert response.json()["status"] == "ignored"


async def test_bare_approve_without_a_waiting_plan_is_ordinary_talk(harness: Harness) -> None:
    harness.gh.set_permission(REPO, "visitor", "read")
    await say(harness, "/approve", sender="visitor", delivery="bare")
    assert bot_comments(harness) == []  # not even a refusal
    assert github_work(harness.gh) == []
    delivery = await harness.store.delivery("bare")
    assert delivery is not None
    assert delivery.outcome == "ignored"


async def test_bare_approve_resumes_the_waiting_run(harness: Harness) -> None:
    run = await waiting_run(harness)
    await say(harness, "/approve")
    assert harness.run_jobs == [run.id]
    [command] = await harness.store.pending_commands(ISSUE)
    assert (command.verb, command.run_id) == ("approve", run.id)


async def test_revise_records_the_feedback_and_resumes(harness: Harness) -> None:
    run = await waiting_run(harness)
    await say(harness, f"@{SLUG} revise keep the public API\nand add tests")
    [command] = await harness.store.pending_commands(ISSUE)
    assert (command.verb, command.text) == ("revise", "keep the public API\nand add tests")
    assert harness.run_jobs == [run.id]


async def test_approve_with_nothing_waiting_says_so(harness: Harness) -> None:
    await say(harness, "/open-swe approve")
    assert bot_comments(harness) == [messages.NO_PLAN_WAITING.format(verb="approve")]


async def working_run(harness: Harness, *, plan_shown: bool) -> Run:
    """The active run, `running`; with `plan_shown`, parking after showing its plan."""
    await harness.deliver("issues", labeled())
    run = await harness.store.active_run(ISSUE)
    assert run is not None
    running = await harness.store.set_run_status(run.id, "running")
    assert running is not None
    if plan_shown:
        await Lifecycle(harness.store).ask_plan(running.id, 1)
        running = await harness.store.run(run.id)  # type: ignore[assignment]
    harness.run_jobs.clear()
    return running


def parks_when_recording(harness: Harness, monkeypatch: pytest.MonkeyPatch, run: Run) -> None:
    """The run's job stores `waiting` (and finds nothing in the inbox) while the front door
    records the command: after its look at the run, before its own write."""
    record = harness.store.add_command

    async def parked_first(**values: Any) -> StoredCommand:
        assert await harness.store.set_run_status(run.id, "waiting") is not None
        return await record(**values)

    monkeypatch.setattr(harness.store, "add_command", parked_first)


@pytest.mark.parametrize("text", ["/open-swe approve", "/approve", "/revise keep it small"])
async def test_an_answer_while_the_run_parks_its_shown_plan_is_kept_for_it(
    harness: Harness, text: str
) -> None:
    run = await working_run(harness, plan_shown=True)
    await say(harness, text, delivery="early")
    assert bot_comments(harness) == []  # not "no plan waiting"
    assert harness.run_jobs == []  # its job reads it once the run waits
    answer = await harness.store.command("early")
    assert answer is not None
    assert (answer.run_id, answer.consumed_at) == (run.id, None)
    delivery = await harness.store.delivery("early")
    assert delivery is not None
    assert delivery.outcome == "kept"


async def test_an_answer_recorded_as_the_run_parks_resumes_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await working_run(harness, plan_shown=True)
    parks_when_recording(harness, monkeypatch, run)
    await say(harness, "/open-swe approve", delivery="early")
    assert harness.run_jobs == [run.id]
    answer = await harness.store.command("early")
    assert answer is not None
    assert (answer.run_id, answer.consumed_at) == (run.id, None)


async def test_instructions_recorded_as_the_run_parks_are_feedback_on_its_plan(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await working_run(harness, plan_shown=True)
    parks_when_recording(harness, monkeypatch, run)
    await say(harness, "/open-swe also cover negative numbers", delivery="note")
    assert harness.run_jobs == [run.id]  # not left unread in a waiting run's inbox
    assert bot_comments(harness) == []
    note = await harness.store.command("note")
    assert note is not None
    assert (note.verb, note.run_id, note.consumed_at) == ("instruct", run.id, None)


async def test_an_answer_to_a_working_run_without_a_plan_shown_is_refused(
    harness: Harness,
) -> None:
    run = await working_run(harness, plan_shown=False)
    await say(harness, "/approve", delivery="bare")  # ordinary talk: no plan to approve
    await say(harness, "/open-swe approve", delivery="addressed")
    assert bot_comments(harness) == [messages.NO_PLAN_WAITING.format(verb="approve")]
    assert await harness.store.pending_commands(ISSUE) == []
    assert harness.run_jobs == []
    # once answered, the question is closed: a plan being revised takes no answer either
    lifecycle = Lifecycle(harness.store)
    await lifecycle.ask_plan(run.id, 1)
    assert await harness.store.set_run_status(run.id, "waiting") is not None
    await harness.store.add_command(
        thread=ISSUE, run_id=run.id, verb="approve", text="", author=MAINTAINER,
        source="issue_comment", delivery_id="taken",
    )  # fmt: skip
    assert await lifecycle.take_answer(run.id) is not None  # running again, question closed
    await say(harness, "/open-swe approve", delivery="late")
    assert bot_comments(harness)[-1] == messages.NO_PLAN_WAITING.format(verb="approve")


async def test_a_stop_as_the_run_parks_answers_its_plan(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The front door saw the run working, but it parked before the stop was stored: the
    stop is not stored over a parked run (whose job would never run again) but handed to
    the run's job as the plan's answer, so the run ends itself (final status, no sandbox)."""
    run = await working_run(harness, plan_shown=True)
    parks_when_recording(harness, monkeypatch, run)
    await say(harness, "/open-swe stop", delivery="stop")
    still = await harness.store.run(run.id)
    assert still is not None
    assert still.status == "waiting"  # until its job takes the stop
    assert harness.run_jobs == [run.id]
    stop = await harness.store.command("stop")
    assert stop is not None
    assert (stop.verb, stop.run_id, stop.consumed_at) == ("stop", run.id, None)
    assert bot_comments(harness) == [messages.STOPPED.format(run=f"run `{run.id[:8]}`")]


async def test_instructions_while_a_run_is_busy_are_noted_not_started(harness: Harness) -> None:
    await harness.deliver("issues", labeled())
    run = await harness.store.active_run(ISSUE)
    assert run is not None
    await say(harness, "/open-swe also update the docs")
    assert len(await harness.store.runs_on_thread(ISSUE)) == 1
    assert bot_comments(harness) == [
        messages.ALREADY_RUNNING_NOTED.format(run=f"run `{run.id[:8]}`")
    ]
    [command] = await harness.store.pending_commands(ISSUE)
    assert command.run_id == run.id


async def test_stop_stops_the_active_run(harness: Harness) -> None:
    await harness.deliver("issues", labeled())
    run = await harness.store.active_run(ISSUE)
    assert run is not None
    await say(harness, "/open-swe stop")
    stopped = await harness.store.run(run.id)
    assert stopped is not None
    assert stopped.status == "stopped"
    assert stopped.error == messages.STOPPED_BY.format(user=MAINTAINER)  # shown by the run
    assert bot_comments(harness) == [messages.STOPPED.format(run=f"run `{run.id[:8]}`")]
    assert await harness.store.pending_commands(ISSUE) == []  # handled, not left for a run


async def test_stop_answers_a_waiting_plan_so_the_run_ends_itself(harness: Harness) -> None:
    run = await waiting_run(harness)
    await say(harness, "/open-swe approve", delivery="approve")
    harness.run_jobs.clear()
    await say(harness, "/open-swe stop", delivery="stop")
    assert harness.run_jobs == [run.id]  # resumed, to end with a final status comment
    still = await harness.store.run(run.id)
    assert still is not None
    assert still.status == "waiting"  # until its job takes the stop
    stop = await harness.store.command("stop")
    assert stop is not None
    assert (stop.verb, stop.run_id, stop.consumed_at) == ("stop", run.id, None)
    assert bot_comments(harness) == [messages.STOPPED.format(run=f"run `{run.id[:8]}`")]


async def test_stop_with_nothing_running(harness: Harness) -> None:
    await say(harness, "/open-swe stop")
    assert bot_comments(harness) == [messages.NOTHING_TO_STOP]


async def test_retry_starts_a_new_run_like_the_last(harness: Harness) -> None:
    await say(harness, "/open-swe retry")
    assert bot_comments(harness) == [messages.NOTHING_TO_RETRY]
    await harness.deliver("issues", labeled("open-swe-auto"))
    first = await harness.store.active_run(ISSUE)
    assert first is not None
    await harness.store.set_run_status(first.id, "failed", error="tests failed")
    await say(harness, "/open-swe retry")
    second = await harness.store.active_run(ISSUE)
    assert second is not None
    assert second.id != first.id
    assert second.auto_approve is True
    assert harness.run_jobs == [first.id, second.id]


async def test_status_help_and_unknown_commands_are_answered(harness: Harness) -> None:
    await say(harness, "/open-swe status")
    await say(harness, "/open-swe help")
    await say(harness, "/open-swe aprove")
    await say(harness, f"@{SLUG}")
    help_text = messages.HELP.format(slug=SLUG)
    assert bot_comments(harness) == [
        messages.STATUS_NONE,
        help_text,
        messages.UNKNOWN_COMMAND.format(word="aprove", slug=SLUG),
        help_text,
    ]
    assert await harness.store.runs_on_thread(ISSUE) == []


async def test_status_reports_the_latest_run(harness: Harness) -> None:
    await harness.deliver("issues", labeled())
    run = await harness.store.active_run(ISSUE)
    assert run is not None
    await harness.store.set_run_status(run.id, "failed", error="the tests failed")
    await say(harness, "/open-swe status")
    [answer] = bot_comments(harness)
    assert "**failed**" in answer
    assert "requested by @Codertocat" in answer
    assert "the tests failed" in answer


async def test_status_echoes_a_failure_reason_inert(harness: Harness) -> None:
    # A reason can quote command output the agent (steered by the issue) produced.
    await harness.deliver("issues", labeled())
    run = await harness.store.active_run(ISSUE)
    assert run is not None
    error = "setup failed: @octo-team look <img src=x> [here](https://evil.example)"
    await harness.store.set_run_status(run.id, "failed", error=error)
    await say(harness, "/open-swe status")
    [answer] = bot_comments(harness)
    assert "@\u200bocto-team" in answer  # shown, but pings nobody
    assert "\\<img src=x\\>" in answer  # escaped: shown as text, not rendered
    assert "\\[here\\](https://evil.example)" in answer  # not a link


async def test_a_mention_on_a_pull_request_is_an_auto_approved_follow_up(
    harness: Harness,
) -> None:
    data = payload("issue_comment.created")
    data["issue"]["number"] = 2
    data["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/2"}
    comment = harness.gh.add_comment(REPO, 2, f"@{SLUG} rename the helper", user=MAINTAINER)
    data["comment"] |= {"id": comment.id, "body": comment.body}
    await harness.deliver("issue_comment", data)
    run = await harness.store.active_run(PULL)
    assert run is not None
    assert (run.kind, run.auto_approve) == ("pull", True)


def pull_comment(harness: Harness, body: str, number: int = 2) -> dict[str, Any]:
    """issue_comment.created on pull request `number` (the recorded on-pull-request payload,
    moved onto REPO)."""
    data = payload("issue_comment.created.on-pull-request")
    data["repository"] = payload("issue_comment.created")["repository"]
    data["issue"]["number"] = number
    comment = harness.gh.add_comment(REPO, number, body, user=MAINTAINER)
    data["comment"] |= {"id": comment.id, "body": body}
    return set_sender(data, MAINTAINER)


async def test_a_follow_up_is_kept_in_the_inbox_for_the_run_to_take(harness: Harness) -> None:
    await harness.deliver("issue_comment", pull_comment(harness, f"@{SLUG} rename the helper"))
    run = await harness.store.active_run(PULL)
    assert run is not None
    [command] = await harness.store.pending_commands(PULL)
    assert (command.verb, command.text, command.run_id) == ("instruct", "rename the helper", None)


async def test_a_follow_up_on_a_pull_request_from_a_fork_is_refused(harness: Harness) -> None:
    pull = harness.gh.add_pull(REPO, head="patch-1", head_repo="mallory/Hello-World")
    data = pull_comment(harness, f"@{SLUG} fix the typo", number=pull.issue.number)
    await harness.deliver("issue_comment", data)
    thread = thread_key(REPO, pull.issue.number)
    assert await harness.store.runs_on_thread(thread) == []
    assert await harness.store.pending_commands(thread) == []
    head = "`mallory/Hello-World`"
    assert bot_comments(harness, pull.issue.number) == [messages.PULL_FROM_FORK.format(head=head)]


async def test_a_follow_up_on_a_closed_pull_request_is_refused(harness: Harness) -> None:
    pull = harness.gh.add_pull(REPO, head="done", state="closed")
    await harness.deliver(
        "issue_comment", pull_comment(harness, "/open-swe add more tests", pull.issue.number)
    )
    assert await harness.store.runs_on_thread(thread_key(REPO, pull.issue.number)) == []
    assert bot_comments(harness, pull.issue.number) == [
        messages.PULL_NOT_OPEN.format(state="closed")
    ]


def review_comment(harness: Harness, body: str, *, sender: str = MAINTAINER) -> dict[str, Any]:
    """pull_request_review_comment.created on PR #2, backed by a comment in the fake."""
    data = payload("pull_request_review_comment.created")
    root = harness.gh.add_review_comment(REPO, 2, "first", user=MAINTAINER, path="README.md")
    reply = harness.gh.add_review_comment(
        REPO, 2, body, user=sender, path="README.md", line=3, in_reply_to_id=root.id
    )
    data["comment"] |= {"id": reply.id, "body": body, "in_reply_to_id": root.id, "line": 3}
    return set_sender(data, sender)


async def test_a_review_comment_records_the_path_and_line(harness: Harness) -> None:
    data = review_comment(harness, f"@{SLUG} use a constant here")
    await harness.deliver("pull_request_review_comment", data)
    [command] = await harness.store.pending_commands(PULL)
    assert (command.source, command.path, command.line) == ("review_comment", "README.md", 3)
    eyes = harness.gh.reactions_on(REPO, "review_comment", data["comment"]["id"])
    assert [r.content for r in eyes] == ["eyes"]


async def test_a_refusal_on_a_review_comment_replies_in_its_thread(harness: Harness) -> None:
    harness.gh.set_permission(REPO, "visitor", "read")
    data = review_comment(harness, f"@{SLUG} use a constant here", sender="visitor")
    await harness.deliver("pull_request_review_comment", data)
    replies = [c for c in harness.gh.review_comments.values() if c.user.endswith("[bot]")]
    assert [(r.body, r.in_reply_to_id) for r in replies] == [
        (messages.REFUSED_NO_WRITE.format(user="visitor"), data["comment"]["in_reply_to_id"])
    ]


def review_submitted(body: str | None) -> dict[str, Any]:
    """pull_request_review.submitted on PR #2, built from the recorded PR payload."""
    base = payload("pull_request_review_comment.created")
    review = {
        "id": 237895671,
        "user": copy.deepcopy(base["sender"]),
        "body": body,
        "state": "commented",
        "submitted_at": "2019-05-15T15:20:38Z",
        "html_url": "https://github.com/Codertocat/Hello-World/pull/2#pullrequestreview-237895671",
    }
    return {
        "action": "submitted",
        "review": review,
        "pull_request": base["pull_request"],
        "repository": base["repository"],
        "installation": base["installation"],
        "sender": base["sender"],
    }


async def test_a_review_addressed_to_the_bot_is_acknowledged_on_the_pull_request(
    harness: Harness,
) -> None:
    await harness.deliver("pull_request_review", review_submitted("/open-swe split this PR"))
    [command] = await harness.store.pending_commands(PULL)
    assert (command.source, command.text) == ("review", "split this PR")
    assert [r.content for r in harness.gh.reactions_on(REPO, "issue", 2)] == ["eyes"]


async def test_a_review_without_text_is_ignored(harness: Harness) -> None:
    response = await harness.deliver("pull_request_review", review_submitted(None))
    assert response.json()["status"] == "ignored"


async def test_a_comment_quoting_a_command_does_not_trigger(harness: Harness) -> None:
    response = await harness.deliver(
        "issue_comment",
        comment_payload(f"> @{SLUG} stop\n\nWhy did you say that?", comment_id=1),
    )
    assert response.json()["status"] == "ignored"


async def test_the_slug_is_learned_from_github_when_not_configured(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    async with start_harness(tmp_path, gh, github_app, github_app_slug=None) as harness:
        # Known or not yet, a mention of someone else addresses nobody.
        comment = harness.gh.add_comment(REPO, 1, "@someone-else fix it", user=MAINTAINER)
        data = comment_payload(comment.body, comment_id=comment.id)
        response = await harness.deliver("issue_comment", data, delivery="other")
        assert response.status_code in {200, 202}
        delivery = await harness.store.delivery("other")
        assert delivery is not None
        assert delivery.outcome == "ignored"
        await say(harness, f"@{SLUG} fix it")
        assert len(await harness.store.runs_on_thread(ISSUE)) == 1
    assert len(gh.calls_matching("GET", "/app")) == 1  # asked once, then cached


async def test_while_the_slug_is_unknown_only_commands_trigger(
    tmp_path: Path, gh: FakeGitHub, github_app: GitHubApp
) -> None:
    """Issue 11: with GET /app failing, a comment that only mentioned @alice started a run."""
    gh.fail("GET", "/app", 401, times=1000, message="Bad credentials")
    async with start_harness(tmp_path, gh, github_app, github_app_slug=None) as harness:
        for body in ("@alice fix it", f"@{SLUG} fix it", f"thanks @{SLUG}"):
            await say(harness, body)
            assert await harness.store.runs_on_thread(ISSUE) == []
        await say(harness, "/open-swe fix it")
        assert len(await harness.store.runs_on_thread(ISSUE)) == 1
