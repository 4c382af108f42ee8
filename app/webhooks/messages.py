"""Everything open-swe says on GitHub in answer to a trigger: named, so tests assert on it.

Templates use `str.format`; values that come from users go through `app.text.github.quote` first.
"""

from __future__ import annotations

HELP = """\
Here is what I understand (put the command alone on the first line of a comment):

| Command | What it does |
|---|---|
| label `open-swe` | plan the change, then wait for approval |
| label `open-swe-auto` | plan and implement without waiting |
| `/approve` | approve the plan waiting on this issue |
| `/revise <what to change>` | revise the waiting plan |
| `/open-swe <instructions>` or `@{slug} <instructions>` | ask for a change (on a pull request: pushed to its branch) |
| `/open-swe stop` | stop the active run |
| `/open-swe retry` | run the last request again |
| `/open-swe status` | show the state of the latest run |
| `/open-swe autofix on` or `off` | on a pull request: fix failing CI checks, or stop doing so |
| `/open-swe help` | show this help |

Only people with write access to the repository can give me commands."""

UNKNOWN_COMMAND = "I did not understand `{word}`.\n\n" + HELP

REFUSED_NO_WRITE = (
    "Sorry @{user}, I only take requests from people with write access to this repository, "
    "so I have not started anything. A maintainer can ask me instead."
)

ALREADY_RUNNING = (
    "I'm already working on this ({run}), so I have not started a second run. "
    "Use `/open-swe stop` to stop it, or wait for it to finish."
)

ALREADY_RUNNING_NOTED = (
    "I'm already working on this ({run}). I have recorded your message for that run."
)

NO_PLAN_WAITING = "There is no plan waiting for approval here, so there is nothing to {verb}."

NOTHING_TO_STOP = "Nothing is running here, so there is nothing to stop."

STOPPED_BY = "stopped by @{user}"  # the reason a stopped run's status comment gives
# Why a run stopped when an event ended it (app.webhooks.endings)
STOPPED_ISSUE_CLOSED = "issue closed by @{user}"
STOPPED_LABEL_REMOVED = "label {label} removed by @{user}"
STOPPED_PULL_CLOSED = "pull request {state} by @{user}"  # closed, or merged
STOPPED_UNINSTALLED = "the App was uninstalled by @{user}"
STOPPED_SUSPENDED = "the App was suspended by @{user}"

PULL_FROM_FORK = (
    "This pull request comes from a fork ({head}), and I can only push to branches of this "
    "repository, so I have not started anything. Push the change yourself, or open the pull "
    "request from a branch here and ask me again."
)

PULL_NOT_OPEN = "This pull request is {state}, so I have not started anything. Reopen it first."

STOPPED = "Stopped ({run}). Use `/open-swe retry` to start again."

NOTHING_TO_RETRY = (
    "There is no earlier run here to retry. Add the `open-swe` label to an issue to start one."
)

STATUS_NONE = "I have not worked on this yet."

STATUS = "Latest run: {run}, **{status}**, requested by @{user}, last updated {updated}."

STATUS_ERROR = "\n\nIt ended with this error: {error}"

SETUP_REQUIRED = (
    "open-swe is not set up yet: open the setup link printed in the server's log ({url}?token=...) "
    "to register the GitHub App, then restart the server."
)

FORM_CONTENT_TYPE = (
    "GitHub sent this delivery as application/x-www-form-urlencoded; open-swe needs JSON. "
    "In the GitHub App's settings, under Webhook, set Content type to application/json."
)

AUTOFIX_SET = "CI autofix is now **{state}** for this pull request{detail}."
AUTOFIX_ON_DETAIL = (
    ": when its checks fail, I push a fix (at most {limit} attempts, never the same failure twice)"
)
AUTOFIX_NOT_PULL = "CI autofix works on pull requests: ask for it on one."
