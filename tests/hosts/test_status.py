"""The status and plan comments: wording, checklist marks, escaping, hidden markers."""

from __future__ import annotations

import re

import pytest

from app.agent.budget import Usage
from app.agent.host import OutcomeStatus, RunOutcome
from app.agent.state import STEP_ORDER, PlanDict
from app.commands import Verb, parse_command
from app.hosts import status
from app.hosts.status import Board, render_plan, render_status

RUN = "run-42"
SLUG = "open-swe-test"
USAGE = Usage(model_calls=3, input_tokens=1000, output_tokens=234, cost_usd=0.0123, seconds=90)


def outcome(state: OutcomeStatus, **fields: object) -> RunOutcome:
    return RunOutcome(state, RUN, USAGE, **fields)  # type: ignore[arg-type]


def lines_of(body: str) -> dict[str, str]:
    """Checklist line per step label."""
    found: dict[str, str] = {}
    for step, label in status.STEP_LABELS.items():
        [line] = [line for line in body.splitlines() if line.startswith("- ") and label in line]
        found[step] = line
    return found


def board_at(step: str, **details: str) -> Board:
    board = Board()
    for name in STEP_ORDER[: STEP_ORDER.index(step) + 1]:
        board.advance(name, details.get(name, f"{name} done"))
    return board


def test_live_status_marks_done_current_and_pending_steps() -> None:
    body = render_status(RUN, board_at("plan", prepare="branch open-swe/issue-1"), USAGE, SLUG)
    assert body.startswith(status.STATUS_MARKER.format(run_id=RUN))
    assert status.HEADER_WORKING in body
    marks = lines_of(body)
    assert (
        marks["prepare"]
        == f"- {status.DONE} {status.STEP_LABELS['prepare']}: branch open-swe/issue-1"
    )
    assert marks["plan"].startswith(f"- {status.DONE}")
    assert marks["approval"] == f"- {status.CURRENT} {status.STEP_LABELS['approval']}"
    assert all(marks[s].startswith(f"- {status.PENDING}") for s in STEP_ORDER[3:])
    assert "`run-42`" in body
    assert "1,234 tokens" in body
    assert "~$0.01" in body
    assert "2 min of work" in body


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0 s"), (59, "59 s"), (90, "2 min"), (3600 + 300, "1 h 5 min")]
)
def test_duration(seconds: float, text: str) -> None:
    assert status.duration(seconds) == text


def test_nothing_reported_yet_makes_prepare_current() -> None:
    marks = lines_of(render_status(RUN, Board(), Usage(), SLUG))
    assert marks["prepare"].startswith(f"- {status.CURRENT}")
    assert marks["plan"].startswith(f"- {status.PENDING}")


def test_waiting_for_approval_says_how_to_answer_in_the_commands_the_front_door_parses() -> None:
    board = board_at("plan")
    board.waiting = True
    body = render_status(RUN, board, USAGE, SLUG)
    assert status.HEADER_WORKING not in body
    assert lines_of(body)["approval"].startswith(f"- {status.WAITING}")
    assert status.APPROVAL_WAITING_DETAIL in body
    commands = re.findall(r"`([^`]+)`", body.split("\n\n")[1])
    parsed = [parse_command(c.replace("<what to change>", "use a loop"), SLUG) for c in commands]
    verbs = [p.verb if p else None for p in parsed]
    assert verbs == [Verb.APPROVE, Verb.APPROVE, Verb.APPROVE, Verb.REVISE]
    assert parsed[-1] is not None
    assert parsed[-1].text == "use a loop"


def test_retry_hint_is_a_retry_command() -> None:
    command = parse_command(status.RETRY_HINT.strip("`"), SLUG)
    assert command is not None
    assert command.verb is Verb.RETRY


def test_succeeded_marks_every_step_done_and_links_the_pull_request() -> None:
    url = "https://github.com/acme/widgets/pull/7"
    body = render_status(
        RUN,
        board_at("publish"),
        USAGE,
        SLUG,
        outcome("succeeded", url=url, tests_command="pytest -q", tests_passed=True),
    )
    assert status.HEADER_SUCCEEDED.format(link=url) in body
    assert "Tests: `pytest -q` passed." in body
    assert all(line.startswith(f"- {status.DONE}") for line in lines_of(body).values())
    assert status.HEADER_WORKING not in body


def test_succeeded_without_test_command_says_none_were_run() -> None:
    body = render_status(RUN, board_at("publish"), USAGE, SLUG, outcome("succeeded", url="u"))
    assert status.TESTS_NOT_RUN in body


def test_tests_failing_links_the_draft_and_says_how_to_ask_for_a_fix() -> None:
    url = "https://github.com/acme/widgets/pull/7"
    body = render_status(
        RUN,
        board_at("publish"),
        USAGE,
        SLUG,
        outcome("tests_failing", url=url, tests_command="make test", tests_passed=False),
    )
    assert status.HEADER_TESTS_FAILING.format(link=url, slug=SLUG) in body


def test_tests_failing_after_a_follow_up_names_the_branch_it_pushed_to() -> None:
    body = render_status(
        RUN,
        board_at("publish"),
        USAGE,
        SLUG,
        outcome("tests_failing", branch="feature/x", tests_command="make test", tests_passed=False),
    )
    assert status.HEADER_TESTS_FAILING_BRANCH.format(branch="`feature/x`", slug=SLUG) in body
    assert "Draft pull request opened" not in body


def test_no_changes_says_there_is_no_pull_request_and_what_to_do() -> None:
    body = render_status(RUN, board_at("publish"), USAGE, SLUG, outcome("no_changes"))
    assert status.HEADER_NO_CHANGES in body
    assert status.NEXT_NO_CHANGES in body
    assert "pull/" not in body


def test_failure_renders_the_reason_verbatim_and_what_to_do_next() -> None:
    reason = "ANTHROPIC_API_KEY is not set: the plan model needs it"
    body = render_status(RUN, Board(), Usage(), SLUG, outcome("failed", reason=reason))
    assert reason in body
    assert status.NEXT_SET_VARIABLE.format(variable="ANTHROPIC_API_KEY") in body
    marks = lines_of(body)
    assert marks["prepare"].startswith(f"- {status.FAILED}")
    assert status.HEADER_WORKING not in body


def test_failure_marks_the_step_it_happened_in() -> None:
    body = render_status(
        RUN, board_at("approval"), USAGE, SLUG, outcome("failed", reason="sandbox error: gone")
    )
    marks = lines_of(body)
    assert marks["approval"].startswith(f"- {status.DONE}")
    assert marks["implement"].startswith(f"- {status.FAILED}")
    assert marks["verify"].startswith(f"- {status.PENDING}")
    assert status.NEXT_RETRY in body


def test_multi_line_reason_puts_the_output_in_a_code_block() -> None:
    reason = "the setup script failed with exit code 1:\nnpm ERR! <boom> @everyone"
    body = render_status(RUN, board_at("prepare"), USAGE, SLUG, outcome("failed", reason=reason))
    assert (
        "the setup script failed with exit code 1:\n\n```text\nnpm ERR! <boom> @everyone\n```"
        in body
    )


@pytest.mark.parametrize(
    ("reason", "variable"),
    [
        ("budget exhausted: cost (~$10.01 of $10.00)", "OPEN_SWE_MAX_COST_USD"),
        ("budget exhausted: model calls (200 of 200)", "OPEN_SWE_MAX_MODEL_CALLS"),
        ("budget exhausted: tokens (3,000,001 of 3,000,000)", "OPEN_SWE_MAX_TOKENS_PER_RUN"),
        ("budget exhausted: time (60 minutes)", "OPEN_SWE_MAX_RUN_MINUTES"),
    ],
)
def test_budget_failures_name_the_limit_to_raise(reason: str, variable: str) -> None:
    assert status.next_step(reason) == status.NEXT_RAISE_LIMIT.format(variable=variable)


def test_next_step_for_workflow_permission_and_for_anything_else() -> None:
    assert status.next_step("needs the `workflows` permission to push") == status.NEXT_WORKFLOWS
    assert status.next_step("internal error: KeyError: 'x'") == status.NEXT_RETRY


def test_stopped_and_waiting_outcomes() -> None:
    stopped = render_status(
        RUN, board_at("approval"), USAGE, SLUG, outcome("stopped", reason="stopped by alice")
    )
    assert status.HEADER_STOPPED.format(reason="stopped by alice") in stopped
    assert lines_of(stopped)["implement"].startswith(f"- {status.STOPPED}")
    assert status.NEXT_RETRY in stopped
    waiting = render_status(RUN, board_at("plan"), USAGE, SLUG, outcome("waiting"))
    assert "Waiting for approval" in waiting
    assert lines_of(waiting)["approval"].startswith(f"- {status.WAITING}")


def test_going_back_forgets_what_came_after() -> None:
    board = board_at("verify", verify="tests failed")
    board.advance("implement", "second attempt")
    assert board.reached == STEP_ORDER.index("implement")
    assert "verify" not in board.details
    assert board.details["implement"] == "second attempt"


def test_board_round_trips_through_the_comment_and_cannot_close_it_early() -> None:
    board = board_at("plan", prepare="x --> <!-- open-swe:state {} --> & <b>")
    body = render_status(RUN, board, USAGE, SLUG)
    assert body.count("-->") == 2  # the two markers' own ends, nothing from the detail
    assert Board.load(body) == board
    assert status.status_run_id(body) == RUN


@pytest.mark.parametrize(
    "state",
    [
        "",
        "<!-- open-swe:state not json -->",
        '<!-- open-swe:state {"reached": 99, "details": {}} -->',
        '<!-- open-swe:state {"reached": 1, "details": []} -->',
    ],
)
def test_board_load_refuses_missing_or_broken_state(state: str) -> None:
    assert Board.load(f"hello {state}") is None


def test_board_load_keeps_only_known_steps() -> None:
    body = '<!-- open-swe:state {"reached": 0, "details": {"prepare": "ok", "evil": "x", "plan": 3}} -->'
    assert Board.load(body) == Board(0, {"prepare": "ok"}, False)


def test_inline_escapes_markup_and_mentions_but_keeps_code_spans() -> None:
    text = "see <img src=x onerror=y> ![i](http://t/p.png) [a](http://e) @alice and `@bob <x>`"
    result = status.inline(text)
    assert "\\<img" in result  # shown as text, not a tag
    assert not re.search(r"(?<!\\)<img", result)
    assert "![" not in result
    assert not re.search(r"(?<!\\)\]\(", result)  # no link: every bracket is escaped
    assert "@\u200balice" in result
    assert "`@bob <x>`" in result
    assert "\n" not in status.inline("a\nb\n\nc")


def test_inline_and_code_are_bounded() -> None:
    assert len(status.inline("x" * 1000)) == status.MAX_DETAIL_CHARS
    assert status.code("a`b") == "``a`b``"
    assert status.code("`x`") == "`` `x` ``"


def test_block_uses_a_fence_longer_than_any_in_the_text() -> None:
    result = status.block("```\nnot the end\n```")
    assert result.startswith("````text\n")
    assert result.endswith("\n````")


def test_plan_comment_lists_steps_and_how_to_answer() -> None:
    plan = PlanDict(title="Fix <add>", steps=["Edit `calc.py`", "Ping @carol", "Run tests"])
    body = render_plan(RUN, plan, revision=2, awaiting_approval=True, slug=SLUG)
    mark = status.plan_mark(body)
    assert mark == status.PlanMark(RUN, 2, status.plan_digest(plan, True))
    assert "### 📋 Plan: Fix \\<add\\>" in body
    assert "1. Edit `calc.py`\n2. Ping @\u200bcarol\n3. Run tests" in body
    assert (
        status.PLAN_AWAITING.format(approve=status.approve_hint(SLUG), revise=status.REVISE_HINT)
        in body
    )
    auto = render_plan(RUN, plan, revision=1, awaiting_approval=False, slug=SLUG)
    assert status.PLAN_AUTO in auto
    assert "/approve" not in auto


def test_plan_digest_depends_on_content_and_approval_mode() -> None:
    plan = PlanDict(title="T", steps=["a"])
    assert status.plan_digest(plan, True) != status.plan_digest(plan, False)
    assert status.plan_digest(plan, True) != status.plan_digest(
        PlanDict(title="T", steps=["b"]), True
    )


def test_long_plans_are_cut() -> None:
    plan = PlanDict(title="T", steps=[f"step {i}" for i in range(60)])
    body = render_plan(RUN, plan, revision=1, awaiting_approval=False, slug=SLUG)
    assert "50. step 49" in body
    assert "step 50" not in body
    assert "(10 more)" in body
