"""Delivers outbox rows to Slack: the case card (posted once, then updated in place), its thread, reports.

Network only: the worker hands over a :class:`cxbot.outbox.contract.Delivery` with the case snapshot and the
card's `ts` if one was posted, and stores the `message_ref` this returns.
"""

from __future__ import annotations

import asyncio
import logging
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
            answer = await self.client.post_message(channel=delivery.destination, text=text)
            return {"ts": answer.get("ts"), "channel": answer.get("channel")}
        if delivery.kind == "digest":
            return await self._digest(delivery)
        if delivery.kind in ESCALATION_KINDS:
            # A user id as the channel opens (or reuses) the bot's direct message with that person.
            message = escalation_message(str(delivery.payload.get("text") or ""))
            answer = await self.client.post_message(
                channel=delivery.destination,
                unfurl_links=False,
                text=message["text"],
                blocks=message["blocks"],
            )
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
        answer = await self.client.post_message(
            channel=delivery.destination, unfurl_links=False, text=message["text"], blocks=message["blocks"]
        )
        result: dict[str, Any] = {"ts": answer.get("ts"), "channel": answer.get("channel")}
        if isinstance(digest, TeamDigest) and digest.charts:
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
        answer = await self.client.post_message(channel=delivery.destination, unfurl_links=False, **arguments)
        return {"message_ref": answer.get("ts"), "action": "posted"}

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
            answer = await self.client.post_message(
                channel=delivery.destination, text=text, thread_ts=card_ts
            )
        except DeliveryError as error:
            error.result = result or None  # the card did go out: bind it, so a retry does not post it again
            raise
        result.update(thread_ts=card_ts, ts=answer.get("ts"))
        return result
