"""Zendesk CSAT webhooks: a trigger-connected webhook (body written by the admin) or an event subscription.

Signature (developer.zendesk.com "Verifying webhook authenticity", checked against the test vector in
aaronellington/zendesk-go `zendesk/webhook_test.go`, which uses Zendesk's published static test secret
`dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==`): `X-Zendesk-Webhook-Signature` is
base64(HMAC-SHA256(secret, timestamp + raw body)) where the timestamp is the
`X-Zendesk-Webhook-Signature-Timestamp` header, prepended with no separator. The secret string is the
key as typed (it is not base64-decoded). A timestamp further than :data:`ZENDESK_TOLERANCE` from our
clock is refused as a replay.

Two payload shapes, told apart by a `type` starting with `zen:event-type:`:

* **Trigger body** (docs/providers.md has the exact JSON to paste): a flat object with `ticket_id`,
  `rating`, `comment`, `requester_id`, `requester_email`, `requester_name`, `group`, `brand`,
  `updated_at`, filled from Zendesk placeholders.
* **Event subscription** `zen:event-type:ticket.csat_received`: the event envelope (`type`, `id`,
  `time`, `detail` = the ticket, `event`), whose `event.current` (or `event` itself) holds `score`
  (or `rating`) and `comment`. Only ids are sent, so the touchpoint is mapped from the group or brand id.

Either way the external id is the ticket id: one ticket has one CSAT answer, a rating changed later
updates it, and receiving both shapes for the same ticket never counts it twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from cxbot.ingest.webhook_base import (
    BaseOptions,
    DailySyncOptions,
    PayloadError,
    Provider,
    SignatureError,
    as_object,
    comment_text,
    customer_dict,
    feedback_items,
    header,
    identifier,
    kind_of,
    same_digest,
    scalar_text,
)
from cxbot.limits import parse_unix_seconds

__all__ = ["ZENDESK", "ZENDESK_TOLERANCE", "ZendeskOptions", "rating_items", "zendesk_signature"]

#: How far the signature timestamp may be from our clock before a delivery counts as a replay.
ZENDESK_TOLERANCE = timedelta(minutes=5)

CSAT_EVENT = "zen:event-type:ticket.csat_received"
EVENT_PREFIX = "zen:event-type:"

#: Ratings that mean "offered but not answered yet": acknowledged, nothing stored.
_UNANSWERED = frozenset({"", "offered", "unoffered", "none", "null"})

#: Each numeric scale of the newer CSAT mapped onto cxbot's 1–5 CSAT.
_SCALES: dict[int, dict[int, int]] = {2: {1: 1, 2: 5}, 3: {1: 1, 2: 3, 3: 5}, 5: {n: n for n in range(1, 6)}}


class ZendeskOptions(BaseOptions, DailySyncOptions):
    """How to read a Zendesk rating and where its touchpoint comes from."""

    secret_env: str = "ZENDESK_WEBHOOK_SECRET"
    metric: Literal["csat"] = "csat"
    #: Points on the numeric scale of the newer CSAT (good/bad words are understood whatever this is).
    rating_scale: Literal[2, 3, 5] = 5
    #: Which ticket field names the touchpoint: its group or its brand (name in a trigger body, id in
    #: an event).
    touchpoint_field: Literal["group", "brand"] | None = "group"
    #: Group or brand (name or id) → touchpoint key; a value not listed is used as the touchpoint itself.
    touchpoint_map: dict[str, str] = Field(default_factory=dict)
    #: Zendesk API base for `sync` (https://<subdomain>.zendesk.com); credentials below by env name.
    api_url: str | None = None
    #: Env var holding `agent@example.com/token:<api token>` for the pull (sent as Basic auth).
    api_token_env: str = "ZENDESK_API_TOKEN"


def zendesk_signature(secret: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, timestamp + body)): what Zendesk sends and what we compare with."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _signed_at(stamp: str) -> datetime:
    """Zendesk sends ISO 8601 (`2026-11-02T11:58:00Z`); Unix seconds are accepted too."""
    seconds = parse_unix_seconds(stamp)
    if seconds is not None:
        return datetime.fromtimestamp(seconds, tz=UTC)
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError("X-Zendesk-Webhook-Signature-Timestamp is not a timestamp") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _verify(headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
    received = header(headers, "X-Zendesk-Webhook-Signature")
    stamp = header(headers, "X-Zendesk-Webhook-Signature-Timestamp")
    if not same_digest(zendesk_signature(secret, stamp, body), received):
        raise SignatureError("signature does not match")
    if abs(now - _signed_at(stamp)) > ZENDESK_TOLERANCE:
        raise SignatureError("X-Zendesk-Webhook-Signature-Timestamp is too far from the current time")


def csat_score(value: Any, scale: int) -> int | None:
    """A Zendesk rating as cxbot CSAT 1–5; None when the survey was offered but not answered."""
    if isinstance(value, bool):
        raise PayloadError(f"zendesk: rating: expected good, bad or a number, got {kind_of(value)}")
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        points = int(value)
        mapped = _SCALES[scale].get(points)
        if mapped is None or points != float(value):
            raise PayloadError(f"zendesk: rating: {value} is not on the {scale}-point scale (1-{scale})")
        return mapped
    if not isinstance(value, str | None):
        raise PayloadError(f"zendesk: rating: expected good, bad or a number, got {kind_of(value)}")
    word = (value or "").strip().lower()
    if word in _UNANSWERED:
        return None
    # Legacy CSAT renders "Good" / "Bad", or the survey labels "Good, I'm satisfied" / "Bad, I'm unsatisfied".
    head = word.split(",")[0].split()[0]
    if head == "good":
        return 5
    if head == "bad":
        return 1
    raise PayloadError(f"zendesk: rating: {value!r} is not good, bad or a number")


def _touchpoint(value: Any, options: ZendeskOptions) -> str | None:
    text = scalar_text(value)
    if text is None or text == "0":
        return None
    return options.touchpoint_map.get(text, text)


def _parse_trigger(body: dict[str, Any], options: ZendeskOptions) -> list[dict[str, Any]]:
    ticket_id = identifier(body.get("ticket_id"), "ticket_id", "zendesk")
    score = csat_score(body.get("rating"), options.rating_scale)
    if score is None:
        return []
    field = options.touchpoint_field
    return feedback_items(
        source="zendesk",
        external_id=ticket_id,
        options=options,
        score=score,
        comment=comment_text(body.get("comment"), "comment", "zendesk"),
        touchpoint=_touchpoint(body.get(field), options) if field else None,
        customer=customer_dict(
            ident=body.get("requester_id"), name=body.get("requester_name"), email=body.get("requester_email")
        ),
        received_at=scalar_text(body.get("updated_at")),
        tags=[],
    )


def _parse_event(body: dict[str, Any], options: ZendeskOptions) -> list[dict[str, Any]]:
    if body["type"] != CSAT_EVENT:
        return []  # another ticket or user event the webhook is also subscribed to
    ticket = as_object(body.get("detail"), "detail", "zendesk")
    event = as_object(body.get("event"), "event", "zendesk")
    current = event.get("current") if isinstance(event.get("current"), dict) else event
    score = csat_score(current.get("score", current.get("rating")), options.rating_scale)
    if score is None:
        return []
    field = options.touchpoint_field
    return feedback_items(
        source="zendesk",
        external_id=identifier(ticket.get("id"), "detail.id", "zendesk"),
        options=options,
        score=score,
        comment=comment_text(current.get("comment"), "event.comment", "zendesk"),
        touchpoint=_touchpoint(ticket.get(f"{field}_id"), options) if field else None,
        customer=customer_dict(ident=ticket.get("requester_id")),
        received_at=body.get("time") or ticket.get("updated_at"),
        tags=[],
    )


def rating_items(rating: Any, options: ZendeskOptions) -> list[dict[str, Any]]:
    """One record of `GET /api/v2/satisfaction_ratings` (used by `sync`), keyed like the webhooks."""
    record = as_object(rating, "satisfaction_rating", "zendesk")
    score = csat_score(record.get("score"), options.rating_scale)
    if score is None:
        return []
    field = options.touchpoint_field
    return feedback_items(
        source="zendesk",
        external_id=identifier(record.get("ticket_id"), "satisfaction_rating.ticket_id", "zendesk"),
        options=options,
        score=score,
        comment=comment_text(record.get("comment"), "satisfaction_rating.comment", "zendesk"),
        touchpoint=_touchpoint(record.get(f"{field}_id"), options) if field else None,
        customer=customer_dict(ident=record.get("requester_id")),
        received_at=record.get("updated_at") or record.get("created_at"),
        tags=[],
    )


def _parse(payload: Any, options: ZendeskOptions) -> list[dict[str, Any]]:
    body = as_object(payload, "body", "zendesk")
    kind = body.get("type")
    if isinstance(kind, str) and kind.startswith(EVENT_PREFIX):
        return _parse_event(body, options)
    if "ticket_id" not in body:
        raise PayloadError(
            "zendesk: expected a trigger body with ticket_id and rating, or a zen:event-type event"
        )
    return _parse_trigger(body, options)


ZENDESK = Provider("zendesk", ZendeskOptions, _verify, _parse)
