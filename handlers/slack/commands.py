"""The slash command (`/cx` by default): acknowledge at once, run the one grammar, answer the caller.

The text goes to :func:`cxbot.dispatch.run_text` untouched (mentions arrive as `<@U123|name>`, which
the grammar understands); the reply is rendered by :func:`handlers.slack.renderers.reply_message`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from cxbot.authz import Actor, teams_of
from cxbot.commands import CommandError, parse
from cxbot.dispatch import Reply, Where, run_text
from handlers.slack.deps import SlackDeps, log
from handlers.slack.errors import SlackPermanentError, SlackTransientError
from handlers.slack.renderers import new_case_modal, reply_message

FAILED = "Sorry, that did not work; the error is in cxbot's log. Nothing was changed."


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def cx_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()  # inside Slack's 3 seconds, before any database work
        if asks_for_form(command.get("text") or ""):
            await open_new_case_form(deps, command, respond)
            return
        reply = await run_command(deps, command)
        await send_reply(respond, reply)

    app.command(deps.runtime.config.slash_command)(cx_command)


async def run_command(deps: SlackDeps, command: dict[str, Any]) -> Reply:
    """Run the text for the user in the channel; an unexpected failure becomes a polite reply."""
    actor = Actor(user_id=command["user_id"], platform="slack", display=command.get("user_name") or None)
    where = Where(platform="slack", channel=command.get("channel_id") or None)
    try:
        return await run_text(deps.runtime, command.get("text") or "", actor=actor, where=where)
    except Exception:
        log.exception("slash command %r failed", command.get("text"))
        return Reply(FAILED, ok=False)


async def send_reply(respond: AsyncRespond, reply: Reply, **extra: Any) -> None:
    try:
        await respond(**reply_message(reply), **extra)
    except Exception:  # the command already ran; a lost reply must not look like a failure to Slack
        log.exception("could not answer through response_url")


def asks_for_form(text: str) -> bool:
    """`/cx new` with nothing after it: Slack has a form for that, where the console needs the text."""
    try:
        command = parse(text)
    except CommandError:
        return False
    return command.verb == "new" and not command.args


async def open_new_case_form(deps: SlackDeps, command: dict[str, Any], respond: AsyncRespond) -> None:
    """Open the new-case modal on the command's trigger_id; the submission is handled in actions."""
    config = deps.runtime.config
    actor = Actor(user_id=command["user_id"], platform="slack")
    mine = teams_of(config, actor)
    view = new_case_modal(
        teams=[(team.key, team.name) for team in config.teams],
        touchpoints=[(tp.key, tp.name or tp.key) for tp in config.touchpoints],
        channel=command.get("channel_id") or None,
        team=mine[0] if len(mine) == 1 else None,
    )
    try:
        await deps.client.open_view(trigger_id=command["trigger_id"], view=view)
    except (SlackTransientError, SlackPermanentError) as error:
        log.warning("could not open the new-case modal: %s", error)
        await send_reply(respond, Reply(f"Could not open the form ({error}); try again.", ok=False))
