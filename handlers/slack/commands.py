"""The slash command (`/cx` by default): acknowledge at once, run the one grammar, answer the caller.

The HTTP answer goes back as soon as the listener has acked; the command itself runs as tracked
background work (:class:`cxbot.background.BackgroundWork`) and answers through `response_url`. Only
what needs the trigger_id (opening a modal) runs before the answer.

The text goes to :func:`cxbot.commands.dispatch.run_text` with Slack's mentions (`<@U123|name>`) as
the grammar's `@U123`; the reply is rendered by :func:`handlers.slack.renderers.reply_message`.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltRequest, AsyncRespond

from cxbot.authz import Actor, Denied, actor_for, teams_of
from cxbot.cases.customers import CustomerPage
from cxbot.cases.flows import CaseNotFound, InvalidTransition
from cxbot.commands.dispatch import AlreadyReceived, Once, Reply, Where, run_text
from cxbot.commands.grammar import CommandError, parse
from cxbot.loop.contact.flows import composer_for
from cxbot.pii import mask_text
from handlers.slack.blocks import outgoing
from handlers.slack.client import PooledRespond
from handlers.slack.customer_view import customer_message
from handlers.slack.deps import SlackDeps, log
from handlers.slack.errors import SlackPermanentError, SlackTransientError
from handlers.slack.renderers import contact_modal, new_case_modal, reply_message

SLACK_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
FAILED = "Sorry, that did not work; the error is in cxbot's log. Nothing was changed."
REPLAYED = "That exact command was already received and ran once; nothing changed this time."
QUEUED = "cxbot is busy: your command is queued and will run shortly; its answer will follow here."
REFUSED = "cxbot is too busy to take that command right now; nothing was changed. Try again in a minute."


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def cx_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, request: AsyncBoltRequest
    ) -> None:
        await ack()  # inside Slack's 3 seconds, before any database work
        if asks_for_form(command.get("text") or ""):
            await open_new_case_form(deps, command, respond)
            return
        composer_case = asks_for_composer(command.get("text") or "")
        if composer_case is not None:
            actor = command_actor(deps, command)
            await open_contact_composer(
                deps,
                case_id=composer_case,
                actor=actor,
                trigger_id=command["trigger_id"],
                channel=command.get("channel_id") or None,
                respond=respond,
            )
            return
        # Answer Slack now; the transaction and the response_url reply run after (design.md §10).
        if respond.response_url:
            respond = PooledRespond(respond.response_url, deps.client)  # type: ignore[assignment]
        key = replay_key(request)
        accepted = deps.runtime.background.start(
            answer_command(deps, command, respond, key),
            name="slack-command",
            busy=lambda: send_reply(respond, Reply(QUEUED, ok=True)),
        )
        if not accepted:  # the queue is full: say so now rather than leave the user waiting
            await send_reply(respond, Reply(REFUSED, ok=False))

    app.command(deps.runtime.config.slash_command)(cx_command)


def replay_key(request: AsyncBoltRequest) -> str | None:
    """The request's signature: a byte-identical replay (design.md §6) carries the same one.

    Slack never retries a slash command and every real one has its own timestamp, text and
    response_url, so two commands share a signature only when one is a replay. Socket Mode requests
    are not signed (they arrive on Slack's own connection) and have no key.
    """
    signature = (request.headers.get("x-slack-signature") or [""])[0]
    return f"command:{signature}" if signature else None


async def answer_command(
    deps: SlackDeps, command: dict[str, Any], respond: AsyncRespond, key: str | None = None
) -> None:
    """The command's work once Slack has its acknowledgement: run it once, then reply through response_url.

    The replay record (`key`) is written in the command's own transaction: one write per command.
    """
    once = Once("slack", key, "command") if key is not None else None
    await send_reply(respond, await run_command(deps, command, once))


def unmention(text: str) -> str:
    """Slack sends a mention as `<@U123>` or `<@U123|name>`; the grammar reads people as `@U123`."""
    return SLACK_MENTION.sub(lambda match: f"@{match.group(1)}", text)


def command_actor(deps: SlackDeps, command: dict[str, Any]) -> Actor:
    """Who typed the command, as their person when `people:` knows their Slack id."""
    return actor_for(
        deps.runtime.config, "slack", command["user_id"], display=command.get("user_name") or None
    )


async def run_command(deps: SlackDeps, command: dict[str, Any], once: Once | None = None) -> Reply:
    """Run the text for the user in the channel; an unexpected failure becomes a polite reply."""
    actor = command_actor(deps, command)
    where = Where(platform="slack", channel=command.get("channel_id") or None)
    text = unmention(command.get("text") or "")
    try:
        return await run_text(deps.runtime, text, actor=actor, where=where, once=once)
    except AlreadyReceived:
        log.info("ignoring a replayed slash command")
        return Reply(REPLAYED, ok=False)
    except Exception:
        # The text may quote a customer: logged masked and cut short (docs/security.md "What is logged").
        log.exception("slash command %r failed", mask_text(command.get("text") or "")[:200])
        return Reply(FAILED, ok=False)


async def send_reply(respond: AsyncRespond, reply: Reply, **extra: Any) -> None:
    """Answer through `response_url`; like every Web API call, the payload is defused on its way out."""
    try:
        # The single customer view has its own blocks.
        customer = isinstance(reply.report, CustomerPage)
        message = customer_message(reply) if customer else reply_message(reply)
        await respond(**outgoing(message), **extra)
    except Exception:  # the command already ran; a lost reply must not look like a failure to Slack
        log.exception("could not answer through response_url")


def asks_for_form(text: str) -> bool:
    """`/cx new` with nothing after it: Slack has a form for that, where the console needs the text."""
    try:
        command = parse(text)
    except CommandError:
        return False
    return command.verb == "new" and not command.args


def asks_for_composer(text: str) -> int | None:
    """`/cx contact CX-42` with nothing after the case: the case whose composer to open."""
    try:
        command = parse(text)
    except CommandError:
        return None
    return command.case_id if command.verb == "contact" and not command.args else None


async def open_contact_composer(
    deps: SlackDeps,
    *,
    case_id: int,
    actor: Actor,
    trigger_id: str,
    channel: str | None,
    respond: AsyncRespond,
) -> None:
    """Open the contact composer for a case; a refusal (not a member, closed case) answers ephemerally."""
    runtime = deps.runtime
    refusal: Reply | None = None
    try:
        form = await composer_for(runtime.sessions, config=runtime.config, case_id=case_id, actor=actor)
    except (CaseNotFound, InvalidTransition) as error:
        refusal = Reply(str(error), ok=False)
    except Denied as error:
        refusal = Reply(f"Not allowed: {error}", ok=False)
    except Exception:
        log.exception("could not prepare the contact composer for CX-%s", case_id)
        refusal = Reply(FAILED, ok=False)
    if refusal is not None:
        await send_reply(respond, refusal, replace_original=False)
        return
    try:
        await deps.client.open_view(trigger_id=trigger_id, view=contact_modal(form, channel=channel))
    except (SlackTransientError, SlackPermanentError) as error:
        log.warning("could not open the contact composer: %s", error)
        await send_reply(respond, Reply(f"Could not open the form ({error}); try again.", ok=False))


async def open_new_case_form(deps: SlackDeps, command: dict[str, Any], respond: AsyncRespond) -> None:
    """Open the new-case modal on the command's trigger_id; the submission is handled in actions."""
    config = deps.runtime.config
    actor = command_actor(deps, command)
    mine = teams_of(config, actor)
    view = new_case_modal(
        config, channel=command.get("channel_id") or None, team=mine[0] if len(mine) == 1 else None
    )
    try:
        await deps.client.open_view(trigger_id=command["trigger_id"], view=view)
    except (SlackTransientError, SlackPermanentError) as error:
        log.warning("could not open the new-case modal: %s", error)
        await send_reply(respond, Reply(f"Could not open the form ({error}); try again.", ok=False))
