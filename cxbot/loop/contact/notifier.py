"""The outbox's way out to customers: platform `contact`, kind `contact` (design.md §9).

Registered beside the chat notifiers (`handlers.platform_notifiers`), so one worker, one retry policy
and one claim protocol deliver chat posts and customer contacts alike. Besides `deliver`, it has
`record_outcome`, which the worker calls inside its recording transaction: every attempt lands on the
contact row, and a final result (sent, or dead: a 4xx or too many tries) on the case's timeline and
card instead of a generic report, because the people who must know are the case's team.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.config import Config
from cxbot.loop.contact.flows import PLATFORM, record_delivery
from cxbot.loop.contact.providers import OutgoingMessage, send
from cxbot.outbox.contract import CONTACT, Delivery, PermanentDeliveryError


class ContactNotifier:
    platform = PLATFORM
    kinds = frozenset({CONTACT})

    def __init__(self, config: Config, *, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.env = env if env is not None else os.environ

    async def deliver(self, delivery: Delivery) -> dict[str, Any]:
        payload = delivery.payload
        name = str(payload.get("provider") or "")
        provider = self.config.contact_providers.get(name)
        if provider is None:
            raise PermanentDeliveryError("unknown_provider", f"provider {name!r} is no longer configured")
        message = OutgoingMessage(
            channel=str(payload.get("channel")),
            to=payload.get("to"),
            subject=str(payload.get("subject") or ""),
            body=str(payload.get("body") or ""),
            idempotency_key=str(payload.get("idempotency_key")),
            case_ref=str(payload.get("case_ref")),
            team=str(payload.get("team")),
            purpose=str(payload.get("purpose") or "contact"),
            customer=dict(payload.get("customer") or {}),
        )
        message_id = await send(provider, message, env=self.env)
        return {"provider": name, "message_id": message_id}

    async def record_outcome(
        self,
        session: AsyncSession,
        *,
        payload: dict[str, Any],
        status: str,
        attempts: int,
        result: dict[str, Any] | None,
        error: str | None,
        now: datetime,
    ) -> None:
        """`status` is the outbox's: sent, retry or dead; a retry keeps the contact pending."""
        if status == "sent":
            message_id = (result or {}).get("message_id") or None
            detail = f"sent via {payload.get('provider')}" + (f" (id {message_id})" if message_id else "")
            await record_delivery(
                session,
                payload=payload,
                status="sent",
                attempts=attempts,
                detail=detail,
                message_id=message_id,
                now=now,
            )
        elif status == "dead":
            await record_delivery(
                session,
                payload=payload,
                status="failed",
                attempts=attempts,
                detail=error or "failed",
                message_id=None,
                now=now,
            )
        elif status == "retry":
            await record_delivery(
                session,
                payload=payload,
                status="pending",
                attempts=attempts,
                detail=f"attempt {attempts} failed, retrying: {error}",
                message_id=None,
                now=now,
            )


def contact_notifier(runtime: Any) -> ContactNotifier | None:
    """The notifier when any contact provider is configured; None keeps contacts queued, visibly pending."""
    if not runtime.config.contact_providers:
        return None
    return ContactNotifier(runtime.config)
