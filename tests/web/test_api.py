"""The JSON API: the same access rules as the pages."""

from __future__ import annotations

from tests.web.conftest import HIDDEN_REPO, OTHER_INSTALLATION, READER, Runs, sign_in
from tests.webhooks.conftest import MAINTAINER, REPO, Harness


async def test_runs_as_json_for_the_person_signed_in(web: Harness, runs: Runs) -> None:
    waiting = await runs.add("waiting")
    await runs.add("running", repo=HIDDEN_REPO, installation=OTHER_INSTALLATION)
    assert (await web.client.get("/api/runs")).status_code == 401
    await sign_in(web.client, web.gh, MAINTAINER)

    [run] = (await web.client.get("/api/runs")).json()["runs"]

    assert run["id"] == waiting.id
    assert (run["repo"], run["number"], run["kind"]) == (REPO, 1, "issue")
    assert (run["status"], run["step"]) == ("waiting", "approval")
    assert run["issue_url"] == f"{web.gh.web_url}/{REPO}/issues/1"
    assert run["tokens"] == {"input": 0, "output": 0, "total": 0}
    assert run["display"]["status"] == "waiting for approval"
    assert (await web.client.get("/api/runs", params={"status": "succeeded"})).json() == {
        "runs": []
    }
    assert (await web.client.get("/api/runs", params={"repo": HIDDEN_REPO})).json() == {"runs": []}


async def test_one_run_with_its_steps_and_what_the_person_may_do(web: Harness, runs: Runs) -> None:
    waiting = await runs.add("waiting")
    hidden = await runs.add("running", repo=HIDDEN_REPO, installation=OTHER_INSTALLATION)
    await sign_in(web.client, web.gh, MAINTAINER)

    detail = (await web.client.get(f"/api/runs/{waiting.id}")).json()

    assert detail["actions"] == ["approve", "revise", "stop"]
    assert [s["name"] for s in detail["steps"]] == [
        "prepare",
        "plan",
        "approval",
        "implement",
        "verify",
        "publish",
        "report",
    ]
    assert detail["steps"][2]["state"] == "waiting"
    assert detail["plan"] is None
    assert (await web.client.get(f"/api/runs/{hidden.id}")).status_code == 404

    web.client.cookies.clear()
    await sign_in(web.client, web.gh, READER)
    assert (await web.client.get(f"/api/runs/{waiting.id}")).json()["actions"] == []
