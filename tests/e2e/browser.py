"""A real browser for the dashboard's tests: Playwright driving Debian's Chromium.

Playwright comes from PyPI; its own browser downloads do not work here, so it launches the
system's `chromium` (installed by .ci/run) through its executable path, headless, with
everything that would reach out to Google turned off. Pages opened through `Browser.page()`
are photographed when the test fails: the PNGs go to test-artifacts/screenshots/ (ignored by
git), and the failure report names them. A script error, or anything the Content-Security-
Policy refused, fails the test.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser as PlaywrightBrowser
from playwright.async_api import BrowserContext, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"  # Debian's package
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 60_000  # any one expectation (a run takes seconds; the machine may be loaded)


class Browser:
    """Browser contexts (one per person: their own cookies) and their pages."""

    def __init__(self, browser: PlaywrightBrowser) -> None:
        self._browser = browser
        self.pages: list[tuple[str, Page]] = []
        self.problems: list[str] = []  # script errors and Content-Security-Policy refusals

    async def page(self, who: str) -> Page:
        """A new page in a fresh context: a person with their own cookies."""
        context: BrowserContext = await self._browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", lambda message: self._console(message.type, message.text))
        self.pages.append((who, page))
        return page

    def _console(self, kind: str, message: str) -> None:
        if kind == "error" and "Content Security Policy" in message:
            self.problems.append(message)

    async def screenshots(self, test_name: str) -> list[str]:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "_", test_name)
        saved: list[str] = []
        for index, (who, page) in enumerate(self.pages):
            if page.is_closed():
                continue
            path = SCREENSHOTS / f"{stem}-{index}-{who}.png"
            try:
                await page.screenshot(path=str(path), full_page=True)
            except Exception as exc:  # a page that cannot be shot must not hide the failure
                saved.append(f"{path}: not taken ({type(exc).__name__}: {exc})")
            else:
                saved.append(str(path))
        return saved


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    executable = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        wrapper = Browser(launched)
        try:
            yield wrapper
        finally:
            report = request.node.stash.get(CALL_REPORT, None)
            if report is not None and report.passed:
                assert wrapper.problems == [], "the pages had errors"
            if report is not None and report.failed:
                paths = await wrapper.screenshots(request.node.name)
                report.sections.append(("screenshots", "\n".join(paths) or "(no page open)"))
            await launched.close()


CALL_REPORT = pytest.StashKey[pytest.TestReport]()


def chromium() -> str:
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if found is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium (.ci/run does)")
    return found


def remember_call_report(item: pytest.Item, report: pytest.TestReport) -> None:
    """Called from the conftest's makereport hook: the browser fixture reads it at teardown."""
    if report.when == "call":
        item.stash[CALL_REPORT] = report
