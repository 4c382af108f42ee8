"""Commit messages: the model's words, unable to ping people or close other issues."""

from __future__ import annotations

from app.agent.nodes.delivery import commit_message


def test_a_commit_message_closes_no_issue_but_the_runs_own() -> None:
    """Issue 11: closing keywords in commit messages were not filtered (merged into the
    default branch, a commit's "fixes #99" closes #99)."""
    message = commit_message(
        "Fix add() (fixes #99)",
        "Closes other/repo#5 and resolves #7.\nThanks @alice.",
        "Carol <1+carol@users.noreply.github.com>",
        repo="acme/widgets",
        issue_number=7,
    )
    assert message == (
        "Fix add() (refs #99)\n\nrefs other/repo#5 and resolves #7.\nThanks @\u200balice."
        "\n\nCo-authored-by: Carol <1+carol@users.noreply.github.com>\n"
    )


def test_a_follow_up_commit_closes_nothing() -> None:
    message = commit_message("Fixes #7", "", None, repo="acme/widgets", issue_number=None)
    assert message == "refs #7\n"
