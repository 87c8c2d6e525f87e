"""Small pieces both ingest writers share (the portable one in service.py and the bulk one in bulk.py).

Whatever decides the *content* of a row lives here once, so the two writers cannot drift apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.ingest.routing import METRIC_LABELS, Route
from cxbot.ingest.schema import CustomerIn, FeedbackIn
from cxbot.models import Customer
from cxbot.pii import mask_text

SYSTEM_ACTOR = "cxbot"
#: cases.routing_reason is VARCHAR(500); a quoted unknown touchpoint can make the reason longer.
MAX_ROUTING_REASON = 500
PII_FIELDS = ("name", "email", "phone")
#: What an erased customer's external id becomes when the id itself was PII (an address, their name).
ERASED_PREFIX = "erased:"


def erased_external_id(external_id: str) -> str:
    """The tombstone `forget` leaves for an id that was itself PII: one-way, but the same every time.

    So a later delivery under the old id finds the erased row (and stays erased) without the id
    being kept in clear. A keyed hash would be lost with its key; this one is salted by purpose only.
    """
    digest = hashlib.sha256(f"cxbot-erased-customer\0{external_id.strip()}".encode()).hexdigest()
    return ERASED_PREFIX + digest[:40]


@dataclass(slots=True)
class CustomerIds:
    """The customers of a batch: database id by external id, and which of them were erased.

    An erased customer's later feedback is stored and counted, linked to the erased row, but nothing
    they (or their survey tool) send about them is written back: erasure lasts (issue #11).
    """

    ids: dict[str, int] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)


def tombstones_of(keys: list[str]) -> dict[str, str]:
    """The tombstone each external id would have, mapped back to the id."""
    return {erased_external_id(key): key for key in keys if not key.startswith(ERASED_PREFIX)}


def sort_customer_rows(
    rows: list[Any], tombstones: dict[str, str], latest: dict[str, CustomerIn]
) -> tuple[CustomerIds, dict[str, Any]]:
    """Stored customers found by id or by tombstone (ids first): their ids, and the rows to refresh.

    `rows` carry id, external_id, name, email, phone and forgotten_at. An erased row is marked so its
    later feedback keeps none of the PII sent; only rows some PII was sent for can change.
    """
    found = CustomerIds()
    stored: dict[str, Any] = {}
    for row in sorted(rows, key=lambda r: r.external_id in tombstones):
        key = tombstones.get(row.external_id, row.external_id)
        if key in found.ids:
            continue  # the id itself was found: it wins over a tombstone
        found.ids[key] = row.id
        if row.forgotten_at is not None:
            found.erased.add(key)
            continue
        sent = latest[key]
        if sent.name is not None or sent.email is not None or sent.phone is not None:
            stored[key] = row
    return found, stored


def without_erased_pii(item: FeedbackIn) -> FeedbackIn:
    """An erased customer's item as it may be stored: no name, email or phone; the comment masked."""
    assert item.customer is not None
    comment = mask_text(item.comment) if item.comment else item.comment
    return replace(item, customer=CustomerIn(id=item.customer.id), comment=comment)


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
    """Apply PII a source sent for customers already stored; a field it left out keeps its value.

    Never for an erased customer (`forgotten_at` set), not even one erased since it was read.
    """
    for key, row in stored.items():
        sent = latest[key]
        if row.forgotten_at is not None or (sent.name is None and sent.email is None and sent.phone is None):
            continue  # erased, or nothing sent and nothing to change (most rows of an import)
        changes = {
            name: getattr(sent, name)
            for name in PII_FIELDS
            if getattr(sent, name) is not None and getattr(sent, name) != getattr(row, name)
        }
        if changes:
            await session.execute(
                update(Customer)
                .where(Customer.id == row.id, Customer.forgotten_at.is_(None))
                .values(**changes, updated_at=now)
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
