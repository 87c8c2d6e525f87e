"""Delivers outbox rows to Slack: the case card (posted once, then updated in place), its thread, reports.

Network only: the worker hands over a :class:`cxbot.outbox.contract.Delivery` with the case snapshot and the
card's `ts` if one was posted, and stores the `message_ref` this returns.

Every post carries message metadata naming its outbox row and part (`cxbot_outbox`: card, line or
message). A delivery whose earlier attempt may have gone out (`maybe_sent_since`: its worker stopped
before recording it) first looks for that post in the conversation's history and, found, answers
with it instead of posting a second time. A lookup Slack refuses (a missing `*:history` scope, a
channel the bot is not in) is logged and the message posted again, as before: at least once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from cxbot.digest.chart import trend_chart_png
from cxbot.digest.model import TeamDigest
from cxbot.digest.serialize import digest_from_json
from cxbot.outbox.contract import (
    CHAT_KINDS,
    ESCALATION_KINDS,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
)
from cxbot.pii import mask_text
from handlers.slack.blocks import (
    clip,
)
from handlers.slack.client import SlackClient
from handlers.slack.digest_blocks import digest_message
from handlers.slack.errors import SlackMessageNotFound
from handlers.slack.renderers import (
    case_card,
    case_fallback_text,
    escalation_message,
    text_message,
    thread_line,
)

MAX_TEXT = 3000
log = logging.getLogger("handlers.slack")

#: The metadata `event_type` of cxbot's posts: `event_payload` names the outbox row and the part.
POST_MARKER = "cxbot_outbox"
#: History pages read, at most, looking for an earlier attempt's post (Slack's page: up to 200).
LOOKUP_PAGES = 5
LOOKUP_PAGE_SIZE = 200


class SlackNotifier:
    platform = "slack"
    kinds = CHAT_KINDS

    def __init__(self, client: SlackClient) -> None:
        self.client = client

    async def deliver(self, delivery: Delivery) -> dict[str, Any]:
        if not delivery.destination:
            raise PermanentDeliveryError(
                "no_destination", "the outbox row names no channel", scope="destination"
            )
        if delivery.kind == "report":
            text = clip(str(delivery.payload.get("text") or "cxbot report"), MAX_TEXT)
            answer = await self._post(delivery, "message", channel=delivery.destination, text=text)
            return {"ts": answer.get("ts"), "channel": answer.get("channel")}
        if delivery.kind == "digest":
            return await self._digest(delivery)
        if delivery.kind in ESCALATION_KINDS:
            # A user id as the channel opens (or reuses) the bot's direct message with that person.
            message = escalation_message(str(delivery.payload.get("text") or ""))
            answer = await self._post_rendered(delivery, message)
            return {"ts": answer.get("ts"), "channel": answer.get("channel")}
        if delivery.case is None:
            return {"skipped": "the case no longer exists"}
        if delivery.kind == "case.card":
            return await self._card(delivery)
        if delivery.kind == "case.thread":
            return await self._thread(delivery)
        raise PermanentDeliveryError("unsupported_kind", f"Slack does not deliver {delivery.kind!r}")

    async def _digest(self, delivery: Delivery) -> dict[str, Any]:
        """Block Kit from the digest in the payload (plain text for rows queued before it had one),
        then the trend chart in the digest's thread when the team wants one and matplotlib is there."""
        assert delivery.destination is not None
        data = delivery.payload.get("digest")
        digest = digest_from_json(data) if isinstance(data, dict) else None
        if digest is not None:
            message = digest_message(digest)
        else:
            message = text_message(
                str(delivery.payload.get("text") or ""), cut_note="(cut short; see `/cx digest preview`)"
            )
        answer = await self._post_rendered(delivery, message)
        result: dict[str, Any] = {"ts": answer.get("ts"), "channel": answer.get("channel")}
        if answer.get("found"):  # posted by the attempt that was not recorded; its chart went or not
            result["found"] = True
        elif isinstance(digest, TeamDigest) and digest.charts:
            result["chart"] = await self._chart(delivery.destination, digest, thread_ts=answer.get("ts"))
        return result

    async def _chart(self, channel: str, digest: TeamDigest, *, thread_ts: str | None) -> str:
        """Best effort: the digest is already posted, so a chart that cannot be made or sent is logged,
        never retried (a retry would post the digest twice)."""
        try:
            png = await asyncio.to_thread(trend_chart_png, digest)
            if png is None:
                return "unavailable"
            uploaded = await self.client.upload_file(
                channel=channel,
                filename=f"cx-trend-{digest.team_key}-{digest.report_date.isoformat()}.png",
                content=png,
                title=f"{digest.team_name}: 28-day trend with 95% CI",
                thread_ts=thread_ts,
            )
        except Exception as error:
            log.warning("digest chart for %s not uploaded: %s", digest.team_key, error)
            return f"failed: {error}"
        file = uploaded.get("file") or {}
        return str(file.get("id") or "uploaded")

    async def _card(self, delivery: Delivery) -> dict[str, Any]:
        assert delivery.case is not None and delivery.destination is not None
        arguments = {"text": case_fallback_text(delivery.case), "blocks": case_card(delivery.case)}
        if delivery.message_ref:
            try:
                await self.client.update_message(
                    channel=delivery.destination, ts=delivery.message_ref, **arguments
                )
                return {"message_ref": delivery.message_ref, "action": "updated"}
            except SlackMessageNotFound:
                pass  # someone deleted the card: post a fresh one and bind it instead
        answer = await self._post(
            delivery, "card", channel=delivery.destination, unfurl_links=False, **arguments
        )
        return {"message_ref": answer.get("ts"), "action": "found" if answer.get("found") else "posted"}

    async def _thread(self, delivery: Delivery) -> dict[str, Any]:
        assert delivery.case is not None and delivery.destination is not None
        card_ts = delivery.message_ref
        result: dict[str, Any] = {}
        if not card_ts:  # the card was never posted (older case, lost row): post it now, then the line
            posted = await self._card(delivery)
            card_ts = posted["message_ref"]
            result["message_ref"] = card_ts
        text = thread_line(mask_text(str(delivery.payload.get("text") or "")) or "(update)")
        try:
            answer = await self._post(
                delivery, "line", channel=delivery.destination, text=text, thread_ts=card_ts
            )
        except DeliveryError as error:
            error.result = result or None  # the card did go out: bind it, so a retry does not post it again
            raise
        result.update(thread_ts=card_ts, ts=answer.get("ts"))
        return result

    async def _post_rendered(self, delivery: Delivery, message: dict[str, Any]) -> dict[str, Any]:
        """A rendered message (fallback text and blocks) to the delivery's destination, link previews off."""
        assert delivery.destination is not None
        return await self._post(
            delivery,
            "message",
            channel=delivery.destination,
            unfurl_links=False,
            text=message["text"],
            blocks=message["blocks"],
        )

    async def _post(self, delivery: Delivery, part: str, *, channel: str, **arguments: Any) -> dict[str, Any]:
        """Post one part of a delivery, marked with its outbox row; an attempt in doubt looks first."""
        marker = {"event_type": POST_MARKER, "event_payload": {"outbox_id": delivery.id, "part": part}}
        if delivery.maybe_sent_since is not None:
            found = await self._earlier_post(
                channel, marker, since=delivery.maybe_sent_since, thread_ts=arguments.get("thread_ts")
            )
            if found is not None:
                log.info(
                    "outbox %s: its %s was already posted (%s); not posting again", delivery.id, part, found
                )
                return {"ts": found, "channel": channel, "found": True}
        return await self.client.post_message(channel=channel, metadata=marker, **arguments)

    async def _earlier_post(
        self, channel: str, marker: dict[str, Any], *, since: datetime, thread_ts: str | None
    ) -> str | None:
        """The `ts` of a post carrying `marker` in the conversation since `since`, if there is one.

        A thread line is looked for among the thread's replies, anything else in the channel's
        history; a person's id is first turned into the direct message's channel. Rate limits and
        outages raise (the row is retried, still in doubt); a refusal returns None (posted again)."""
        try:
            conversation = channel
            if channel[:1] in ("U", "W"):  # a person: the bot's direct message with them
                opened = await self.client.call("conversations.open", users=channel)
                conversation = str((opened.get("channel") or {}).get("id") or channel)
            cursor = None
            for _ in range(LOOKUP_PAGES):
                page_of: dict[str, Any] = {"channel": conversation, "oldest": f"{since.timestamp():.6f}"}
                page_of.update(include_all_metadata=True, limit=LOOKUP_PAGE_SIZE)
                if cursor:
                    page_of["cursor"] = cursor
                if thread_ts:
                    page = await self.client.read("conversations.replies", ts=thread_ts, **page_of)
                else:
                    page = await self.client.read("conversations.history", **page_of)
                for message in page.get("messages") or ():
                    if _marked(message, marker):
                        return str(message.get("ts"))
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not page.get("has_more") or not cursor:
                    return None
            return None
        except PermanentDeliveryError as error:
            log.warning("cannot look in %s for an earlier post (%s): posting again", channel, error.code)
            return None


def _marked(message: dict[str, Any], marker: dict[str, Any]) -> bool:
    """Whether a message from the history carries `marker` (its outbox row and part)."""
    metadata = message.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    wanted = marker["event_payload"]
    return (
        metadata.get("event_type") == marker["event_type"]
        and str(payload.get("outbox_id")) == str(wanted["outbox_id"])
        and payload.get("part") == wanted["part"]
    )
