"""`POST /api/messages`, the Bot Framework endpoint, or nothing (with one log line) when Teams is off.

Each request's JWT is checked first (handlers.teams.auth); a refused one is answered 401 before
anything is read or stored. Then the activity is deduplicated on its id (Teams redelivers), its
conversation reference is stored (on install and on every message, for proactive posts), and a
message runs the one command grammar; the reply goes back into the same conversation through the
Bot Connector, after Teams has had its answer (the work runs in `runtime.background`).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cxbot import markup
from cxbot.authz import Actor, actor_for
from cxbot.cases.customers import CustomerPage
from cxbot.cases.overview import Overview
from cxbot.cases.view import load_case_view
from cxbot.commands.dispatch import Reply, Where, run_text
from cxbot.commands.grammar import CommandError, parse
from cxbot.config import Config
from cxbot.conversations import conversation_reference, personal_conversation, remember_conversation
from cxbot.db import transaction
from cxbot.models import CasePost, OutboxMessage
from cxbot.outbox.contract import CASE_CARD, DeliveryError
from cxbot.outbox.inbox import remember_inbound_event
from cxbot.runtime import Runtime
from handlers.teams import dialogs
from handlers.teams.auth import KeySet, TeamsAuthError, TokenValidator
from handlers.teams.cards import CARD_CONTENT_TYPE, EXECUTE_VERB, case_card
from handlers.teams.connector import BotConnector
from handlers.teams.home import home_message
from handlers.teams.markup import to_markdown, use_people
from handlers.teams.notifier import TeamsNotifier
from handlers.teams.tokens import TokenProvider
from handlers.teams.views import IN_PLACE, is_private, reply_activity, reply_card

log = logging.getLogger("handlers.teams")
MESSAGES_PATH = "/api/messages"
PLATFORM = "msteams"
REQUIRED = ("TEAMS_APP_ID", "TEAMS_APP_PASSWORD", "TEAMS_TENANT_ID")
#: Outbound calls wait this long at most; Teams itself gives an inbound request 15 seconds.
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MENTION_TAG = re.compile(r"<at>.*?</at>", re.DOTALL)


def missing_settings(runtime: Runtime) -> list[str]:
    """The variables Teams needs that are not set."""
    settings = runtime.settings
    values = {
        "TEAMS_APP_ID": settings.teams_app_id,
        "TEAMS_APP_PASSWORD": settings.teams_app_password,
        "TEAMS_TENANT_ID": settings.teams_tenant_id,
    }
    return [name for name, value in values.items() if not value]


@dataclass(slots=True)
class TeamsDeps:
    """What the endpoint needs: the runtime, the inbound token check and the Bot Connector."""

    runtime: Runtime
    validator: TokenValidator
    connector: BotConnector


def build_deps(runtime: Runtime, http: httpx.AsyncClient | None = None) -> TeamsDeps:
    settings = runtime.settings
    assert settings.teams_app_id and settings.teams_app_password and settings.teams_tenant_id
    if http is None:  # ours: closed with the runtime (its connection pool to the connector)
        http = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
        runtime.closers.append(http.aclose)
    tokens = TokenProvider(
        http,
        login_url=settings.teams_login_url,
        tenant_id=settings.teams_tenant_id,
        app_id=settings.teams_app_id,
        password=settings.teams_app_password,
    )
    validator = TokenValidator(KeySet(http, settings.teams_openid_metadata_url), app_id=settings.teams_app_id)
    return TeamsDeps(runtime=runtime, validator=validator, connector=BotConnector(http, tokens))


def teams_routes(runtime: Runtime) -> list[Route]:
    """`POST /api/messages` when Teams is configured; otherwise no route and one line saying why."""
    missing = missing_settings(runtime)
    if missing:
        log.info(
            "Microsoft Teams is off: %s not set (set all of %s)", ", ".join(missing), ", ".join(REQUIRED)
        )
        return []
    deps = build_deps(runtime)
    render_people(runtime)

    async def api_messages(request: Request) -> Response:
        return await handle(deps, request)

    return [Route(MESSAGES_PATH, api_messages, methods=["POST"])]


def teams_notifier(runtime: Runtime) -> TeamsNotifier | None:
    """The outbox's way to Teams, when the app registration is configured."""
    if missing_settings(runtime):
        return None
    deps = build_deps(runtime)
    render_people(runtime)
    settings = runtime.settings

    async def channel_reference(conversation_id: str) -> dict[str, Any] | None:
        return await conversation_reference(runtime, platform=PLATFORM, conversation_id=conversation_id)

    async def personal_reference(user_id: str) -> dict[str, Any] | None:
        return await personal_conversation(runtime, platform=PLATFORM, user_id=user_id)

    return TeamsNotifier(
        deps.connector,
        channel_reference=channel_reference,
        personal_reference=personal_reference,
        service_url=settings.teams_service_url,
        tenant_id=str(settings.teams_tenant_id),
        bot_id=f"28:{settings.teams_app_id}",
    )


async def handle(deps: TeamsDeps, request: Request) -> Response:
    """One inbound activity: refused (401/400), a redelivery (200, nothing done), or handled."""
    authorization = request.headers.get("authorization")
    if not authorization:
        return refuse(401, "no Bearer token in the Authorization header")
    try:
        activity = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return refuse(400, "body is not JSON")
    if not isinstance(activity, dict):
        return refuse(400, "body is not a Bot Framework activity")
    try:
        await deps.validator.validate(authorization, activity)
    except TeamsAuthError as refused:
        return refuse(refused.status, str(refused))
    problem = malformed(activity)
    if problem is not None:
        return refuse(400, problem)
    kind = str(activity["type"])
    runtime = deps.runtime
    first = await remember_inbound_event(
        runtime, platform=PLATFORM, event_id=event_key(activity), kind=kind[:64], now=runtime.clock()
    )
    if kind == "invoke" and activity.get("name") == "adaptiveCard/action":
        if not first:  # a redelivered click: the first one acted and answered
            return JSONResponse(invoke_message("Already done."))
        return JSONResponse(await card_action(deps, activity))
    if kind == "invoke" and activity.get("name") in dialogs.DIALOG_INVOKES:
        where = Where(platform=PLATFORM, channel=None, reference=reference_of(activity))
        actor = actor_of(runtime.config, activity)
        return JSONResponse(
            await dialogs.answer_invoke(runtime, activity, actor=actor, where=where, first=first)
        )
    if not first:
        return JSONResponse({})  # a redelivery: already handled once
    if kind in ("conversationUpdate", "installationUpdate", "message"):
        await store_reference(runtime, activity)
    if kind == "message":
        text = command_text(activity, runtime.config.slash_command)
        actor = actor_of(deps.runtime.config, activity)
        if text is not None and actor is not None:
            runtime.background.start(answer_message(deps, activity, actor, text), name="teams-message")
    return JSONResponse({})


def malformed(activity: dict[str, Any]) -> str | None:
    """Why a (signed) activity cannot be handled, or None: the fields read below have their shapes."""
    if not isinstance(activity.get("type"), str) or not isinstance(activity.get("id"), str):
        return "the activity has no type or id"
    conversation = activity.get("conversation")
    if not isinstance(conversation, dict) or not isinstance(conversation.get("id"), str):
        return "the activity has no conversation id"
    for name in ("from", "recipient", "channelData"):
        if activity.get(name) is not None and not isinstance(activity[name], dict):
            return f"the activity's {name} is not an object"
    channel_data = activity.get("channelData") or {}
    for name in ("channel", "team", "tenant"):
        if channel_data.get(name) is not None and not isinstance(channel_data[name], dict):
            return f"the activity's channelData.{name} is not an object"
    if activity.get("entities") is not None and not isinstance(activity["entities"], list):
        return "the activity's entities is not a list"
    return None


def invoke_message(text: str) -> dict[str, Any]:
    """An Action.Execute answer that shows a message and leaves the card as it was."""
    return {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text}


async def card_action(deps: TeamsDeps, activity: dict[str, Any]) -> dict[str, Any]:
    """A card button (Action.Execute): run its command as the clicker, then answer the invoke with
    the refreshed card (Teams replaces the card in place), or with the refusal and no change."""
    value = activity.get("value") if isinstance(activity.get("value"), dict) else {}
    action = value.get("action") if isinstance(value.get("action"), dict) else {}
    data = action.get("data") if isinstance(action.get("data"), dict) else {}
    text = data.get("command")
    actor = actor_of(deps.runtime.config, activity)
    if action.get("verb") != EXECUTE_VERB or not isinstance(text, str) or actor is None:
        return invoke_message("This button is not one of cxbot's.")
    reference = reference_of(activity)
    where = Where(platform=PLATFORM, channel=None, reference=reference)
    runtime = deps.runtime
    text = await dialogs.card_command(runtime, text)
    reply = await run_text(runtime, text, actor=actor, where=where)
    if not reply.ok:
        return invoke_message(to_markdown(reply.text))
    personal = activity["conversation"].get("conversationType") == "personal"
    # Revealed details, and from a channel the customer view (it may show them): to the clicker
    # alone, never into the card others see; in the personal chat a page turns in place.
    if reply.private or (not personal and (is_private(reply) or isinstance(reply.report, CustomerPage))):
        try:
            await send_personal(deps, activity, reply_activity(reply))
        except DeliveryError as failed:
            log.warning("could not send a revealed detail to a personal chat: %s", failed)
            return invoke_message("Could not reach your personal chat with cxbot; try again.")
        return invoke_message("Sent to your personal chat with cxbot.")
    card = reply_card(reply) if data.get(IN_PLACE) is True else None
    if card is not None:  # a paging button: the next page replaces the card that was clicked
        return {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": card}
    try:
        case_id = parse(markup.plain(text)).case_id
    except CommandError:
        case_id = None
    if case_id is None:
        return invoke_message(to_markdown(reply.text))
    async with transaction(runtime.sessions) as session:
        shown = await card_shown_by_answer(session, case_id, str(activity.get("replyToId") or ""), runtime)
        view = await load_case_view(session, case_id, config=runtime.config, now=runtime.clock())
    if view is None or shown is False:  # nothing new for this card, or the outbox already has it
        return invoke_message(to_markdown(reply.text))
    return {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": case_card(view)}


async def card_shown_by_answer(
    session: AsyncSession, case_id: int, card: str, runtime: Runtime
) -> bool | None:
    """The click's answer refreshes the posted card, so the outbox must not `PUT` it again: its
    pending refreshes of that card are recorded as shown (the answer, read after, shows them).

    True when some were; False when the clicked card is the posted one and had none pending (the
    click changed nothing, or a refresh already in flight will show it); None for another card.
    """
    posted = await session.scalar(
        select(CasePost.destination).where(
            CasePost.case_id == case_id,
            CasePost.platform == PLATFORM,
            CasePost.message_ref.endswith(f"|{card}", autoescape=True),
        )
    )
    if not card or posted is None:
        return None
    marked = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.kind == CASE_CARD,
            OutboxMessage.platform == PLATFORM,
            OutboxMessage.case_id == case_id,
            OutboxMessage.destination == posted,
            OutboxMessage.status == "pending",
        )
        .values(status="sent", sent_at=runtime.clock(), result={"shown_by": "invoke", "activity": card})
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    return bool(marked.all())


def refuse(status: int, reason: str) -> JSONResponse:
    log.info("refused a request to %s: %s", MESSAGES_PATH, reason)
    return JSONResponse({"error": reason}, status_code=status)


def event_key(activity: dict[str, Any]) -> str:
    """The id deduplication uses: the activity id within its conversation (ids are per conversation)."""
    conversation = str((activity.get("conversation") or {}).get("id", ""))
    digest = hashlib.sha256(conversation.encode("utf-8")).hexdigest()[:16]
    return f"{str(activity['id'])[:80]}@{digest}"


def channel_root(activity: dict[str, Any]) -> str:
    """A channel's own id (a message in a thread carries `…;messageid=…` in its conversation id)."""
    channel = ((activity.get("channelData") or {}).get("channel") or {}).get("id")
    conversation_id = str(activity["conversation"].get("id", ""))
    if isinstance(channel, str) and channel:
        return channel
    return conversation_id.split(";", 1)[0]


def reference_of(activity: dict[str, Any]) -> dict[str, Any]:
    """What posting into this conversation later needs, and nothing of the message itself."""
    conversation = activity["conversation"]
    channel_data = activity.get("channelData") or {}
    tenant = conversation.get("tenantId") or (channel_data.get("tenant") or {}).get("id")
    return {
        "serviceUrl": activity.get("serviceUrl"),
        "channelId": activity.get("channelId"),
        "tenantId": tenant,
        "conversation": {
            "id": channel_root(activity)
            if conversation.get("conversationType") == "channel"
            else conversation.get("id"),
            "conversationType": conversation.get("conversationType") or "personal",
            "isGroup": bool(conversation.get("isGroup")),
            "tenantId": tenant,
        },
        "bot": activity.get("recipient"),
        "teamId": (channel_data.get("team") or {}).get("id"),
    }


async def store_reference(runtime: Runtime, activity: dict[str, Any]) -> None:
    reference = reference_of(activity)
    kind = str(reference["conversation"]["conversationType"])[:16]
    sender = activity.get("from") or {}
    await remember_conversation(
        runtime,
        platform=PLATFORM,
        conversation_id=str(reference["conversation"]["id"])[:300],
        kind=kind,
        reference=reference,
        user_id=str(sender.get("aadObjectId"))[:100]
        if kind == "personal" and sender.get("aadObjectId")
        else None,
        now=runtime.clock(),
    )


def command_text(activity: dict[str, Any], slash_command: str) -> str | None:
    """The command a message carries: the bot's @mention and an optional `cx`/`/cx` taken off.

    None for a message that is not typed text (a card's Action.Submit carries `value` instead).
    """
    text = activity.get("text")
    if not isinstance(text, str):
        return None
    bot_id = (activity.get("recipient") or {}).get("id")
    for entity in activity.get("entities") or []:
        if isinstance(entity, dict) and entity.get("type") == "mention":
            mentioned = entity.get("mentioned")
            if (
                isinstance(mentioned, dict)
                and mentioned.get("id") == bot_id
                and isinstance(entity.get("text"), str)
            ):
                text = text.replace(entity["text"], " ")
    text = html.unescape(MENTION_TAG.sub(" ", text)).replace("\xa0", " ").strip()
    name = re.escape(slash_command.lstrip("/"))
    return re.sub(rf"^/?{name}(?:\s+|$)", "", text, count=1, flags=re.IGNORECASE).strip()


def actor_of(config: Config, activity: dict[str, Any]) -> Actor | None:
    """The person who wrote: their Entra object id, resolved to the person whose `msteams` id it is."""
    sender = activity.get("from") or {}
    object_id = sender.get("aadObjectId")
    if not isinstance(object_id, str) or not object_id:
        return None
    name = sender.get("name")
    return actor_for(config, PLATFORM, object_id, display=name if isinstance(name, str) else None)


def render_people(runtime: Runtime) -> None:
    """Person tokens become `<at>` mentions of each person's Entra object id in the running config."""

    def teams_id(ident: str) -> tuple[str, str] | None:
        object_id = runtime.config.platform_id(ident, PLATFORM)  # None unless an Entra object id
        if object_id is None:
            return None
        person = runtime.config.people.get(runtime.config.person_of(ident))
        return object_id, person.name if person is not None else object_id

    use_people(teams_id)


async def answer_message(deps: TeamsDeps, activity: dict[str, Any], actor: Actor, text: str) -> None:
    """Run the command and post its reply: in the same conversation, or only to the asker's personal
    chat when the reply is private (revealed customer details never go to a channel)."""
    reference = reference_of(activity)
    conversation = reference["conversation"]
    # Only a team's channel can be a team's destination (`team link`), never a personal or group chat.
    channel = str(conversation["id"]) if conversation["conversationType"] == "channel" else None
    where = Where(platform=PLATFORM, channel=channel, reference=reference)
    launch = dialogs.launch_for(text)  # `cx new`, `cx contact CX-42` alone: a button opening the form
    if launch is not None:
        reply = Reply(launch.text, report=launch)
    else:
        reply = await run_text(deps.runtime, text, actor=actor, where=where)
    try:
        await post_reply(deps, activity, reply)
    except DeliveryError as failed:
        log.warning("could not answer a Teams message: %s", failed)


async def post_reply(deps: TeamsDeps, activity: dict[str, Any], reply: Reply) -> None:
    """The reply in the same conversation, as a card where Slack draws blocks (handlers.teams.views);
    what only the asker may see goes to their personal chat instead."""
    service_url = str(activity["serviceUrl"])
    conversation = activity["conversation"]
    outgoing = reply_activity(reply)
    if isinstance(reply.report, dialogs.Launch):
        outgoing = reply.report.message()
    # Revealed details, and the customer view (it may show them unmasked), never go to a channel.
    personal = reply.private or is_private(reply) or isinstance(reply.report, CustomerPage)
    if isinstance(reply.report, Overview):  # `cx home`: the asker's own overview, in their 1:1 chat
        outgoing, personal = home_message(reply.report, command=deps.runtime.config.slash_command), True
    if personal and conversation.get("conversationType") != "personal":
        await send_personal(deps, activity, outgoing)
        return
    await deps.connector.reply_to_activity(
        service_url, str(conversation["id"]), str(activity["id"]), outgoing
    )


async def send_personal(deps: TeamsDeps, activity: dict[str, Any], outgoing: dict[str, Any]) -> None:
    """Into the asker's 1:1 chat with the bot: the stored one, or one created for the purpose."""
    sender = activity.get("from") or {}
    known = await personal_conversation(
        deps.runtime, platform=PLATFORM, user_id=str(sender.get("aadObjectId"))
    )
    if known is not None:
        await deps.connector.send_to_conversation(
            str(known["serviceUrl"]), str(known["conversation"]["id"]), outgoing
        )
        return
    reference = reference_of(activity)
    created = await deps.connector.create_conversation(
        str(activity["serviceUrl"]),
        {
            "isGroup": False,
            "bot": activity.get("recipient"),
            "members": [{"id": sender.get("id")}],
            "tenantId": reference["tenantId"],
            "channelData": {"tenant": {"id": reference["tenantId"]}},
        },
    )
    await deps.connector.send_to_conversation(str(activity["serviceUrl"]), str(created["id"]), outgoing)
