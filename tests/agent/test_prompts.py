from app.agent import prompts
from app.agent.state import CheckResult, PlanDict

PLAN = PlanDict(title="Fix add()", steps=["Change calc.py", "Run the tests"])
FAILED = CheckResult(
    command="make test", passed=False, exit_code=2, output="E   assert -1 == 5", attempts=1
)


def test_plan_renders_numbered_or_as_a_checklist() -> None:
    assert prompts.render_plan(PLAN) == "**Fix add()**\n\n1. Change calc.py\n2. Run the tests"
    assert prompts.render_plan(PLAN, checklist=True).endswith(
        "- [ ] Change calc.py\n- [ ] Run the tests"
    )


def test_system_prompts_explain_untrusted_blocks_and_carry_the_instructions() -> None:
    plan = prompts.plan_system("/w/repo", "Use tabs.", "AGENTS.md")
    code = prompts.implement_system("/w/repo", None, None, "make test")
    for system in (plan, code):
        assert prompts.UNTRUSTED_RULES in system
        assert "/w/repo" in system
    assert "## Repository instructions (from AGENTS.md on the default branch)\n\nUse tabs." in plan
    assert "Repository instructions" not in code
    assert "`make test`" in code
    assert "No test command is known" in prompts.implement_system("/w", None, None, None)


def test_plan_request_carries_the_previous_plan_and_feedback() -> None:
    first = prompts.plan_request("TASK", previous=None, feedback=[])
    assert first == "Plan the work for this task.\n\nTASK"
    again = prompts.plan_request("TASK", previous=PLAN, feedback=["<untrusted>more</untrusted>"])
    assert "Your previous plan:\n**Fix add()**" in again
    assert again.endswith(
        "Reviewers asked for these changes to the plan:\n<untrusted>more</untrusted>"
    )


def test_a_retry_shows_the_failing_output() -> None:
    first = prompts.implement_request("TASK", PLAN, attempt=1, failure=None, notes="")
    assert first.endswith("Implement it now.")
    retry = prompts.implement_request("TASK", PLAN, attempt=2, failure=FAILED, notes="fixed it")
    assert "This is attempt 2" in retry
    assert "(you said: 'fixed it')" in retry
    assert "`make test` failed with exit code 2" in retry
    assert "E   assert -1 == 5" in retry


def test_test_outcomes_in_words() -> None:
    assert prompts.describe_tests(None) == "not run (no test command found)"
    passed = CheckResult(command="pytest", passed=True, exit_code=0, output="", attempts=1)
    assert prompts.describe_tests(passed) == "`pytest` passed"
    assert (
        prompts.describe_tests(FAILED)
        == "`make test` still failing after 1 attempt(s) (exit code 2)"
    )
    request = prompts.pr_request("TASK", PLAN, " a | 1 +", "+x", FAILED)
    assert "Tests: `make test` still failing" in request
    assert "```diff\n+x\n```" in request
