"""Labelling an issue open-swe / open-swe-auto: gate, acknowledge, start one run per issue."""

from __future__ import annotations

from sqlalchemy import text

from app.runs.dispatch import ProcessDelivery
from app.runs.models import thread_key
from app.webhooks import messages
from app.webhooks.event import Event
from app.webhooks.labels import is_trigger_label
from tests.webhooks.conftest import (
    INSTALLATION,
    QUICK_RETRY,
    REPO,
    SLUG,
    Harness,
    github_work,
    labeled,
    payload,
    set_sender,
    shown,
)

THREAD = thread_key(REPO, 1)


def reactions_posted(harness: Harness) -> int:
    return len(harness.gh.calls_matching("POST", f"/repos/{REPO}/issues/1/reactions"))


def comments_on_issue(harness: Harness) -> list[str]:
    return [shown(c.body) for c in harness.gh.comments.values() if c.issue_number == 1]


async def test_a_maintainer_labelling_starts_a_run(harness: Harness) -> None:
    response = await harness.deliver("issues", labeled("open-swe"), delivery="lab-1")
    assert response.status_code == 202
    runs = await harness.store.runs_on_thread(THREAD)
    assert len(runs) == 1
    run = runs[0]
    assert (run.repo, run.number, run.kind, run.installation_id) == (REPO, 1, "issue", INSTALLATION)
    assert run.requested_by == "Codertocat"
    assert run.auto_approve is False
    assert run.delivery_id == "lab-1"
    assert harness.run_jobs == [run.id]
    eyes = harness.gh.reactions_on(REPO, "issue", 1)
    assert [(r.content, r.user) for r in eyes] == [("eyes", f"{SLUG}[bot]")]
    delivery = await harness.store.delivery("lab-1")
    assert delivery is not None
    assert (delivery.outcome, delivery.detail) == ("started", run.id)


async def test_the_auto_label_starts_an_auto_approved_run(harness: Harness) -> None:
    await harness.deliver("issues", labeled("open-swe-auto"))
    run = await harness.store.active_run(THREAD)
    assert run is not None
    assert run.auto_approve is True


async def test_label_names_compare_case_insensitively() -> None:
    assert is_trigger_label(Event("issues", "d", labeled("Open-SWE")), None)
    assert not is_trigger_label(Event("issues", "d", labeled("open-swe-later")), None)


async def test_the_same_delivery_ten_times_makes_one_run_and_one_reaction(
    harness: Harness,
) -> None:
    answers = [
        (await harness.deliver("issues", labeled(), delivery="same")).status_code for _ in range(10)
    ]
    assert answers == [202] + [200] * 9
    assert await harness.store.count("deliveries") == 1
    assert len(await harness.store.runs_on_thread(THREAD)) == 1
    assert reactions_posted(harness) == 1
    assert len(harness.run_jobs) == 1


async def test_a_second_label_while_a_run_is_active_answers_already_running(
    harness: Harness,
) -> None:
    await harness.deliver("issues", labeled("open-swe"), delivery="first")
    await harness.deliver("issues", labeled("open-swe-auto"), delivery="second")
    runs = await harness.store.runs_on_thread(THREAD)
    assert len(runs) == 1
    assert comments_on_issue(harness) == [
        messages.ALREADY_RUNNING.format(run=f"run `{runs[0].id[:8]}`")
    ]
    second = await harness.store.delivery("second")
    assert second is not None
    assert (second.outcome, second.detail) == ("already-running", runs[0].id)
    assert harness.run_jobs == [runs[0].id]


async def test_a_label_after_the_run_finished_starts_a_new_one(harness: Harness) -> None:
    await harness.deliver("issues", labeled(), delivery="first")
    first = await harness.store.active_run(THREAD)
    assert first is not None
    await harness.store.set_run_status(first.id, "succeeded")
    await harness.deliver("issues", labeled(), delivery="second")
    assert len(await harness.store.runs_on_thread(THREAD)) == 2


async def test_people_without_write_access_are_refused_politely_once(harness: Harness) -> None:
    harness.gh.set_permission(REPO, "reader", "read")
    harness.gh.set_permission(REPO, "triager", "triage")
    for index, login in enumerate(["reader", "triager", "stranger"]):
        data = set_sender(labeled(), login)
        assert (await harness.deliver("issues", data, delivery=f"no-{index}")).status_code == 202
    assert await harness.store.runs_on_thread(THREAD) == []
    assert reactions_posted(harness) == 0
    assert comments_on_issue(harness) == [
        messages.REFUSED_NO_WRITE.format(user=login) for login in ["reader", "triager", "stranger"]
    ]
    refused = await harness.store.delivery("no-0")
    assert refused is not None
    assert refused.outcome == "refused"
    assert harness.run_jobs == []


async def test_a_refusal_is_not_repeated_when_a_delivery_is_processed_again(
    harness: Harness,
) -> None:
    harness.gh.set_permission(REPO, "reader", "read")
    await harness.deliver("issues", set_sender(labeled(), "reader"), delivery="again")
    # As after a crash between the comment and the end of the job: process it once more.
    async with harness.store.engine.begin() as conn:
        await conn.execute(text("UPDATE deliveries SET processed_at = NULL WHERE id = 'again'"))
    await harness.dispatcher.submit(ProcessDelivery("again"))
    await harness.settle()
    assert len(comments_on_issue(harness)) == 1


async def test_bots_are_ignored_silently(harness: Harness) -> None:
    for index, (login, kind) in enumerate(
        [("dependabot[bot]", "Bot"), (f"{SLUG}[bot]", "Bot"), ("renovate", "Bot")]
    ):
        await harness.deliver(
            "issues", set_sender(labeled(), login, kind=kind), delivery=f"b{index}"
        )
    assert github_work(harness.gh) == []
    assert await harness.store.runs_on_thread(THREAD) == []
    outcome = await harness.store.delivery("b0")
    assert outcome is not None
    assert outcome.outcome == "ignored"


async def test_an_installation_unknown_to_github_is_refused(harness: Harness) -> None:
    await harness.deliver("issues", labeled(installation={"id": 424242}), delivery="unknown")
    assert await harness.store.runs_on_thread(THREAD) == []
    delivery = await harness.store.delivery("unknown")
    assert delivery is not None
    assert delivery.outcome == "refused"
    assert "424242" in (delivery.detail or "")
    assert await harness.store.installation(424242) is None
    # One look-up on GitHub, then nothing: no reaction, no comment.
    assert [(c.method, c.path) for c in github_work(harness.gh)] == [
        ("GET", "/app/installations/424242")
    ]


async def test_an_installation_made_while_the_server_was_down_works(harness: Harness) -> None:
    assert await harness.store.installation(INSTALLATION) is None
    await harness.deliver("issues", labeled())
    known = await harness.store.installation(INSTALLATION)
    assert known is not None
    assert known.account == "Codertocat"
    assert len(await harness.store.runs_on_thread(THREAD)) == 1
    # Known now: the next trigger does not ask GitHub again.
    await harness.store.set_run_status((await harness.store.runs_on_thread(THREAD))[0].id, "failed")
    await harness.deliver("issues", labeled())
    assert len(harness.gh.calls_matching("GET", f"/app/installations/{INSTALLATION}")) == 1


async def test_a_deleted_or_suspended_installation_is_refused(harness: Harness) -> None:
    await harness.deliver("installation", payload("installation.created"))
    await harness.store.set_installation_suspended(INSTALLATION, True)
    await harness.deliver("issues", labeled(), delivery="suspended")
    await harness.store.delete_installation(INSTALLATION)
    await harness.deliver("issues", labeled(), delivery="deleted")
    for delivery_id in ("suspended", "deleted"):
        delivery = await harness.store.delivery(delivery_id)
        assert delivery is not None
        assert delivery.outcome == "refused"
    assert await harness.store.runs_on_thread(THREAD) == []


async def test_a_transient_github_failure_is_tried_again_until_it_works(
    harness: Harness,
) -> None:
    """Finding 1: eight 500s in a row on the permission check, more than the HTTP client's own
    tries (six), used to end the delivery as an error, for good."""
    harness.gh.fail("GET", "/repos/*/collaborators/*/permission", 500, times=8)
    response = await harness.deliver("issues", labeled(), delivery="flaky")
    assert response.status_code == 202
    delivery = await harness.store.delivery("flaky")
    assert delivery is not None
    assert (delivery.outcome, delivery.attempts) == ("started", 2)
    assert len(harness.gh.calls_matching("GET", "/repos/*/collaborators/*/permission")) == 9
    [run] = await harness.store.runs_on_thread(THREAD)
    assert harness.run_jobs == [run.id]


async def test_a_transient_failure_that_outlasts_every_try_is_recorded_as_an_error(
    harness: Harness,
) -> None:
    harness.gh.fail("POST", "/app/installations/*/access_tokens", 500, times=1000)
    await harness.deliver("issues", labeled(), delivery="broken")
    delivery = await harness.store.delivery("broken")
    assert delivery is not None
    assert delivery.outcome == "error"
    assert delivery.detail is not None
    assert delivery.detail.endswith(f"(gave up after {QUICK_RETRY.attempts} tries)")
    assert delivery.attempts == QUICK_RETRY.attempts
    assert delivery.processed_at is not None
    assert await harness.store.runs_on_thread(THREAD) == []


async def test_a_delivery_that_ended_in_error_is_processed_again_when_redelivered(
    harness: Harness,
) -> None:
    """Finding 1: GitHub's Redeliver button was answered `200 duplicate` for a delivery whose
    work had failed; only a delivery processed successfully is a duplicate."""
    harness.gh.fail("GET", "/repos/*/collaborators/*/permission", 403, message="Forbidden")
    first = await harness.deliver("issues", labeled(), delivery="refused-once")
    delivery = await harness.store.delivery("refused-once")
    assert delivery is not None
    assert (first.status_code, delivery.outcome, delivery.attempts) == (202, "error", 1)

    again = await harness.deliver("issues", labeled(), delivery="refused-once")
    assert again.status_code == 202
    assert again.json() == {"status": "accepted", "delivery": "refused-once"}
    delivery = await harness.store.delivery("refused-once")
    assert delivery is not None
    assert delivery.outcome == "started"
    assert len(await harness.store.runs_on_thread(THREAD)) == 1

    third = await harness.deliver("issues", labeled(), delivery="refused-once")
    assert third.json() == {"status": "duplicate", "delivery": "refused-once"}
    assert len(await harness.store.runs_on_thread(THREAD)) == 1


async def test_a_refused_reaction_does_not_stop_the_run(harness: Harness) -> None:
    harness.gh.fail("POST", "/repos/*/issues/*/reactions", 403, times=10, message="Forbidden")
    await harness.deliver("issues", labeled(), delivery="no-eyes")
    assert len(await harness.store.runs_on_thread(THREAD)) == 1
    delivery = await harness.store.delivery("no-eyes")
    assert delivery is not None
    assert delivery.outcome == "started"


async def test_already_running_links_the_runs_status_comment(harness: Harness) -> None:
    await harness.deliver("issues", labeled(), delivery="first")
    run = await harness.store.active_run(THREAD)
    assert run is not None
    await harness.store.set_status_comment(run.id, 1234)
    await harness.deliver("issues", labeled(), delivery="second")
    url = f"{harness.gh.web_url}/{REPO}/issues/1#issuecomment-1234"
    assert comments_on_issue(harness) == [
        messages.ALREADY_RUNNING.format(run=f"[run `{run.id[:8]}`]({url})")
    ]


async def test_an_answer_whose_response_was_lost_is_not_posted_twice(harness: Harness) -> None:
    harness.gh.set_permission(REPO, "reader", "read")
    # GitHub stores the comment but the answer is lost (a 502 after acting).
    harness.gh.fail("POST", f"/repos/{REPO}/issues/1/comments", 502, times=1, applied=True)
    await harness.deliver("issues", set_sender(labeled(), "reader"), delivery="lost")
    [comment] = harness.gh.comments.values()
    assert comment.body.endswith("<!-- open-swe:reply lost -->")
    assert shown(comment.body) == messages.REFUSED_NO_WRITE.format(user="reader")
    delivery = await harness.store.delivery("lost")
    assert delivery is not None
    assert (delivery.outcome, delivery.reply_comment_id) == ("refused", comment.id)
