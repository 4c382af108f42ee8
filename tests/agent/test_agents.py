"""The coding agent's context management, with the real middleware and the scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from app.agent import agents, workspace
from app.agent.budget import Budget
from app.agent.host import Checkout
from app.agent.models import chat_model
from app.config import Settings
from app.sandbox.local import LocalProvider
from app.text.redact import Redactor
from tests.agent.conftest import REPO_FILES, make_repo, make_settings, script_pr
from tests.fakes.model import ModelRequest, ScriptedModel, offers, text, tool


def is_summary_request(request: ModelRequest) -> bool:
    return not request.tool_names and "Context Extraction Assistant" in request.text


async def test_long_histories_are_summarised(
    settings: Settings,
    model: ScriptedModel,
    provider: LocalProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agents, "SUMMARIZE_AT_TOKENS", 3_000)
    monkeypatch.setattr(agents, "KEEP_MESSAGES", 2)
    source = make_repo(tmp_path / "source", REPO_FILES)
    sandbox = provider.acquire({"test": "summary"})
    repo_dir, *_ = await workspace.clone(sandbox, Checkout(url=str(source)), "open-swe/x")
    summary = text("SUMMARY: calc.py subtracts; tests in test_calc.py.")
    model.on(is_summary_request, summary, repeat_last=True)
    listings = [tool("execute", command="seq 1 400") for _ in range(6)]  # ~1,400 chars each
    model.on(offers("edit_file"), *listings, text("Done."))
    budget = Budget(settings, None, model="claude-sonnet-4-5")

    notes = await agents.implement(
        settings=settings,
        redactor=Redactor(()),
        sandbox=sandbox,
        repo_dir=repo_dir,
        budget=budget,
        model=chat_model(settings, "implement"),
        summarizer=chat_model(settings, "summarize"),
        system="You fix bugs.",
        request="Fix add().",
    )

    assert notes == "Done."
    summaries = [r for r in model.requests if is_summary_request(r)]
    assert summaries, "the history was never summarised"
    last = model.requests_offering("edit_file")[-1]
    assert "SUMMARY: calc.py subtracts" in last.text
    assert len(last.body["messages"]) < 2 * 6  # older turns were replaced by the summary
    assert budget.usage.model_calls == len(model.requests)  # summaries are counted too


async def test_the_pull_request_text_is_bounded_by_what_the_budget_has_left(
    tmp_path: Path, model: ScriptedModel
) -> None:
    """Hard caps: the structured-output call gets no more output tokens than remain."""
    settings = make_settings(tmp_path, model, max_tokens_per_run=40_000)
    script_pr(model)
    budget = Budget(settings, None, model="claude-sonnet-4-5")
    spent = {"input_tokens": 1_000, "output_tokens": 50, "total_tokens": 1_050}
    for _ in range(30):  # 31,500 spent; the next call foreseen at ~1,050: 7,450 left to write
        budget.record(AIMessage("ok", usage_metadata=spent))  # type: ignore[arg-type]

    written = await agents.write_pull_request(
        budget=budget, model=chat_model(settings, "summarize"), request="Describe the change."
    )

    assert written.title == "Fix add() to return the sum"
    [request] = model.requests_offering("PullRequestText")
    assert request.body["max_tokens"] == 40_000 - 31_500 - 1_050  # not the model's 64,000
