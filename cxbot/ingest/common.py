"""Small pieces both ingest writers share (the portable one in service.py and the bulk one in bulk.py).

Whatever decides the *content* of a row lives here once, so the two writers cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.ingest.routing import METRIC_LABELS, Route
from cxbot.ingest.schema import CustomerIn, FeedbackIn
from cxbot.models import Customer

SYSTEM_ACTOR = "cxbot"
#: cases.routing_reason is VARCHAR(500); a quoted unknown touchpoint can make the reason longer.
MAX_ROUTING_REASON = 500
PII_FIELDS = ("name", "email", "phone")


def clip(text: str, limit: int) -> str:
    """Cut text to a column's length, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def case_title(item: FeedbackIn, route: Route) -> str:
    """The one-line title a case opened by ingest gets."""
    where = route.touchpoint_key or item.touchpoint or "no touchpoint"
    if item.score is not None:
        return f"{METRIC_LABELS[item.metric]} {item.score:g} at {where}"
    return f"Negative comment at {where}"


def routing_reason(why: str, route: Route) -> str:
    """Why the case exists and why it went to its team, as `cases.routing_reason` holds it."""
    return clip(f"{why}; {route.reason}", MAX_ROUTING_REASON)


async def refresh_customers(
    session: AsyncSession, stored: dict[str, Any], latest: dict[str, CustomerIn], *, now: datetime
) -> None:
    """Apply PII a source sent for customers already stored; a field it left out keeps its value."""
    for key, row in stored.items():
        sent = latest[key]
        if sent.name is None and sent.email is None and sent.phone is None:
            continue  # nothing sent, nothing to change (most rows of an import)
        changes = {
            name: getattr(sent, name)
            for name in PII_FIELDS
            if getattr(sent, name) is not None and getattr(sent, name) != getattr(row, name)
        }
        if changes:
            await session.execute(
                update(Customer).where(Customer.id == row.id).values(**changes, updated_at=now)
            )


@dataclass(slots=True)
class ItemResult:
    """What happened to one item, in the order the items came in."""

    index: int
    status: str  # created | updated | duplicate | error
    reason: str | None = None
    feedback_id: int | None = None
    case: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.feedback_id is not None:
            out["id"] = self.feedback_id
        if self.case is not None:
            out["case"] = self.case
        if self.warnings:
            out["warnings"] = self.warnings
        return out


@dataclass(slots=True)
class PendingItem:
    """An item of a batch on its way in: its place in the batch, its route and its result so far."""

    index: int
    item: FeedbackIn
    route: Route
    result: ItemResult
