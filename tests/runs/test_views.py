"""The dashboard's read-only queries: runs within a person's scope, with what started them."""

from __future__ import annotations

from typing import Any

from app.runs import views
from app.runs.models import Run, thread_key
from app.runs.store import Store

REPO, OTHER, HIDDEN = "acme/widgets", "acme/gadgets", "evil/secrets"


async def start(store: Store, repo: str, number: int, *, installation: int = 1, **kw: Any) -> Run:
    delivery = kw.pop("delivery", None)
    run = await store.start_run(
        thread=thread_key(repo, number),
        repo=repo,
        number=number,
        kind="issue",
        installation_id=installation,
        requested_by=kw.pop("by", "octocat"),
        auto_approve=kw.pop("auto", False),
        delivery_id=delivery,
    )
    assert isinstance(run, Run)
    return run


async def test_only_runs_in_scope_are_listed_newest_first(store: Store) -> None:
    older = await start(store, REPO, 1)
    other = await start(store, OTHER, 2)
    await start(store, HIDDEN, 3, installation=2)
    await start(store, REPO.upper(), 4, installation=9)  # same name, another installation
    scope = [(1, REPO), (1, OTHER), (2, "nothing/here")]

    listed = await views.list_runs(store.engine, scope)

    assert [row.run.id for row in listed] == [other.id, older.id]
    assert await views.list_runs(store.engine, []) == []
    mine = await views.list_runs(store.engine, scope, repo="ACME/widgets")
    assert [row.run.id for row in mine] == [older.id]


async def test_filters_by_status(store: Store) -> None:
    waiting = await start(store, REPO, 1)
    await store.set_run_status(waiting.id, "waiting")
    await start(store, REPO, 2)

    listed = await views.list_runs(store.engine, [(1, REPO)], status="waiting")

    assert [row.run.id for row in listed] == [waiting.id]


async def test_the_trigger_is_told_from_the_delivery_and_the_command(store: Store) -> None:
    await store.record_delivery(
        delivery_id="d-label",
        event="issues",
        action="labeled",
        installation_id=1,
        repo=REPO,
        outcome="accepted",
    )
    await store.record_delivery(
        delivery_id="d-comment",
        event="issue_comment",
        action="created",
        installation_id=1,
        repo=REPO,
        outcome="accepted",
    )
    labelled = await start(store, REPO, 1, delivery="d-label", auto=True)
    await store.set_run_status(labelled.id, "failed")
    commented = await start(store, REPO, 2, delivery="d-comment")
    await store.set_run_status(commented.id, "failed")
    await store.add_command(
        thread=thread_key(REPO, 1),
        run_id=labelled.id,
        verb="retry",
        text="",
        author="carol",
        source="issue_comment",
        delivery_id="dashboard-abc",
        consumed=True,
    )
    retried = await start(store, REPO, 1, delivery="dashboard-abc")
    unknown = await start(store, REPO, 3)

    triggers = {row.run.id: row.trigger for row in await views.list_runs(store.engine, [(1, REPO)])}

    assert triggers == {
        labelled.id: "label open-swe-auto",
        commented.id: "comment",
        retried.id: "retry from the dashboard",
        unknown.id: "unknown",
    }
    row = await views.run_row(store.engine, retried.id)
    assert row is not None
    assert row.trigger == "retry from the dashboard"
    assert await views.run_row(store.engine, "nope") is None


async def test_counts_for_metrics(store: Store) -> None:
    for outcome in ("accepted", "accepted", "ignored"):
        await store.record_delivery(
            delivery_id=f"d-{outcome}-{id(outcome)}-{await store.count('deliveries')}",
            event="issues",
            action="labeled",
            installation_id=1,
            repo=REPO,
            outcome=outcome,
            payload={"x": 1} if outcome == "accepted" else None,
        )
    done = await start(store, REPO, 1)
    await store.set_run_status(done.id, "succeeded")
    await start(store, REPO, 2)

    assert await views.delivery_counts(store.engine) == {
        ("issues", "accepted"): 2,
        ("issues", "ignored"): 1,
    }
    assert await views.run_counts(store.engine) == {"succeeded": 1, "queued": 1}
    assert [run.id for run in await views.finished_runs(store.engine)] == [done.id]
    assert len(await views.active_runs(store.engine)) == 1
    assert await views.unfinished_deliveries(store.engine) == 2
