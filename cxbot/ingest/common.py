"""Small pieces both ingest writers share (the portable one in service.py and the bulk one in bulk.py).

Whatever decides the *content* of a row lives here once, so the two writers cannot drift apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, column, func, text, update, values
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


#: (customer id, name, email, phone): the PII to write, None where the stored value stays.
PiiChange = tuple[int, str | None, str | None, str | None]
#: Changed customers per UPDATE where each value is a bound parameter (SQLite): 4 per row, under 32,766.
REFRESH_ROWS_PER_STATEMENT = 7_000
#: PostgreSQL: the batch's changes as four arrays, so the statement text (and its prepared plan) is
#: the same for every batch. Each sent field is set only where it changed (NULL: keep the stored value).
_REFRESH_POSTGRESQL = text(
    "UPDATE customers SET name = COALESCE(sent.name, customers.name),"
    " email = COALESCE(sent.email, customers.email),"
    " phone = COALESCE(sent.phone, customers.phone), updated_at = :now"
    " FROM unnest(CAST(:ids AS BIGINT[]), CAST(:names AS VARCHAR[]), CAST(:emails AS VARCHAR[]),"
    " CAST(:phones AS VARCHAR[])) AS sent (id, name, email, phone)"
    " WHERE customers.id = sent.id AND customers.forgotten_at IS NULL"
).bindparams(bindparam("now", type_=Customer.__table__.c.updated_at.type))


def pii_changes(stored: dict[str, Any], latest: dict[str, CustomerIn]) -> list[PiiChange]:
    """(id, name, email, phone) for each stored customer whose sent PII differs, sorted by id.

    A field is None where it was not sent or did not change. Erased rows and rows sent without PII
    (most rows of an import) have no entry.
    """
    changed = []
    for key, row in stored.items():
        sent = latest[key]
        if row.forgotten_at is not None or (sent.name is None and sent.email is None and sent.phone is None):
            continue
        name, email, phone = (
            None if value is None or value == getattr(row, field) else value
            for field, value in ((field, getattr(sent, field)) for field in PII_FIELDS)
        )
        if name is not None or email is not None or phone is not None:
            changed.append((row.id, name, email, phone))
    changed.sort()  # concurrent batches lock the rows they share in the same order
    return changed


async def refresh_customers(
    session: AsyncSession, stored: dict[str, Any], latest: dict[str, CustomerIn], *, now: datetime
) -> None:
    """Apply PII a source sent for customers already stored; a field it left out keeps its value.

    One UPDATE … FROM for the whole batch (a round trip per customer capped `POST /feedback` at
    600-900 items/s when every item carried new PII). Never for an erased customer (`forgotten_at`
    set), not even one erased since it was read: the statement checks it again.
    """
    changed = pii_changes(stored, latest)
    if not changed:
        return
    if session.bind.dialect.name == "postgresql":
        ids, names, emails, phones = (list(field) for field in zip(*changed, strict=True))
        await session.execute(
            _REFRESH_POSTGRESQL, {"ids": ids, "names": names, "emails": emails, "phones": phones, "now": now}
        )
        return
    # SQLite (3.33 or later for UPDATE … FROM): the changes as a VALUES list, bound value by value.
    for start in range(0, len(changed), REFRESH_ROWS_PER_STATEMENT):
        sent = (
            values(
                column("id", Customer.__table__.c.id.type),
                *(column(name, Customer.__table__.c[name].type) for name in PII_FIELDS),
                name="sent",
            )
            .data(changed[start : start + REFRESH_ROWS_PER_STATEMENT])
            .cte("sent")
        )
        await session.execute(
            update(Customer)
            .where(Customer.id == sent.c.id, Customer.forgotten_at.is_(None))
            .values(
                **{name: func.coalesce(sent.c[name], Customer.__table__.c[name]) for name in PII_FIELDS},
                updated_at=now,
            )
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
