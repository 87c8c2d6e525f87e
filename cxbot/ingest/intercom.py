"""Intercom conversation ratings (`conversation.rating.added`) as CSAT.

Signature (developers.intercom.com "Webhooks" → "Signed notifications"): `X-Hub-Signature:
sha1=<hex>`, the HMAC-SHA1 of the raw body keyed by the app's client secret. The notification
envelope (`type: notification_event`, `app_id`, `topic`, `data.item`) is the one in Zulip's Intercom
fixtures (zulip/zulip `zerver/webhooks/intercom/fixtures/`); `ping` is what Intercom sends when the
webhook is saved and is answered 200 with nothing stored.

The rating is `data.item.conversation_rating` (`rating` 1–5, `remark`, `created_at`, `contact`,
`teammate`). The external id is `<app_id>:<conversation id>`: conversation ids are only unique
within one workspace, so one app installed in several workspaces never collides, and a rating the
customer changes later updates the same feedback.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

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
    score_value,
    tag_names,
)

__all__ = ["INTERCOM", "RATING_TOPIC", "IntercomOptions", "conversation_items"]

RATING_TOPIC = "conversation.rating.added"


class IntercomOptions(BaseOptions, DailySyncOptions):
    """Intercom ratings are CSAT 1–5; which ones to skip and where the touchpoint comes from."""

    secret_env: str = "INTERCOM_CLIENT_SECRET"
    metric: Literal["csat"] = "csat"
    #: Skip ratings of conversations a bot (Fin, a workflow) handled rather than a teammate.
    exclude_bot_conversations: bool = False
    #: Intercom API base for `sync` (https://api.intercom.io, or the EU/AU region host).
    api_url: str = "https://api.intercom.io"
    #: The workspace's app id, for `sync` (webhooks carry it; the search API does not).
    app_id: str | None = None
    #: Env var holding the access token for the pull (Bearer).
    api_token_env: str = "INTERCOM_ACCESS_TOKEN"


def _verify(headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
    received = header(headers, "X-Hub-Signature")
    expected = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    if not same_digest(expected, received.lower()):
        raise SignatureError("signature does not match")


def _contact(item: dict[str, Any], rating: dict[str, Any]) -> dict[str, str] | None:
    """The rating's contact; name and email from the conversation's user/author when it is the same one."""
    rated = rating.get("contact") if isinstance(rating.get("contact"), dict) else {}
    people = [
        item.get("user"),
        (item.get("source") or {}).get("author") if isinstance(item.get("source"), dict) else None,
    ]
    contacts = item.get("contacts")
    if isinstance(contacts, dict) and isinstance(contacts.get("contacts"), list):
        people.extend(contacts["contacts"])
    ident = rated.get("id")
    person = next((p for p in people if isinstance(p, dict) and (ident is None or p.get("id") == ident)), {})
    return customer_dict(
        ident=person.get("external_id") or person.get("user_id") or ident or person.get("id"),
        name=person.get("name"),
        email=person.get("email"),
    )


def _parse(payload: Any, options: IntercomOptions) -> list[dict[str, Any]]:
    body = as_object(payload, "body", "intercom")
    topic = body.get("topic")
    if not isinstance(topic, str):
        raise PayloadError(f"intercom: topic: expected a string, got {kind_of(topic)}")
    if topic != RATING_TOPIC:
        return []  # ping, or another topic the app is subscribed to
    app_id = identifier(body.get("app_id"), "app_id", "intercom")
    data = as_object(body.get("data"), "data", "intercom")
    item = as_object(data.get("item"), "data.item", "intercom")
    conversation = identifier(item.get("id"), "data.item.id", "intercom")
    rating = as_object(item.get("conversation_rating"), "data.item.conversation_rating", "intercom")
    teammate = rating.get("teammate")
    if options.exclude_bot_conversations and isinstance(teammate, dict) and teammate.get("type") == "bot":
        return []
    tags = item.get("tags")
    return feedback_items(
        source="intercom",
        external_id=f"{app_id}:{conversation}",
        options=options,
        score=score_value(rating.get("rating"), "conversation_rating.rating", "intercom"),
        comment=comment_text(rating.get("remark"), "conversation_rating.remark", "intercom"),
        touchpoint=None,
        customer=_contact(item, rating),
        received_at=rating.get("created_at") or body.get("created_at"),
        tags=tag_names(tags.get("tags") if isinstance(tags, dict) else None),
    )


def conversation_items(conversation: Any, *, app_id: str, options: IntercomOptions) -> list[dict[str, Any]]:
    """A conversation from the search API (used by `sync`), keyed exactly like its webhook."""
    envelope = {"topic": RATING_TOPIC, "app_id": app_id, "data": {"item": conversation}}
    return _parse(envelope, options)


INTERCOM = Provider("intercom", IntercomOptions, _verify, _parse)
