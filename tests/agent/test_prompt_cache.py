"""The coding agent's prompt caching, as the fake model accounts for it from the request's
`cache_control` marks (what Anthropic reports in usage: cache reads and writes)."""

from __future__ import annotations

from pathlib import Path

from app.agent import agents, workspace
from app.agent.budget import Budget
from app.agent.host import Checkout
from app.agent.models import chat_model
from app.config import Settings
from app.sandbox.local import LocalProvider
from app.text.redact import Redactor
from tests.agent.conftest import REPO_FILES, make_repo
from tests.fakes.model import ScriptedModel, offers, text, tool


async def test_each_call_reads_the_conversation_so_far_from_the_cache(
    settings: Settings, model: ScriptedModel, provider: LocalProvider, tmp_path: Path
) -> None:
    source = make_repo(tmp_path / "source", REPO_FILES)
    sandbox = provider.acquire({"test": "cache"})
    repo_dir, *_ = await workspace.clone(sandbox, Checkout(url=str(source)), "open-swe/x")
    listings = [tool("execute", command=f"seq 1 {200 * n}") for n in range(1, 4)]
    model.on(offers("edit_file"), *listings, text("Done."))

    await agents.implement(
        settings=settings,
        redactor=Redactor(()),
        sandbox=sandbox,
        repo_dir=repo_dir,
        budget=Budget(settings, None, model="claude-sonnet-4-5"),
        model=chat_model(settings, "implement"),
        summarizer=chat_model(settings, "summarize"),
        system="You fix bugs.",
        request="Fix add().",
    )

    assert len(model.cache_usage) == 4
    (first_read, first_written), *later = model.cache_usage
    assert first_read == 0  # nothing cached yet: the prefix is written
    assert first_written > 0
    sizes = [len(r.raw) // 4 for r in model.requests]
    for (read, written), previous in zip(later, sizes, strict=False):
        assert read > 0.9 * previous  # everything the previous call sent, read back
        assert written > 0  # and what this call added, written


async def test_requests_without_marks_are_not_cached(model: ScriptedModel) -> None:
    assert model._cache_use({"messages": [{"role": "user", "content": "hi"}]}) == (0, 0)
    marked = {
        "system": [{"type": "text", "text": "x" * 400, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
    }
    read, written = model._cache_use(marked)
    assert read == 0
    assert written > 90
    assert model._cache_use(marked) == (written, 0)
