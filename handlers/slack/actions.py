"""Buttons, the Reassign select and the Snooze/Resolve modals on a case card.

Every click runs the same command a user could type (`ack CX-42`, `take CX-42`, `assign CX-42 @x`)
through :mod:`cxbot.commands.dispatch`, so authorization, compare-and-set state changes and outbox writes are
the core's: a double click or a replayed request changes the case once and refreshes the card once.
The clicker gets an ephemeral answer; the card itself is updated by the outbox worker. A click is
acknowledged at once and its command runs as tracked background work after the HTTP answer; what opens
a modal (needs the trigger_id) and modal submissions (field errors go in the answer) run before it.
The new-case modal (opened by `/cx new`) runs the core `new` command the same way.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from cxbot.authz import Actor, actor_for
from cxbot.cases.customers import CUSTOMER_REF, case_history_command
from cxbot.commands.dispatch import Reply, Where, run, run_text
from cxbot.commands.forms import FormRejected, new_case_form, resolve_form, snooze_form
from cxbot.commands.grammar import Command, CommandError, parse
from cxbot.loop.contact.flows import composer_for
from handlers.slack.blocks import (
    MAX_TEXT,
    clip,
)
from handlers.slack.commands import FAILED, open_contact_composer, send_reply
from handlers.slack.customer_view import CARD_ACTION, PAGE_ACTION
from handlers.slack.deps import SlackDeps, log
from handlers.slack.errors import SlackPermanentError, SlackTransientError
from handlers.slack.markup import to_mrkdwn, to_plain
from handlers.slack.renderers import (
    ACK,
    ASSIGN,
    CONTACT,
    CONTACT_MODAL,
    CONTACT_TEMPLATE,
    NEW_CASE_MODAL,
    REOPEN,
    RESOLVE,
    RESOLVE_MODAL,
    REVEAL,
    SNOOZE,
    SNOOZE_MODAL,
    case_id_from,
    contact_modal,
    form_values,
    parse_metadata,
    resolve_modal,
    snooze_modal,
)

VERB_OF_BUTTON = {ACK: "ack", "cx_take": "take", REOPEN: "reopen", REVEAL: "reveal"}


def _pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}:[0-9]+$")


def _actor(deps: SlackDeps, body: dict[str, Any]) -> Actor:
    """The clicking user, as their person when `people:` knows their Slack id."""
    user = body.get("user") or {}
    return actor_for(deps.runtime.config, "slack", user["id"], display=user.get("username") or None)


def _channel(body: dict[str, Any]) -> str | None:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")


def register(app: AsyncApp, deps: SlackDeps) -> None:
    for prefix, verb in VERB_OF_BUTTON.items():
        app.action(_pattern(prefix))(_button(deps, verb))
    app.action(_pattern(ASSIGN))(_reassign(deps))
    app.action(_pattern(SNOOZE))(_open_modal(deps, SNOOZE))
    app.action(_pattern(RESOLVE))(_open_modal(deps, RESOLVE))
    app.view(SNOOZE_MODAL)(_snooze_submitted(deps))
    app.view(RESOLVE_MODAL)(_resolve_submitted(deps))
    app.view(NEW_CASE_MODAL)(_new_case_submitted(deps))
    app.action(_pattern(CONTACT))(_contact_button(deps))
    app.action(CONTACT_TEMPLATE)(_contact_template_changed(deps))
    app.view(CONTACT_MODAL)(_contact_submitted(deps))
    app.action(_pattern(CARD_ACTION))(_customer_history(deps))
    app.action(re.compile(rf"^{PAGE_ACTION}:(older|newer)$"))(_customer_page(deps))


async def _run(deps: SlackDeps, text: str, body: dict[str, Any]) -> Reply:
    try:
        return await run_text(
            deps.runtime,
            text,
            actor=_actor(deps, body),
            where=Where(platform="slack", channel=_channel(body)),
        )
    except Exception:
        log.exception("card action %r failed", text)
        return Reply(FAILED, ok=False)


def _button(deps: SlackDeps, verb: str) -> Any:
    async def on_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        case_id = case_id_from(action["action_id"])
        _after_ack(deps, _answer(deps, f"{verb} CX-{case_id}", body, respond), name=f"slack-{verb}")

    on_button.__name__ = f"on_{verb}_button"
    return on_button


def _reassign(deps: SlackDeps) -> Any:
    async def on_reassign(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        case_id = case_id_from(action["action_id"])
        user = action.get("selected_user")
        if not user:
            return
        _after_ack(deps, _answer(deps, f"assign CX-{case_id} @{user}", body, respond), name="slack-assign")

    return on_reassign


def _customer_history(deps: SlackDeps) -> Any:
    """The card's "Customer history" button: the single customer view, to the clicker only."""

    async def on_customer_history(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        ref = (action.get("value") or "").removeprefix("customer ")
        case_id = case_id_from(action["action_id"])

        async def answer() -> None:
            # The card names the customer by our row ref; one posted before it did carries the case id.
            if CUSTOMER_REF.match(ref):
                text = f"customer {ref}"
            else:
                async with deps.runtime.sessions() as session:
                    text = await case_history_command(session, case_id)
            await _answer(deps, text, body, respond)

        _after_ack(deps, answer(), name="slack-customer")

    return on_customer_history


def _customer_page(deps: SlackDeps) -> Any:
    """Older ▸ / ◂ Newer on a customer page: run the page's command and replace the ephemeral message."""

    async def on_customer_page(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        text = action.get("value") or ""
        try:
            is_customer = parse(text).verb == "customer"
        except CommandError:
            is_customer = False
        if not is_customer:  # a button only ever pages the customer view
            log.warning("customer page button with an unexpected value %r", text)
            return
        _after_ack(deps, _answer(deps, text, body, respond, replace_if_ok=True), name="slack-customer-page")

    return on_customer_page


def _after_ack(deps: SlackDeps, work: Any, *, name: str) -> None:
    """Let Bolt answer the click now; the command and its reply run after, tracked (design.md §10)."""
    deps.runtime.background.start(work, name=name)


async def _answer(
    deps: SlackDeps, text: str, body: dict[str, Any], respond: AsyncRespond, *, replace_if_ok: bool = False
) -> None:
    """Run a click's command and answer the clicker through response_url."""
    reply = await _run(deps, text, body)
    await send_reply(respond, _private(reply), replace_original=replace_if_ok and reply.ok)


def _private(reply: Reply) -> Reply:
    """Answers to a click go to the clicker only; everyone else sees the card change."""
    reply.ephemeral = True
    return reply


def _open_modal(deps: SlackDeps, kind: str) -> Any:
    async def on_open(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        case_id = case_id_from(action["action_id"])
        assert case_id is not None
        channel = _channel(body)
        view = (
            snooze_modal(case_id, channel=channel)
            if kind == SNOOZE
            else resolve_modal(case_id, channel=channel, root_causes=deps.runtime.config.root_causes)
        )
        try:
            await deps.client.open_view(trigger_id=body["trigger_id"], view=view)
        except (SlackTransientError, SlackPermanentError) as error:
            log.warning("could not open the %s modal: %s", kind, error)
            await send_reply(respond, Reply(f"Could not open the form ({error}); try again.", ok=False))

    return on_open


def _selected(values: dict[str, Any], block: str) -> str | None:
    element = (values.get(block) or {}).get("value") or {}
    option = element.get("selected_option") or {}
    return option.get("value") or element.get("value")


def _snooze_submitted(deps: SlackDeps) -> Any:
    async def on_snooze(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        case_id, channel = parse_metadata(view.get("private_metadata", ""))
        if case_id is None:
            await ack()
            return
        form = snooze_form(case_id)
        try:
            command = form.submit(form_values(form, view["state"]["values"]))
        except FormRejected as rejected:
            await ack(response_action="errors", errors=rejected.errors)
            return
        await ack()
        await _run_submitted(deps, command, body, channel)

    return on_snooze


def _resolve_submitted(deps: SlackDeps) -> Any:
    """Resolve before answering, so the resolve rule's refusal shows on the field (design.md §7)."""

    async def on_resolve(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        case_id, channel = parse_metadata(view.get("private_metadata", ""))
        if case_id is None:
            await ack()
            return
        form = resolve_form(case_id, root_causes=deps.runtime.config.root_causes)
        try:
            command = form.submit(form_values(form, view["state"]["values"]))
        except FormRejected as rejected:
            await ack(response_action="errors", errors=rejected.errors)
            return
        reply = await _run_command(deps, command, body, channel)
        if not reply.ok:
            block = form.field_for(
                reply.fix_field if reply.fix_field in ("reason", "root_cause") else "outcome"
            )
            await ack(response_action="errors", errors={block: clip(to_plain(reply.text), MAX_TEXT)})
            return
        await ack()
        await _tell(deps, body, channel, reply)

    return on_resolve


async def _run_command(deps: SlackDeps, command: Command, body: dict[str, Any], channel: str | None) -> Reply:
    try:
        return await run(
            deps.runtime, command, actor=_actor(deps, body), where=Where(platform="slack", channel=channel)
        )
    except Exception:
        log.exception("modal command %s failed", command.verb)
        return Reply(FAILED, ok=False)


async def _tell(deps: SlackDeps, body: dict[str, Any], channel: str | None, reply: Reply) -> None:
    """The submitter's answer, ephemerally in the card's channel."""
    if channel is None:
        return
    user = _actor(deps, body).user_id
    try:
        await deps.client.call("chat.postEphemeral", channel=channel, user=user, text=to_mrkdwn(reply.text))
    except (SlackTransientError, SlackPermanentError) as error:
        log.warning("could not tell %s: %s", user, error)


def _contact_button(deps: SlackDeps) -> Any:
    async def on_contact(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        case_id = case_id_from(action["action_id"])
        assert case_id is not None
        await open_contact_composer(
            deps,
            case_id=case_id,
            actor=_actor(deps, body),
            trigger_id=body["trigger_id"],
            channel=_channel(body),
            respond=respond,
        )

    return on_contact


def _contact_template_changed(deps: SlackDeps) -> Any:
    """A template picked in the composer: redraw its text and preview with `views.update`."""

    async def on_template(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        view = body.get("view") or {}
        case_id, channel = parse_metadata(view.get("private_metadata", ""))
        template = (action.get("selected_option") or {}).get("value")
        if case_id is None:
            return
        runtime = deps.runtime
        try:
            form = await composer_for(
                runtime.sessions,
                config=runtime.config,
                case_id=case_id,
                actor=_actor(deps, body),
                template=template,
            )
            redrawn = contact_modal(
                form, channel=channel, selected_channel=_selected(view["state"]["values"], "channel")
            )
            await deps.client.call("views.update", view_id=view["id"], hash=view.get("hash"), view=redrawn)
        except Exception:
            log.exception("could not redraw the contact composer for CX-%s", case_id)

    return on_template


#: The core's FieldRejected fields, as the composer's blocks (the text block's id names its template).
_COMPOSER_FIELDS = ("channel", "template")


def _contact_submitted(deps: SlackDeps) -> Any:
    """Send before answering, so a refusal shows on its field; the view id makes a replay a no-op."""

    async def on_contact(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        channel_choice = _selected(values, "channel")
        template = ((values.get("template") or {}).get(CONTACT_TEMPLATE) or {}).get("selected_option") or {}
        body_block = next((block for block in values if block.startswith("body")), "body")
        text = ((values.get(body_block) or {}).get("value") or {}).get("value") or ""
        errors = {}
        if not channel_choice:
            errors["channel"] = "Pick how to send it"
        if not text.strip():
            errors[body_block] = "Write the message"
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        case_id, channel = parse_metadata(view.get("private_metadata", ""))
        if case_id is None:
            await ack()
            return
        args = {
            "channel": channel_choice,
            "template": template.get("value"),
            "text": text,
            "idempotency_key": f"slack-view:{view.get('team_id') or ''}:{view['id']}",
        }
        reply = await _run_command(deps, Command("contact", case_id, args), body, channel)
        if not reply.ok:
            block = reply.fix_field if reply.fix_field in _COMPOSER_FIELDS else body_block
            await ack(response_action="errors", errors={block: clip(to_plain(reply.text), MAX_TEXT)})
            return
        await ack()
        await _tell(deps, body, channel, reply)

    return on_contact


async def _run_submitted(
    deps: SlackDeps, command: Command, body: dict[str, Any], channel: str | None
) -> None:
    """Run a modal's command and tell the submitter, ephemerally, in the card's channel."""
    actor = _actor(deps, body)
    try:
        reply = await run(deps.runtime, command, actor=actor, where=Where(platform="slack", channel=channel))
    except Exception:
        log.exception("modal command %s failed", command.verb)
        reply = Reply(FAILED, ok=False)
    if channel is None:
        return
    try:
        await deps.client.call(
            "chat.postEphemeral", channel=channel, user=actor.user_id, text=to_mrkdwn(reply.text)
        )
    except (SlackTransientError, SlackPermanentError) as error:
        log.warning("could not tell %s the result of %s: %s", actor.user_id, command.verb, error)


#: The core names the input to fix (cxbot.cases.flows.NewCaseRejected); the form calls free text `title`.
def _new_case_submitted(deps: SlackDeps) -> Any:
    """Validate and open the case before answering: Slack shows field errors only in the ack itself."""

    async def on_new_case(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        form = new_case_form(deps.runtime.config)
        try:
            command = form.submit(form_values(form, view["state"]["values"]))
        except FormRejected as rejected:
            await ack(response_action="errors", errors=rejected.errors)
            return
        _, channel = parse_metadata(view.get("private_metadata", ""))
        actor = _actor(deps, body)
        try:
            reply = await run(
                deps.runtime, command, actor=actor, where=Where(platform="slack", channel=channel)
            )
        except Exception:
            log.exception("new case from the modal failed")
            reply = Reply(FAILED, ok=False)
        if not reply.ok:
            block = form.field_for(reply.fix_field or "team")
            await ack(response_action="errors", errors={block: clip(to_plain(reply.text), MAX_TEXT)})
            return
        await ack()
        if channel is None:
            return
        try:
            await deps.client.call(
                "chat.postEphemeral", channel=channel, user=actor.user_id, text=to_mrkdwn(reply.text)
            )
        except (SlackTransientError, SlackPermanentError) as error:
            log.warning("could not tell %s the new case was opened: %s", actor.user_id, error)

    return on_new_case
