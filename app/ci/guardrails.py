"""What a fix must not do unseen: delete, skip or weaken tests, or edit workflow files (unless
the failure is in them). Found by comparing the pull request's files before the fix run and
after it; every finding is listed in the CI-fix comment for a reviewer.

A file's diff against the base branch (GitHub's `patch`) before and after the fix: the lines
that the fix added to it are the lines of the later patch that the earlier one lacks.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.github.types import PullFile

WORKFLOWS = ".github/workflows/"
MAX_PATCH_CHARS = 20_000  # of each file kept between the two looks
_TEST_FILE = re.compile(
    r"(?:^|/)(?:tests?/|test_[^/]*$|[^/]*_test\.\w+$|[^/]*\.(?:test|spec)\.\w+$|conftest\.py$)"
)
_SKIP = re.compile(
    r"(?:@pytest\.mark\.(?:skip|xfail)|pytest\.(?:skip|xfail)\(|@unittest\.skip|"
    r"\.skip\(|\bx(?:it|describe|test)\(|\bt\.Skip|#\[ignore\]|@Disabled|@Ignore)"
)
_ASSERTION = re.compile(r"(?:\bassert|\bexpect\(|\.assert\w*\(|self\.assert|\bt\.(?:Error|Fatal))")
_TEST_DEFINITION = re.compile(r"^\s*(?:async\s+)?(?:def test|func Test|(?:it|test)\(|fn test_)")


@dataclass(frozen=True)
class Snapshot:
    """A watched file (a test or workflow file) as the pull request had it."""

    filename: str
    status: str
    patch: str

    def as_json(self) -> list[str]:
        return [self.filename, self.status, self.patch]

    @classmethod
    def from_json(cls, value: Sequence[str]) -> Snapshot:
        return cls(str(value[0]), str(value[1]), str(value[2]))


def is_test_file(name: str) -> bool:
    return bool(_TEST_FILE.search(name))


def watched(files: Iterable[PullFile]) -> list[Snapshot]:
    """The test and workflow files of a pull request, to compare after a fix."""
    return [
        Snapshot(f.filename, f.status, f.patch[:MAX_PATCH_CHARS])
        for f in files
        if is_test_file(f.filename) or f.filename.startswith(WORKFLOWS)
    ]


def review(
    before: Iterable[Snapshot], after: Iterable[Snapshot], *, failing_workflows: Iterable[str] = ()
) -> list[str]:
    """What the fix did to tests and workflows, one line per finding (plain text)."""
    earlier = {s.filename: s for s in before}
    later = list(after)
    allowed = set(failing_workflows)
    findings = [
        f"deletes the test file {s.filename}"
        for s in earlier.values()
        if s.status == "added"
        and is_test_file(s.filename)
        and s.filename not in {n.filename for n in later}
    ]
    for now in later:
        was = earlier.get(now.filename)
        if was is not None and (was.status, was.patch) == (now.status, now.patch):
            continue  # untouched by the fix
        added, removed = _changed_lines(was.patch if was else "", now.patch)
        name = now.filename
        if name.startswith(WORKFLOWS):
            if name not in allowed:
                findings.append(f"edits the workflow file {name}")
            continue
        if now.status == "removed":
            findings.append(f"deletes the test file {name}")
            continue
        if any(_SKIP.search(line) for line in added):
            findings.append(f"skips tests in {name}")
        if sum(1 for line in removed if _TEST_DEFINITION.search(line)) > sum(
            1 for line in added if _TEST_DEFINITION.search(line)
        ):
            findings.append(f"removes tests from {name}")
        elif sum(1 for line in removed if _ASSERTION.search(line)) > sum(
            1 for line in added if _ASSERTION.search(line)
        ):
            findings.append(f"removes or changes assertions in {name}")
    return findings


def _changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(lines the fix added, lines the fix removed), read from the two patches against base."""

    def lines(patch: str, sign: str) -> Counter[str]:
        return Counter(
            line[1:]
            for line in patch.splitlines()
            if line.startswith(sign) and line[:3] != sign * 3
        )

    added = lines(after, "+") - lines(before, "+")
    removed = lines(after, "-") - lines(before, "-")
    # A line the PR had added and the fix took away shows as a "+" line gone missing.
    removed += lines(before, "+") - lines(after, "+")
    return list(added.elements()), list(removed.elements())
