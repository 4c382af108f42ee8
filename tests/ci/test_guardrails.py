"""What a fix did to tests and workflows, from the pull request's files before and after it."""

from __future__ import annotations

from app.ci.guardrails import Snapshot, is_test_file, review, watched
from app.github.types import PullFile

TEST_PATCH = (
    "@@ -1,3 +1,4 @@\n def test_add():\n-    assert add(2, 3) == -1\n+    assert add(2, 3) == 5\n"
)


def snap(name: str, patch: str = "", status: str = "modified") -> Snapshot:
    return Snapshot(name, status, patch)


def test_test_and_workflow_files_are_watched() -> None:
    files = [
        PullFile("calc.py", "modified", 1, 1, "+x"),
        PullFile("tests/test_calc.py", "modified", 1, 1, TEST_PATCH),
        PullFile(".github/workflows/ci.yml", "modified", 1, 0, "+y"),
        PullFile("web/app.spec.ts", "added", 3, 0, "+z"),
    ]
    assert [s.filename for s in watched(files)] == [
        "tests/test_calc.py",
        ".github/workflows/ci.yml",
        "web/app.spec.ts",
    ]
    assert is_test_file("pkg/calc_test.go")
    assert is_test_file("conftest.py")
    assert not is_test_file("contest.py")
    assert Snapshot.from_json(watched(files)[0].as_json()) == watched(files)[0]


def test_an_untouched_pull_request_has_no_findings() -> None:
    before = [snap("tests/test_calc.py", TEST_PATCH)]
    assert review(before, before) == []


def test_skipping_a_test_is_found() -> None:
    after = [snap("tests/test_calc.py", TEST_PATCH + "+@pytest.mark.skip(reason='flaky')\n")]
    assert review([snap("tests/test_calc.py", TEST_PATCH)], after) == [
        "skips tests in tests/test_calc.py"
    ]


def test_removing_a_test_or_an_assertion_is_found() -> None:
    removed_test = "@@\n-def test_sub():\n-    assert sub(3, 2) == 1\n"
    assert review([], [snap("test_calc.py", removed_test)]) == ["removes tests from test_calc.py"]
    weakened = "@@\n-    assert add(2, 3) == 5\n+    pass\n"
    assert review([], [snap("test_calc.py", weakened)]) == [
        "removes or changes assertions in test_calc.py"
    ]


def test_deleting_a_test_file_is_found_whether_base_had_it_or_the_pull_request_added_it() -> None:
    assert review([], [snap("tests/test_old.py", status="removed")]) == [
        "deletes the test file tests/test_old.py"
    ]
    added = snap("tests/test_new.py", "+def test_new(): ...", status="added")
    assert review([added], []) == ["deletes the test file tests/test_new.py"]


def test_a_workflow_edit_is_found_unless_the_failure_is_in_that_workflow() -> None:
    after = [snap(".github/workflows/ci.yml", "+    runs-on: ubuntu-24.04\n")]
    assert review([], after) == ["edits the workflow file .github/workflows/ci.yml"]
    assert review([], after, failing_workflows=[".github/workflows/ci.yml"]) == []
