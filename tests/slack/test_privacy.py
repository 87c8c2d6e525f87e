"""PII on Slack: the card's Reveal button (ephemeral, audited, team only) and `/cx forget` (admins)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import JSON, String, Text, select

from cxbot.config import Config
from cxbot.models import AuditEvent, Base, CaseEvent, Contact, Customer, OutboxMessage, Resurvey
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender, slack_settings
from tests.support.platforms import platform_notifiers
from tests.support.resurvey import (
    ADA,
    ADMIN,
    AGENT,
    MANAGER,
    OUTSIDER,
    SECRET,
    negative_case,
    say,
    with_contact,
)

PII = (ADA["email"], ADA["phone"], ADA["name"], "Lovelace")
COMMENT = f"I am {ADA['name']}, call me on {ADA['phone']} or write to {ADA['email']}. Awful wait."


@pytest.fixture
def settings(database_url: str, fake_slack: FakeSlack) -> Settings:
    return slack_settings(database_url, fake_slack, API_KEY).model_copy(update={"secret_key": SECRET})


@pytest.fixture
async def runtime(settings: Settings, example_config: Config, clock: FrozenClock) -> AsyncIterator[Runtime]:
    built = Runtime.build(settings=settings, config=with_contact(example_config), clock=clock)
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def deliver_chat(runtime: Runtime, clock: FrozenClock) -> None:
    """Deliver the chat side of the outbox only; customer contacts stay pending, as if not yet due."""
    notifiers = {name: n for name, n in platform_notifiers(runtime).items() if name == "slack"}
    await OutboxWorker(runtime, notifiers).run_once(now=clock.now)


def pii_in(text: str) -> list[str]:
    return [value for value in PII if value.lower() in text.lower()]


async def pii_left_in_database(runtime: Runtime) -> list[str]:
    """Every text and JSON column of every table, read generically from the schema: where PII remains."""
    found = []
    async with runtime.sessions() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not columns:
                continue
            rows = await session.execute(select(*columns))
            for row in rows:
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                    for hit in pii_in(text):
                        found.append(f"{table.name}.{column.name}: {hit}")
    return found


async def test_reveal_shows_the_team_the_details_ephemerally_and_audits_it(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    case_id = await negative_case(slack.http, customer=ADA, comment=COMMENT)
    await deliver_chat(runtime, clock)
    [card] = fake_slack.calls("chat.postMessage")
    blocks = json.loads(card.body["blocks"]) if isinstance(card.body["blocks"], str) else card.body["blocks"]
    actions = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert f"cx_reveal:{case_id}" in actions
    assert ADA["email"] not in json.dumps(card.body) and ADA["phone"] not in json.dumps(card.body)

    await slack.click(f"cx_reveal:{case_id}", user=OUTSIDER)
    [denied] = fake_slack.responses()
    assert denied["text"].startswith("Not allowed: only members of support (owning this customer's feedback)")
    assert pii_in(denied["text"]) == []
    async with runtime.sessions() as session:
        assert (await session.execute(select(AuditEvent))).first() is None

    clock.advance(minutes=5)
    await slack.click(f"cx_reveal:{case_id}", user=AGENT)
    _, shown = fake_slack.responses()
    assert shown["response_type"] == "ephemeral" and shown["replace_original"] is False
    for value in (ADA["name"], ADA["email"], ADA["phone"]):
        assert value in shown["text"]
    async with runtime.sessions() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
        [audit] = (await session.execute(select(AuditEvent))).scalars()
        events = (
            (await session.execute(select(CaseEvent).where(CaseEvent.kind == "pii_reveal"))).scalars().all()
        )
    assert (audit.actor, audit.action, audit.subject, audit.at) == (
        runtime.config.person_of(AGENT),
        "pii_reveal",
        f"customer:{customer.id}",
        clock.now,
    )
    assert pii_in(audit.detail or "") == []
    assert [(e.case_id, e.actor) for e in events] == [(case_id, runtime.config.person_of(AGENT))]


async def test_forget_erases_the_customer_everywhere_and_rerenders_the_card(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    case_id = await negative_case(slack.http, customer=ADA, comment=COMMENT)
    other = await negative_case(
        slack.http, external_id="neg-2", customer={"id": "cust-bob", "email": "bob@x.org"}
    )
    await deliver_chat(runtime, clock)
    assert (await say(runtime, f"ack CX-{case_id}", user=MANAGER)).ok
    contacted = await say(runtime, f"contact CX-{case_id} email We are sorry, Ada. Call us back any time.")
    assert contacted.ok, contacted.text
    assert (await say(runtime, f"resurvey CX-{case_id}")).ok
    await deliver_chat(runtime, clock)
    async with runtime.sessions() as session:
        pending = (
            (await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "contact")))
            .scalars()
            .all()
        )
    assert [row.status for row in pending] == ["pending", "pending"]
    assert await pii_left_in_database(runtime)  # the test can see PII before the erasure

    # Not an admin: refused, nothing erased.
    await slack.command("forget cust-ada", user=MANAGER)
    assert fake_slack.responses()[-1]["text"] == "Not allowed: only admins can erase customer data"
    clock.advance(minutes=1)
    await slack.command("forget cust-ada", user=ADMIN)
    reply = fake_slack.responses()[-1]
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("Customer ") and "2 pending contact(s) cancelled" in reply["text"]

    assert await pii_left_in_database(runtime) == []
    async with runtime.sessions() as session:
        customer = (
            await session.execute(select(Customer).where(Customer.external_id == "cust-ada"))
        ).scalar_one()
        rows = (
            (await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "contact")))
            .scalars()
            .all()
        )
        contacts = (await session.execute(select(Contact))).scalars().all()
        [audit] = (await session.execute(select(AuditEvent).where(AuditEvent.action == "forget"))).scalars()
        resurvey = (await session.execute(select(Resurvey))).scalar_one()
        bob = (await session.execute(select(Customer).where(Customer.external_id == "cust-bob"))).scalar_one()
    assert (customer.name, customer.email, customer.phone, customer.forgotten_at) == (
        None,
        None,
        None,
        clock.now,
    )
    assert [(r.status, r.last_error) for r in rows] == [("dead", "erased"), ("dead", "erased")]
    assert all(c.body is None for c in contacts)
    assert (audit.actor, audit.subject) == (runtime.config.person_of(ADMIN), f"customer:{customer.id}")
    assert resurvey.expires_at == clock.now  # the link sent to them is void
    assert bob.email == "bob@x.org" and other  # nobody else is touched

    # The posted card is updated in place, masked, with the customer shown as erased.
    updates_before = len(fake_slack.calls("chat.update"))
    await deliver_chat(runtime, clock)
    updates = fake_slack.calls("chat.update")[updates_before:]
    assert updates, "the card was not re-rendered"
    last: dict[str, Any] = updates[-1].body
    assert pii_in(json.dumps(last)) == []
    assert "erased customer" in json.dumps(last)
    # The erased customer's details cannot be revealed any more.
    await slack.click(f"cx_reveal:{case_id}", user=AGENT)
    assert "erased" in fake_slack.responses()[-1]["text"] and pii_in(fake_slack.responses()[-1]["text"]) == []
