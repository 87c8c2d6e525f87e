"""Customer PII sent with feedback is refreshed in one UPDATE per batch, on both writers and backends.

A batch where every item names a stored customer used to send one UPDATE per customer (500 round
trips per `POST /feedback` batch). Now it is one statement; what lands must not change: every changed
field, only the fields sent, nothing for customers whose PII is the same, and nothing at all for an
erased customer, found by id or by tombstone, even one erased after the batch read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, update

from cxbot.db import transaction
from cxbot.ingest.common import erased_external_id, refresh_customers, sort_customer_rows, tombstones_of
from cxbot.ingest.schema import CustomerIn
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.models import Case, Customer, Feedback
from cxbot.runtime import Runtime
from tests.support.clock import FrozenClock

CUSTOMERS = 40
ERASED = "c0"
#: Erased by `forget` when its id was the customer's email: only the tombstone is stored.
ERASED_BY_EMAIL = "eve@example.com"


def stored_pii(n: int) -> dict[str, str]:
    return {"id": f"c{n}", "name": f"Name {n}", "email": f"c{n}@example.com", "phone": f"+1 555 {n:04d}"}


def sent_pii(n: int) -> dict[str, str]:
    """What the batch sends for customer n: four kinds of change, in turn."""
    old = stored_pii(n)
    kind = n % 4
    if kind == 0:  # everything new
        return {
            "id": old["id"],
            "name": f"New {n}",
            "email": f"new{n}@example.com",
            "phone": f"+1 666 {n:04d}",
        }
    if kind == 1:  # only a new email; name and phone not sent
        return {"id": old["id"], "email": f"moved{n}@example.com"}
    if kind == 2:  # the same as stored: no change
        return dict(old)
    return {"id": old["id"], "name": f"Renamed {n}", "email": old["email"]}  # a new name, the same email


def item(external_id: str, customer: dict[str, str]) -> dict[str, Any]:
    return {"external_id": external_id, "metric": "nps", "score": 9, "customer": customer}


async def store(runtime: Runtime, items: list[dict[str, Any]], *, bulk: bool = False) -> list[str]:
    async with transaction(runtime.sessions) as session:
        results = await ingest_items(
            session,
            ingestor_for(runtime.config),
            items,
            now=runtime.clock(),
            default_source="survey",
            bulk=bulk,
        )
    return [r.status for r in results]


async def customers(runtime: Runtime) -> dict[str, Customer]:
    async with runtime.sessions() as session:
        return {c.external_id: c for c in (await session.execute(select(Customer))).scalars()}


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """Every SQL statement sent to the database inside the block."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def erase(runtime: Runtime, external_id: str, *, tombstone: bool = False) -> None:
    """What `forget` leaves in `customers` (the rest of its scrubbing does not matter here)."""
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Customer)
            .where(Customer.external_id == external_id)
            .values(
                name=None,
                email=None,
                phone=None,
                forgotten_at=runtime.clock(),
                external_id=erased_external_id(external_id) if tombstone else external_id,
            )
        )


@pytest.mark.parametrize("bulk", [False, True], ids=["portable", "bulk"])
async def test_a_batch_refreshes_every_changed_customer_in_one_update(
    runtime: Runtime, clock: FrozenClock, bulk: bool
) -> None:
    first = [item(f"first-{n}", stored_pii(n)) for n in range(CUSTOMERS)]
    first.append(item("first-eve", {"id": ERASED_BY_EMAIL, "name": "Eve", "email": ERASED_BY_EMAIL}))
    assert set(await store(runtime, first)) == {"created"}
    await erase(runtime, ERASED)
    await erase(runtime, ERASED_BY_EMAIL, tombstone=True)
    before = await customers(runtime)
    stored_at = clock()
    changed_at = clock.advance(hours=1)

    batch = [item(f"second-{n}", sent_pii(n)) for n in range(CUSTOMERS)]
    batch.append(item("second-eve", {"id": ERASED_BY_EMAIL, "name": "Eve Again", "phone": "+1 777 0000"}))
    # A customer named twice in one batch gets the later item's details only, as before.
    batch.append(item("second-again-5", {"id": "c5", "name": "Latest 5"}))
    with statements(runtime) as sent:
        assert set(await store(runtime, batch, bulk=bulk)) == {"created"}
    assert len([s for s in sent if "UPDATE customers" in s]) == 1, sent

    after = await customers(runtime)
    assert len(after) == CUSTOMERS + 1  # nobody new: the erased ones were found, by id and by tombstone
    for n in range(1, CUSTOMERS):
        expected = {**stored_pii(n), **({"name": "Latest 5"} if n == 5 else sent_pii(n))}
        row = after[f"c{n}"]
        assert (row.name, row.email, row.phone) == (expected["name"], expected["email"], expected["phone"]), n
        unchanged = expected == stored_pii(n)
        assert row.updated_at == (stored_at if unchanged else changed_at), n
    for erased in (after[ERASED], after[erased_external_id(ERASED_BY_EMAIL)]):
        assert (erased.name, erased.email, erased.phone) == (None, None, None)
        assert erased.forgotten_at == stored_at
        assert erased.updated_at == before[erased.external_id].updated_at


async def test_a_customer_erased_after_the_batch_read_them_stays_erased(runtime: Runtime) -> None:
    assert await store(runtime, [item("f-1", stored_pii(1)), item("f-2", stored_pii(2))]) == ["created"] * 2
    latest = {n: CustomerIn(id=n, name="Back Again", email="back@example.com") for n in ("c1", "c2")}
    async with transaction(runtime.sessions) as session:
        columns = (Customer.id, Customer.external_id, Customer.name, Customer.email, Customer.phone)
        rows = (
            await session.execute(
                select(*columns, Customer.forgotten_at).where(Customer.external_id.in_(list(latest)))
            )
        ).all()
        found, stored = sort_customer_rows(rows, tombstones_of(list(latest)), latest)
        assert set(stored) == {"c1", "c2"} and not found.erased
        # `forget` lands between the read and the refresh (same transaction here, so no lock waits).
        await session.execute(
            update(Customer)
            .where(Customer.external_id == "c1")
            .values(name=None, email=None, phone=None, forgotten_at=runtime.clock())
        )
        await refresh_customers(session, stored, latest, now=runtime.clock())
    after = await customers(runtime)
    assert (after["c1"].name, after["c1"].email, after["c1"].forgotten_at is not None) == (None, None, True)
    assert (after["c2"].name, after["c2"].email, after["c2"].phone) == (
        "Back Again",
        "back@example.com",
        stored_pii(2)["phone"],
    )


@pytest.mark.parametrize("bulk", [False, True], ids=["portable", "bulk"])
async def test_an_erased_customers_comment_is_masked_before_it_is_routed(
    runtime: Runtime, bulk: bool
) -> None:
    """The bulk writer routes a round while it looks its customers up; an erased customer's item is
    routed again once its comment is masked, so an address in it cannot pick the team."""
    await store(runtime, [item("r0", stored_pii(0)), item("r1", stored_pii(1))])
    await erase(runtime, "c0")
    comment = "Terrible service, write to refund@shop.example please"  # "refund" only in the address
    sent = [
        {**item(name, {"id": customer}), "score": 2, "comment": comment, "touchpoint": "Nowhere Known"}
        for name, customer in (("m0", "c0"), ("m1", "c1"))
    ]
    assert await store(runtime, sent, bulk=bulk) == ["created", "created"]
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(Feedback.external_id, Feedback.comment, Feedback.team_key, Case.routing_rule)
                .join(Case, Case.feedback_id == Feedback.id)
                .where(Feedback.external_id.in_(["m0", "m1"]))
                .order_by(Feedback.external_id)
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("m0", "Terrible service, write to r***@s***.example please", "support", "fallback"),
        ("m1", comment, "billing", "rule:money-words"),
    ]
