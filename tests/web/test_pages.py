"""The pages: who sees which runs, filters, escaping, security headers, a repository's totals."""

from __future__ import annotations

import httpx

from app.web.render import CONTENT_SECURITY_POLICY
from tests.web.conftest import (
    HIDDEN_ADMIN,
    HIDDEN_REPO,
    OTHER_INSTALLATION,
    STRANGER,
    Runs,
    sign_in,
)
from tests.webhooks.conftest import MAINTAINER, OTHER_REPO, REPO, Harness

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def run_ids(page: httpx.Response) -> list[str]:
    return [part.split('"', 1)[0] for part in page.text.split('<tr data-run="')[1:]]


async def test_each_person_sees_only_the_runs_of_repositories_they_reach(
    web: Harness, runs: Runs
) -> None:
    mine = await runs.add("running")
    other = await runs.add("succeeded", repo=OTHER_REPO, number=5)
    hidden = await runs.add("running", repo=HIDDEN_REPO, installation=OTHER_INSTALLATION)

    await sign_in(web.client, web.gh, MAINTAINER)
    assert run_ids(await web.client.get("/")) == [other.id, mine.id]
    assert (await web.client.get(f"/runs/{hidden.id}")).status_code == 404
    assert (await web.client.get("/runs/no-such-run")).status_code == 404

    web.client.cookies.clear()
    await sign_in(web.client, web.gh, HIDDEN_ADMIN)
    assert run_ids(await web.client.get("/")) == [hidden.id]
    assert (await web.client.get(f"/runs/{mine.id}")).status_code == 404

    web.client.cookies.clear()
    await sign_in(web.client, web.gh, STRANGER)
    page = await web.client.get("/")
    assert run_ids(page) == []
    assert "No runs to show" in page.text


async def test_filters_by_repository_and_status(web: Harness, runs: Runs) -> None:
    running = await runs.add("running")
    done = await runs.add("succeeded", repo=OTHER_REPO, number=5)
    await sign_in(web.client, web.gh, MAINTAINER)

    assert run_ids(await web.client.get("/", params={"repo": OTHER_REPO})) == [done.id]
    assert run_ids(await web.client.get("/", params={"status": "running"})) == [running.id]
    assert run_ids(await web.client.get("/", params={"repo": HIDDEN_REPO})) == [done.id, running.id]
    page = await web.client.get("/", params={"repo": OTHER_REPO, "status": "succeeded"})
    assert 'data-src="/api/runs?repo=Codertocat%2FSpace&amp;status=succeeded"' in page.text


async def test_untrusted_text_is_escaped_and_the_headers_forbid_the_rest(
    web: Harness, runs: Runs
) -> None:
    run = await runs.add("failed", error=HOSTILE)
    await sign_in(web.client, web.gh, MAINTAINER)

    page = await web.client.get(f"/runs/{run.id}")

    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert "<script>" not in page.text.replace(
        '<script src="/static/dashboard.js" defer></script>', ""
    )
    assert "style=" not in page.text
    headers = page.headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    api = await web.client.get(f"/api/runs/{run.id}")
    assert api.json()["error"] == HOSTILE  # JSON is data: the script sets it as text
    assert api.headers["content-type"] == "application/json"


async def test_the_page_holds_no_secret(web: Harness, runs: Runs) -> None:
    run = await runs.add("waiting")
    await sign_in(web.client, web.gh, MAINTAINER)
    [token] = web.gh.oauth.tokens_of(MAINTAINER)

    for path in ("/", f"/runs/{run.id}", f"/repos/{REPO}", "/api/runs", f"/api/runs/{run.id}"):
        text = (await web.client.get(path)).text
        assert token not in text
        assert "fake-client-secret" not in text
        assert web.gh.private_key_pem is not None
        assert "PRIVATE KEY" not in text


async def test_a_repository_page_totals_its_runs_over_a_period(web: Harness, runs: Runs) -> None:
    await runs.add("succeeded", pr_number=10)
    await runs.add("succeeded", number=2)
    await runs.add("failed", number=3)
    await runs.add("stopped", number=4)
    await runs.add("waiting", number=5)
    await runs.add("failed", repo=OTHER_REPO, number=9)
    await sign_in(web.client, web.gh, MAINTAINER)

    page = await web.client.get(f"/repos/{REPO}", params={"days": 7})

    assert page.status_code == 200
    facts = dict(
        (dt.split("</dt>")[0], dd.split("</dd>")[0])
        for dt, dd in (
            part.split("<dd>", 1) for part in page.text.split("<dt>")[1:] if "<dd>" in part
        )
    )
    assert facts["Runs"] == "5"
    assert (facts["Succeeded"], facts["Failed"], facts["Stopped"]) == ("2", "1", "1")
    assert facts["Still active"] == "1"
    assert facts["Pull requests opened"] == "1"
    assert 'aria-current="page">Last 7 days' in page.text
    assert (await web.client.get(f"/repos/{HIDDEN_REPO}")).status_code == 404


async def test_the_script_and_styles_are_served_from_here(web: Harness) -> None:
    script = await web.client.get("/static/dashboard.js")
    styles = await web.client.get("/static/dashboard.css")

    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "textContent" in script.text
    assert "innerHTML" not in script.text
    assert styles.status_code == 200
