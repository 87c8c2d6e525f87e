"""The slash command (`/cx` by default): acknowledge at once, run the one grammar, answer the caller.

The text goes to :func:`cxbot.dispatch.run_text` untouched (mentions arrive as `<@U123|name>`, which
the grammar understands); the reply is rendered by :func:`handlers.slack.renderers.reply_message`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from cxbot.authz import Actor
from cxbot.dispatch import Reply, Where, run_text
from handlers.slack.deps import SlackDeps, log
from handlers.slack.renderers import reply_message

FAILED = "Sorry, that did not work; the error is in cxbot's log. Nothing was changed."


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def cx_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()  # inside Slack's 3 seconds, before any database work
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
