"""Comments, review comments and reviews that address open-swe: commands for a thread's runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import anyio.to_thread

from app.commands import Command, Verb, addresses_bot, parse_command
from app.github.types import ReactionTarget
from app.hosts.status import MAX_REASON_CHARS, inline
from app.runs.models import NewCommand, Run
from app.text.github import quote
from app.webhooks import messages
from app.webhooks.context import HandlerContext
from app.webhooks.event import Comment, Event
from app.webhooks.gate import gate
from app.webhooks.routing import Outcome, Router
from app.webhooks.triggers import start_run

router = Router()
NOT_ADDRESSED = "the text does not address open-swe"


def addresses_app(event: Event, slug: str | None) -> bool:
    comment = event.comment
    return comment is not None and addresses_bot(comment.body, slug)


@router.route("issue_comment", "created", wants=addresses_app, otherwise=NOT_ADDRESSED)
@router.route(
    "pull_request_review_comment", "created", wants=addresses_app, otherwise=NOT_ADDRESSED
)
@router.route("pull_request_review", "submitted", wants=addresses_app, otherwise=NOT_ADDRESSED)
async def on_comment(ctx: HandlerContext, event: Event) -> Outcome:
    comment, thread = event.comment, event.thread
    if comment is None or thread is None:
        return Outcome("ignored", "no comment on an issue or pull request")
    slug = await ctx.slug.resolve()
    command = await anyio.to_thread.run_sync(parse_command, comment.body, slug)
    if command is None:
        return Outcome("ignored", NOT_ADDRESSED)
    if event.is_bot:
        return Outcome("ignored", f"sent by a bot ({event.sender})")
    active = await ctx.store.active_run(thread)
    if command.bare and not await ctx.lifecycle.plan_waits(active):
        # A bare /approve is ordinary talk unless a plan waits: no answer, no permission check.
        return Outcome("ignored", f"bare /{command.text or command.verb} with no plan waiting")
    if (refusal := await gate(ctx, event)) is not None:
        return refusal
    await ctx.react(event, _acknowledged(event, comment))
    return await ACTIONS[command.verb](ctx, event, command, active)


def _acknowledged(event: Event, comment: Comment) -> ReactionTarget:
    """What the `eyes` reaction goes on. Reviews cannot carry reactions: the PR gets it."""
    if comment.source == "review":
        assert event.issue_number is not None
        return ReactionTarget("issue", event.issue_number)
    return ReactionTarget(comment.source, comment.id)


def _accepted(event: Event, command: Command) -> NewCommand:
    """The command as accepted, its text snapshotted: later edits of the comment change
    nothing."""
    comment, thread, sender = event.comment, event.thread, event.sender
    assert comment is not None
    assert thread is not None
    assert sender is not None
    return NewCommand(
        thread=thread,
        verb=command.verb.value,
        text=command.text,
        author=sender,
        source=comment.source,
        delivery_id=event.delivery_id,
        comment_id=comment.id,
        path=comment.path,
        line=comment.line,
    )


async def _record(
    ctx: HandlerContext, event: Event, command: Command, *, run_id: str | None, consumed: bool
) -> None:
    """Put the command in the thread's inbox (once per delivery) before a run starts: for it
    to take (`consumed` False), or as the record of what started it."""
    accepted = dataclasses.asdict(_accepted(event, command))
    await ctx.store.add_command(**accepted, run_id=run_id, consumed=consumed)


Action = Callable[[HandlerContext, Event, Command, Run | None], Awaitable[Outcome]]


async def _help(ctx: HandlerContext, event: Event, command: Command, active: Run | None) -> Outcome:
    await ctx.reply_once(event, messages.HELP.format(slug=ctx.slug.known or "open-swe"))
    return Outcome("replied", "help")


async def _unknown(
    ctx: HandlerContext, event: Event, command: Command, active: Run | None
) -> Outcome:
    word = quote(command.text)
    body = messages.UNKNOWN_COMMAND.format(word=word, slug=ctx.slug.known or "open-swe")
    await ctx.reply_once(event, body)
    return Outcome("replied", f"unknown command {word!r}")


async def _status(
    ctx: HandlerContext, event: Event, command: Command, active: Run | None
) -> Outcome:
    assert event.thread is not None
    run = active or await ctx.store.latest_run(event.thread)
    if run is None:
        body = messages.STATUS_NONE
    else:
        body = messages.STATUS.format(
            run=ctx.run_link(run),
            status=run.status,
            user=run.requested_by,
            updated=run.updated_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
        if run.error:
            # Inert, as on the status comment: a reason can quote output the agent produced.
            body += messages.STATUS_ERROR.format(error=inline(run.error, MAX_REASON_CHARS))
    await ctx.reply_once(event, body)
    return Outcome("replied", "status")


async def _stop(ctx: HandlerContext, event: Event, command: Command, active: Run | None) -> Outcome:
    """Stop wins over everything: a working run is stopped and its job cancelled, a waiting
    plan answered with the stop (app.runs.lifecycle.Lifecycle.stop)."""
    if active is None:
        await ctx.reply_once(event, messages.NOTHING_TO_STOP)
        return Outcome("replied", "nothing to stop")
    assert event.sender is not None
    reason = messages.STOPPED_BY.format(user=event.sender)
    await ctx.lifecycle.stop(active, _accepted(event, command), reason)
    await ctx.reply_once(event, messages.STOPPED.format(run=ctx.run_link(active)))
    return Outcome("stopped", active.id)


async def _retry(
    ctx: HandlerContext, event: Event, command: Command, active: Run | None
) -> Outcome:
    assert event.thread is not None
    if active is not None:
        await ctx.reply_once(event, messages.ALREADY_RUNNING.format(run=ctx.run_link(active)))
        return Outcome("already-running", active.id)
    latest = await ctx.store.latest_run(event.thread)
    if latest is None:
        await ctx.reply_once(event, messages.NOTHING_TO_RETRY)
        return Outcome("replied", "nothing to retry")
    await _record(ctx, event, command, run_id=latest.id, consumed=True)
    return await start_run(ctx, event, auto_approve=latest.auto_approve)


async def _answer_plan(
    ctx: HandlerContext, event: Event, command: Command, active: Run | None
) -> Outcome:
    """approve / revise: for the run whose plan waits, parked or still parking."""
    if active is None or not await ctx.lifecycle.plan_waits(active):
        await ctx.reply_once(event, messages.NO_PLAN_WAITING.format(verb=command.verb.value))
        return Outcome("replied", "no plan waiting")
    if not await ctx.lifecycle.hand_over(active, _accepted(event, command)):
        return Outcome("kept", f"{command.verb.value} {active.id}: taken once it parks")
    return Outcome("resumed", f"{command.verb.value} {active.id}")


async def _instruct(
    ctx: HandlerContext, event: Event, command: Command, active: Run | None
) -> Outcome:
    """Free text: a follow-up for the active run, or a new run on this thread."""
    if active is not None:
        if await ctx.lifecycle.hand_over(active, _accepted(event, command)):  # plan feedback
            return Outcome("resumed", f"instruct {active.id}")
        await ctx.reply_once(event, messages.ALREADY_RUNNING_NOTED.format(run=ctx.run_link(active)))
        return Outcome("already-running", active.id)
    if not event.is_pull_request:
        # On an issue the run reads the comment with the rest of the issue, and plans first:
        # recorded as taken, so it is not delivered a second time as a follow-up.
        await _record(ctx, event, command, run_id=None, consumed=True)
        return await start_run(ctx, event, auto_approve=False)
    if (refusal := await _cannot_change(ctx, event)) is not None:
        return refusal
    # A follow-up on a pull request changes its branch directly; the run takes the request
    # from the inbox (with any that arrive before it starts).
    await _record(ctx, event, command, run_id=None, consumed=False)
    return await start_run(ctx, event, auto_approve=True)


async def _cannot_change(ctx: HandlerContext, event: Event) -> Outcome | None:
    """None when open-swe can push to the pull request's branch; else the refusal, answered."""
    number = event.issue_number
    assert number is not None, "gated before use"
    pull = await ctx.on_thread(event, lambda client, repo: client.get_pull(repo, number))
    if pull.is_fork:
        head = quote(pull.head_repo or "deleted", limit=100)
        await ctx.reply_once(event, messages.PULL_FROM_FORK.format(head=f"`{head}`"))
        return Outcome("refused", f"pull request #{number} comes from a fork")
    if pull.state != "open":
        await ctx.reply_once(event, messages.PULL_NOT_OPEN.format(state=pull.state))
        return Outcome("refused", f"pull request #{number} is {pull.state}")
    return None


async def _autofix(
    ctx: HandlerContext, event: Event, command: Command, active: Run | None
) -> Outcome:
    """`/open-swe autofix on|off`: the pull request's own setting, over the repository's."""
    repo, number = event.repo, event.issue_number
    assert repo is not None
    assert number is not None
    if not event.is_pull_request:
        await ctx.reply_once(event, messages.AUTOFIX_NOT_PULL)
        return Outcome("replied", "autofix on an issue")
    on = command.text == "on"
    await ctx.store.save_ci_pull(repo, number, autofix=on)
    detail = messages.AUTOFIX_ON_DETAIL.format(limit=ctx.max_ci_fix_attempts) if on else ""
    await ctx.reply_once(event, messages.AUTOFIX_SET.format(state=command.text, detail=detail))
    return Outcome("replied", f"autofix {command.text}")


ACTIONS: dict[Verb, Action] = {
    Verb.HELP: _help,
    Verb.UNKNOWN: _unknown,
    Verb.STATUS: _status,
    Verb.STOP: _stop,
    Verb.RETRY: _retry,
    Verb.APPROVE: _answer_plan,
    Verb.REVISE: _answer_plan,
    Verb.INSTRUCT: _instruct,
    Verb.AUTOFIX: _autofix,
}
