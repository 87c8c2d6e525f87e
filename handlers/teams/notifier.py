"""Delivers outbox rows to Teams: the case card as a new thread in the team's channel (then updated in
place with `PUT`), its timeline as replies in that thread, digests (Adaptive Cards from the digest
the row carries, handlers.teams.digest_cards), escalation notices and reports.

Network only, like `handlers/slack/notifier.py`, with one exception: a Teams destination is a
conversation id, and posting there needs its reference (service URL, tenant), which the endpoint
stored when the bot was installed or spoken to (cxbot.conversations). Without one the configured
TEAMS_SERVICE_URL is used, as design.md §4 says.

A posted card's `message_ref` is `<thread conversation id>|<activity id>`: the thread is where its
timeline goes, the activity id is what `PUT` replaces.

A delivery in doubt (`maybe_sent_since`: a stopped replica may have posted it) is posted again: the
Bot Connector lets a bot send to a Teams conversation but not read it back, so there is nothing to
look in (Slack's notifier finds its earlier post by its metadata instead).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cxbot.config import PERSON_ID_PATTERNS
from cxbot.digest.serialize import digest_from_json
from cxbot.outbox.contract import CHAT_KINDS, ESCALATION_DM, Delivery, DeliveryError, PermanentDeliveryError
from cxbot.outbox.pacing import APP_PACE, CONVERSATION_PACE
from cxbot.pii import mask_text
from handlers.teams.cards import attachment, case_card, clip, fallback_text
from handlers.teams.connector import BotConnector
from handlers.teams.digest_cards import posted_digest_activity
from handlers.teams.errors import TeamsActivityNotFound
from handlers.teams.markup import message

PLATFORM = "msteams"
#: Teams' limit for a message's text is about 28 KB; digests and reports are clipped well below.
MAX_TEXT = 20_000
Lookup = Callable[[str], Awaitable[dict[str, Any] | None]]
log = logging.getLogger("handlers.teams")


def split_ref(message_ref: str) -> tuple[str, str] | None:
    thread, sep, activity_id = message_ref.partition("|")
    return (thread, activity_id) if sep and thread and activity_id else None


class TeamsNotifier:
    platform = PLATFORM
    kinds = CHAT_KINDS
    #: Teams' per-conversation limits, not a Slack channel's one a second.
    pace = CONVERSATION_PACE
    #: And the bot's 50 requests a second over all conversations.
    app_pace = APP_PACE

    def __init__(
        self,
        connector: BotConnector,
        *,
        channel_reference: Lookup,
        personal_reference: Lookup,
        service_url: str,
        tenant_id: str,
        bot_id: str,
    ) -> None:
        self.connector = connector
        self.channel_reference = channel_reference
        self.personal_reference = personal_reference
        self.service_url = service_url
        self.tenant_id = tenant_id
        self.bot_id = bot_id

    async def deliver(self, delivery: Delivery) -> dict[str, Any]:
        if not delivery.destination:
            raise PermanentDeliveryError(
                "no_destination", "the outbox row names no conversation", scope="destination"
            )
        if delivery.kind == ESCALATION_DM or (
            delivery.kind == "report" and PERSON_ID_PATTERNS[PLATFORM].match(delivery.destination)
        ):  # a report to an admin names the person (their Entra object id), not a conversation
            return await self.direct(delivery.destination, message(str(delivery.payload.get("text") or "")))
        if delivery.kind in ("report", "digest", "escalation.channel"):
            text = clip(str(delivery.payload.get("text") or "cxbot"), MAX_TEXT)
            outgoing = message(text)
            if delivery.kind == "digest":
                outgoing = await self.digest_activity(delivery) or outgoing
            service_url = await self.service_url_of(delivery.destination)
            answer = await self.connector.send_to_conversation(service_url, delivery.destination, outgoing)
            return {"id": answer.get("id"), "conversation": delivery.destination}
        if delivery.case is None:
            return {"skipped": "the case no longer exists"}
        if delivery.kind == "case.card":
            return await self.card(delivery)
        if delivery.kind == "case.thread":
            return await self.thread(delivery)
        raise PermanentDeliveryError("unsupported_kind", f"Teams does not deliver {delivery.kind!r}")

    async def digest_activity(self, delivery: Delivery) -> dict[str, Any] | None:
        """The digest card (with its chart when wanted and it fits) from the digest the row carries;
        None for a row queued before rows carried one, or one that does not decode (its text goes)."""
        data = delivery.payload.get("digest")
        if not isinstance(data, dict):
            return None
        try:
            digest = digest_from_json(data)
        except (KeyError, TypeError, ValueError) as error:
            log.warning("outbox row %s: its digest does not decode (%s); text sent", delivery.id, error)
            return None
        return await asyncio.to_thread(posted_digest_activity, digest)

    async def service_url_of(self, conversation_id: str) -> str:
        reference = await self.channel_reference(conversation_id)
        found = reference.get("serviceUrl") if reference else None
        return str(found) if found else self.service_url

    def card_activity(self, delivery: Delivery) -> dict[str, Any]:
        assert delivery.case is not None
        return {
            "type": "message",
            "summary": clip(fallback_text(delivery.case), 200),
            "attachments": [attachment(case_card(delivery.case))],
        }

    async def card(self, delivery: Delivery) -> dict[str, Any]:
        """Update the posted card in place, or start a new thread in the channel with it."""
        assert delivery.destination is not None
        service_url = await self.service_url_of(delivery.destination)
        activity = self.card_activity(delivery)
        posted = split_ref(delivery.message_ref or "")
        if posted is not None:
            thread, activity_id = posted
            try:
                await self.connector.update_activity(service_url, thread, activity_id, activity)
                return {"message_ref": delivery.message_ref, "action": "updated"}
            except TeamsActivityNotFound:
                pass  # someone deleted the card: post a fresh one and bind it instead
        created = await self.connector.create_conversation(
            service_url,
            {
                "isGroup": True,
                "bot": {"id": self.bot_id},
                "tenantId": self.tenant_id,
                "channelData": {"channel": {"id": delivery.destination}, "tenant": {"id": self.tenant_id}},
                "activity": activity,
            },
        )
        return {"message_ref": f"{created.get('id')}|{created.get('activityId')}", "action": "posted"}

    async def thread(self, delivery: Delivery) -> dict[str, Any]:
        """One timeline line as a reply in the card's thread (the card is posted first if it is not)."""
        assert delivery.destination is not None
        result: dict[str, Any] = {}
        posted = split_ref(delivery.message_ref or "")
        if posted is None:
            card = await self.card(delivery)
            result["message_ref"] = card["message_ref"]
            posted = split_ref(card["message_ref"])
            assert posted is not None
        thread, _ = posted
        line = message(mask_text(str(delivery.payload.get("text") or "")) or "(update)")
        try:
            answer = await self.connector.send_to_conversation(
                await self.service_url_of(delivery.destination), thread, line
            )
        except DeliveryError as error:
            error.result = result or None  # the card did go out: bind it, so a retry does not post it again
            raise
        result.update(thread=thread, id=answer.get("id"))
        return result

    async def direct(self, person: str, activity: dict[str, Any]) -> dict[str, Any]:
        """Into a person's 1:1 chat with the bot (`person`: their Entra object id), created if none
        is stored (`POST /v3/conversations` with the person as the only member)."""
        reference = await self.personal_reference(person)
        if reference is not None:
            service_url = str(reference.get("serviceUrl") or self.service_url)
            conversation = str(reference["conversation"]["id"])
        else:
            service_url = self.service_url
            created = await self.connector.create_conversation(
                service_url,
                {
                    "isGroup": False,
                    "bot": {"id": self.bot_id},
                    "members": [{"id": person}],
                    "tenantId": self.tenant_id,
                    "channelData": {"tenant": {"id": self.tenant_id}},
                },
            )
            conversation = str(created.get("id"))
        answer = await self.connector.send_to_conversation(service_url, conversation, activity)
        return {"id": answer.get("id"), "conversation": conversation}
