"""The dashboard in a real browser (Chromium through Playwright) against the real app.

People sign in through the loopback GitHub's OAuth pages; runs are real (scripted model,
local sandbox, git); the pages update by themselves as runs progress.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from app.commands import Verb
from app.config import Settings
from app.server import create_app
from app.setup_routes import SetupStateStore
from app.transcript import RunEvent
from app.web.actions import TRAIL
from tests.agent.conftest import PLAN, script_fix, script_plan, script_pr
from tests.e2e.browser import TIMEOUT_MS, Browser, browser
from tests.e2e.conftest import MAINTAINER, READER, REPO, World, eventually
from tests.fakes.github_oauth import CLIENT_ID, CLIENT_SECRET
from tests.fakes.model import ModelRequest, Reply, offers, text

pytestmark = pytest.mark.slow
__all__ = ["browser"]  # the fixture

STRANGER = "eve"  # no access to the repository at all


METRICS_TOKEN = "metrics-e2e-token"


async def start(world: World) -> None:
    await world.start(
        github_app_client_id=CLIENT_ID,
        github_app_client_secret=CLIENT_SECRET,
        metrics_token=METRICS_TOKEN,
    )


async def signed_in(browser: Browser, world: World, login: str, path: str = "/") -> Page:
    """A browser page where `login` has signed in through GitHub and landed on `path`."""
    assert world.server is not None
    world.gh.oauth.sign_in_as = login
    page = await browser.page(login)
    await page.goto(world.server.url + path)
    await expect(page.get_by_text(f"Signed in as {login}")).to_be_visible()
    assert page.url == world.server.url + path
    return page


async def test_sign_in_and_watch_a_run_progress_live_to_its_pull_request(
    world: World, browser: Browser
) -> None:
    script_plan(world.model)
    script_fix(world.model)
    script_pr(world.model)
    await start(world)

    page = await signed_in(browser, world, MAINTAINER)
    await expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    await expect(page.get_by_label("Repository")).to_have_value("")
    await expect(page.get_by_label("Status")).to_have_value("")
    await expect(page.get_by_text("No runs to show")).to_be_visible()
    await page.evaluate("window.stillTheSamePage = true")  # no reload happens below

    await world.label("open-swe-auto")
    row = page.locator("tbody tr").first
    await expect(row).to_contain_text(REPO, timeout=TIMEOUT_MS)
    await expect(row).to_contain_text("label open-swe-auto by @Codertocat")
    await expect(row).to_contain_text("succeeded", timeout=TIMEOUT_MS)
    run = await world.finished_run()
    assert run.status == "succeeded"
    pr_link = row.get_by_role("link", name=f"PR #{run.pr_number}")
    await expect(pr_link).to_have_attribute(
        "href", f"{world.gh.web_url}/{REPO}/pull/{run.pr_number}"
    )
    await expect(row.locator("td.num").first).not_to_have_text("0")  # tokens were counted
    assert await page.evaluate("window.stillTheSamePage") is True

    # /metrics counts what happened, from the store and the run's checkpoints.
    assert world.server is not None
    async with httpx.AsyncClient() as client:
        metrics = await client.get(
            world.server.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
    assert 'open_swe_runs_total{outcome="succeeded"} 1.0' in metrics.text
    assert "open_swe_runs_active 0.0" in metrics.text
    tokens = re.search(r'open_swe_model_tokens_total\{kind="output"\} (\S+)', metrics.text)
    assert tokens is not None
    assert float(tokens.group(1)) > 0
    created = re.search(r"open_swe_sandbox_create_seconds_count (\S+)", metrics.text)
    assert created is not None
    assert float(created.group(1)) == 1  # from the run's transcript

    # The run's own page: the plan, every step done, the tests that passed.
    await row.get_by_role("link", name=f"Run {run.id[:8]}: details").click()
    await expect(page.get_by_role("heading", name=f"Run {run.id[:8]}")).to_be_visible()
    await expect(page.locator('[data-field="plan-title"]')).to_have_text(PLAN["title"])
    await expect(page.locator(".step-done")).to_have_count(7)
    await expect(page.locator('[data-field="tests-summary"]')).to_contain_text("passed")
    await expect(page.get_by_role("button", name="Retry")).to_be_visible()


async def test_approve_a_waiting_plan_from_the_dashboard_and_the_run_goes_on(
    world: World, browser: Browser
) -> None:
    script_plan(world.model)
    script_fix(world.model)
    script_pr(world.model)
    await start(world)
    await world.label("open-swe")
    waiting = await world.run_in("waiting")

    page = await signed_in(browser, world, MAINTAINER, f"/runs/{waiting.id}")
    await expect(page.locator('[data-field="status"]')).to_have_text("waiting for approval")
    await expect(page.locator('[data-field="plan-steps"] li')).to_have_text(PLAN["steps"])
    await expect(page.get_by_label("What should change in the plan?")).to_be_editable()
    # By keyboard: tab through the page to the button, then Enter.
    approve = page.get_by_role("button", name="Approve the plan")
    for _ in range(30):
        if await approve.evaluate("button => button === document.activeElement"):
            break
        await page.keyboard.press("Tab")
    await expect(approve).to_be_focused()
    await page.keyboard.press("Enter")

    await expect(page.get_by_role("status").first).to_have_text("Approved: the run goes on.")
    # The transcript: what the run did so far, then the rest as it happens, on this page.
    transcript = page.locator("#transcript")
    await expect(transcript.locator('[data-kind="decision"]')).to_contain_text(
        f"approve by @{MAINTAINER}", timeout=TIMEOUT_MS
    )
    await expect(transcript.locator('[data-kind="step"]').first).to_contain_text("Prepare")
    await page.evaluate("window.stillTheSamePage = true")
    await expect(page.locator('[data-field="status"]')).to_have_text(
        "succeeded", timeout=TIMEOUT_MS
    )
    await expect(transcript.locator('[data-kind="tests"]')).to_contain_text(
        "passed", timeout=TIMEOUT_MS
    )
    await expect(transcript.locator('[data-kind="push"]')).to_contain_text("open-swe/issue-1")
    await expect(transcript.locator('[data-kind="github"]').last).to_be_visible()
    await expect(transcript.locator('[data-kind="model"]').first).to_contain_text("tokens in")
    await expect(transcript.locator('[data-kind="status"]').last).to_have_text(
        re.compile("Status: succeeded"), timeout=TIMEOUT_MS
    )
    await expect(page.locator('[data-field="transcript-state"]')).to_contain_text(
        "The run has ended", timeout=TIMEOUT_MS
    )
    command = transcript.locator('[data-kind="command"]').filter(has_text="unittest").last
    await command.get_by_text("Output").click()  # the output, unfolded
    await expect(command.locator("pre")).to_contain_text("OK")
    assert await page.evaluate("window.stillTheSamePage") is True  # it all came live
    await expect(page.get_by_role("button", name="Approve the plan")).to_be_hidden()
    await expect(page.locator('[data-field="approved"]')).to_have_text(f"Approved by {MAINTAINER}.")
    run = await world.finished_run()
    assert (run.id, run.status) == (waiting.id, "succeeded")
    trail = TRAIL[Verb.APPROVE].format(user=MAINTAINER)
    assert any(c.body.startswith(trail) for c in world.comments())
    assert "approved by @Codertocat from the dashboard" in trail


async def test_stop_a_working_run_from_the_dashboard(world: World, browser: Browser) -> None:
    entered, release = threading.Event(), threading.Event()

    def held(_request: ModelRequest) -> Reply:
        entered.set()
        release.wait(timeout=60)
        return text("too late")

    script_plan(world.model)
    world.model.on(offers("edit_file"), held)
    await start(world)
    await world.label("open-swe-auto")
    await eventually(entered.is_set, "the implementation to start")
    [run] = await world.runs()

    try:
        page = await signed_in(browser, world, MAINTAINER, f"/runs/{run.id}")
        await expect(page.locator('[data-field="status"]')).to_have_text("running: Implement")
        await page.get_by_role("button", name="Stop the run").click()
        await expect(page.locator('[data-field="status"]')).to_have_text(
            "stopped", timeout=TIMEOUT_MS
        )
    finally:
        release.set()
    stopped = await world.finished_run()
    assert (stopped.status, stopped.error) == ("stopped", f"stopped by @{MAINTAINER}")
    await expect(page.locator('[data-field="error"]')).to_have_text(f"stopped by @{MAINTAINER}")
    transcript = page.locator("#transcript")  # the audit log says who stopped it
    await expect(transcript.locator('[data-kind="decision"]')).to_contain_text(
        f"stop by @{MAINTAINER}"
    )
    await expect(transcript.locator('[data-kind="status"]').last).to_contain_text("stopped")
    trail = TRAIL[Verb.STOP].format(user=MAINTAINER)
    assert any(c.body.startswith(trail) for c in world.comments())


async def test_without_access_a_person_sees_no_runs_and_cannot_act(
    world: World, browser: Browser
) -> None:
    script_plan(world.model)
    await start(world)
    await world.label("open-swe")
    waiting = await world.run_in("waiting")
    comments_before = len(world.comments())
    assert world.server is not None
    base = world.server.url

    # Someone with no access to the repository: nothing at all, pages and API alike.
    page = await signed_in(browser, world, STRANGER)
    await expect(page.get_by_text("No runs to show")).to_be_visible()
    await expect(page.locator("tbody tr")).to_have_count(0)
    answer = await page.goto(f"{base}/runs/{waiting.id}")
    assert answer is not None
    assert answer.status == 404
    api = page.context.request
    assert (await (await api.get(f"{base}/api/runs")).json()) == {"runs": []}
    assert (await api.get(f"{base}/api/runs/{waiting.id}")).status == 404
    assert (await api.get(f"{base}/api/runs/{waiting.id}/events")).status == 404
    assert (await api.get(f"{base}/api/runs/{waiting.id}/stream")).status == 404
    assert (await api.get(f"{base}/api/runs?repo={REPO}")).status == 200
    await page.goto(base + "/")
    csrf = await page.locator('input[name="csrf"]').first.get_attribute("value")
    posted = await api.post(f"{base}/runs/{waiting.id}/approve", form={"csrf": str(csrf)})
    assert posted.status == 404
    assert (await api.get(f"{base}/repos/{REPO}")).status == 404

    # Someone who can read the repository sees the run but gets no buttons, and no way round.
    page = await signed_in(browser, world, READER, f"/runs/{waiting.id}")
    await expect(page.locator('[data-field="status"]')).to_have_text("waiting for approval")
    await expect(page.locator('#transcript [data-kind="step"]').first).to_contain_text("Prepare")
    await expect(page.get_by_role("button", name="Approve the plan")).to_be_hidden()
    await expect(page.get_by_role("button", name="Stop the run")).to_be_hidden()
    csrf = await page.locator('input[name="csrf"]').first.get_attribute("value")
    posted = await page.context.request.post(
        f"{base}/runs/{waiting.id}/approve", form={"csrf": str(csrf)}
    )
    assert posted.status == 403

    assert (await world.run_in("waiting")).id == waiting.id
    assert len(world.comments()) == comments_before  # nothing was said on GitHub


HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


async def test_the_transcript_shows_hostile_output_as_text(world: World, browser: Browser) -> None:
    """Command output, tool arguments and model names are untrusted: text, never HTML."""
    script_plan(world.model)
    await start(world)
    await world.label("open-swe")
    waiting = await world.run_in("waiting")
    assert world.store is not None
    now = datetime.now(UTC)
    await world.store.add_events(
        waiting.id,
        [
            RunEvent(waiting.id, "command", now, {"command": HOSTILE, "exit_code": 1,
                                                  "seconds": 0.1, "output": HOSTILE}),
            RunEvent(waiting.id, "tool", now, {"name": HOSTILE, "args": {"x": HOSTILE}}),
            RunEvent(waiting.id, "github", now, {"action": HOSTILE, "number": 1,
                                                 "url": "javascript:window.pwned=3"}),
        ],
    )  # fmt: skip

    page = await signed_in(browser, world, MAINTAINER, f"/runs/{waiting.id}")
    transcript = page.locator("#transcript")
    command = transcript.locator('[data-kind="command"]').last
    await expect(command).to_contain_text("<img src=x")
    await command.get_by_text("Output").click()
    await expect(command.locator("pre")).to_contain_text("<script>window.pwned=2</script>")
    await expect(transcript.locator('[data-kind="tool"]').last).to_contain_text("<img src=x")
    github = transcript.locator('[data-kind="github"]').last
    await expect(github).to_contain_text("GitHub: <img")
    assert await github.locator("a").count() == 0  # not an http(s) address: no link
    assert await transcript.locator("img, script").count() == 0
    assert await page.evaluate("window.pwned") is None


async def test_the_setup_pages_button_shows_the_app_name_legibly(
    tmp_path: Path, browser: Browser
) -> None:
    state = SetupStateStore()
    settings = Settings(_env_file=None, data_dir=tmp_path, env_file_path=tmp_path / ".env")  # type: ignore[call-arg]
    app = create_app(settings, setup_state=state)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
    ) as client:
        html = (await client.get("/setup", params={"token": state.token})).text
    page = await browser.page("setup")
    await page.set_content(html)

    name = page.get_by_role("button").first.locator("code")
    colour = await name.evaluate("e => getComputedStyle(e).color")
    own = await name.evaluate("e => getComputedStyle(e).backgroundColor")
    behind = await name.evaluate("e => getComputedStyle(e.closest('button')).backgroundColor")
    background = behind if own == "rgba(0, 0, 0, 0)" else own  # transparent: the button's
    assert contrast(colour, background) >= 4.5


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two `rgb(r, g, b)` colours."""

    def luminance(css: str) -> float:
        channels = [int(v) / 255 for v in re.findall(r"\d+", css)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)
