"""Erasure lasts (issue #11, defect 6): after `/cx forget`, nothing brings the customer's PII back.

Later feedback for the same customer id, through `/feedback`, a signed webhook (where the id is the
email, so `forget` left only its tombstone) and the CSV import on both writers (portable and bulk),
is stored and counted, linked to the erased customer, without their name, email or phone and with its
comment masked, until an admin lifts the erasure with `/cx forget <id> undo`. Commands go as signed
Slack requests; the database is then read generically for any of the customer's details left in it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cxbot.config import Config
from cxbot.ingest.common import erased_external_id
from cxbot.ingest.csv_import import ImportOptions, import_csv
from cxbot.models import AuditEvent, Case, Customer, Feedback
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from handlers.slack.blocks import unescape
from tests.conftest import API_KEY
from tests.slack.test_privacy import pii_left_in_database
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender
from tests.support.resurvey import ADA, ADMIN, AGENT
from tests.test_webhooks_http import NON_PROMOTER, SIGNERS, deliver, raw, secrets, webhook_config

__all__ = ["secrets", "webhook_config"]  # fixtures, used by name

PAUL = "paul_gravis@example.com"  # the Delighted fixture's person, here identified by email only
COMMENT = f"Still broken. Call {ADA['phone']} or mail {ADA['email']}"
CSV_OPTIONS = ImportOptions(
    mapping={
        "external_id": "id",
        "metric": "metric",
        "score": "score",
        "comment": "comment",
        "touchpoint": "touchpoint",
        "customer_id": "customer",
        "customer_name": "name",
        "customer_email": "email",
        "customer_phone": "phone",
        "received_at": "at",
    },
    source="export",
)


@pytest.fixture
async def runtime(settings: Settings, webhook_config: Config, clock: FrozenClock) -> AsyncIterator[Runtime]:
    built = Runtime.build(settings=settings, config=webhook_config, clock=clock)
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def post(slack: SlackSender, external_id: str, *, score: int = 1, customer: dict[str, Any]) -> str:
    item = {
        "external_id": external_id,
        "source": "survey",
        "metric": "csat",
        "score": score,
        "touchpoint": "Inbound",
        "comment": COMMENT,
        "customer": customer,
        "received_at": "2026-11-02T09:00:00Z",  # within the week before the test clock
    }
    response = await slack.http.post("/feedback", json=item)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    return str(result["status"])


async def say(slack: SlackSender, fake_slack: FakeSlack, text: str, *, user: str = ADMIN) -> str:
    """The reply's text as Slack shows it (its mrkdwn escapes unescaped)."""
    await slack.command(text, user=user)
    return unescape(str(fake_slack.responses()[-1]["text"]))


async def customers(runtime: Runtime) -> list[Customer]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(Customer).order_by(Customer.id))).scalars())


async def feedback_of(runtime: Runtime, customer_id: int) -> list[Feedback]:
    async with runtime.sessions() as session:
        query = select(Feedback).where(Feedback.customer_id == customer_id).order_by(Feedback.id)
        return list((await session.execute(query)).scalars())


async def test_later_feedback_is_counted_without_pii_until_an_admin_undoes_the_erasure(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    assert await post(slack, "f-1", customer=ADA) == "created"
    assert " erased: " in await say(slack, fake_slack, "forget cust-ada")

    # A new answer, and an update of the old one, both carrying every detail again.
    assert await post(slack, "f-2", customer=ADA) == "created"
    assert await post(slack, "f-1", score=2, customer=ADA) == "updated"
    [ada] = await customers(runtime)
    assert (ada.external_id, ada.name, ada.email, ada.phone) == ("cust-ada", None, None, None)
    assert ada.forgotten_at is not None
    stored = await feedback_of(runtime, ada.id)
    assert [f.external_id for f in stored] == ["f-1", "f-2"]
    assert all(ADA["email"] not in (f.comment or "") and "7946" not in (f.comment or "") for f in stored)
    assert await pii_left_in_database(runtime) == []

    # Still counted: two CSAT answers in support's scores, and the negative one opened its case.
    scores = await slack.http.get("/api/scores", params={"team": "support", "metric": "csat", "window": "7d"})
    assert scores.status_code == 200 and '"n": 2' in json.dumps(scores.json())
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 2
    await slack.command("customer cust-ada", user=ADMIN)
    assert "(erased customer)" in json.dumps(fake_slack.responses()[-1])

    # Only an admin lifts it; then the next answer's details are kept again.
    refused = await say(slack, fake_slack, "forget cust-ada undo", user=AGENT)
    assert refused.startswith("Not allowed: only admins can restore an erased customer")
    assert (await customers(runtime))[0].forgotten_at is not None
    assert "restored" in await say(slack, fake_slack, "forget cust-ada undo")
    assert "not erased" in await say(slack, fake_slack, "forget cust-ada restore")
    assert await post(slack, "f-3", customer=ADA) == "created"
    [ada] = await customers(runtime)
    assert (ada.forgotten_at, ada.email, ada.phone) == (None, ADA["email"], ADA["phone"])
    async with runtime.sessions() as session:
        actions = list((await session.execute(select(AuditEvent.action).order_by(AuditEvent.id))).scalars())
    assert actions == ["forget", "restore"]
    assert "forget <customer id> [undo]" in await say(slack, fake_slack, "forget a b c")


async def test_a_webhook_delivery_under_an_erased_email_id_stays_erased(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    def delivery(response_id: str) -> bytes:
        payload = json.loads(raw(NON_PROMOTER))
        payload["event_data"]["id"] = response_id
        del payload["event_data"]["person"]["id"]  # the provider falls back to the email as the id
        return json.dumps(payload).encode()

    async def send(body: bytes) -> None:
        answer = await deliver(slack.http, "delighted", body, SIGNERS["delighted"](body, at=clock()))
        assert answer.status_code == 200, answer.text

    await send(delivery("5435"))
    [paul] = await customers(runtime)
    assert (paul.external_id, paul.name) == (PAUL, "Paul Gravis")
    assert " erased: " in await say(slack, fake_slack, f"forget {PAUL}")
    await send(delivery("5436"))
    await send(delivery("5435"))  # and the first one again, updated

    [paul] = await customers(runtime)  # no second customer under the old id
    assert (paul.external_id, paul.name, paul.email) == (erased_external_id(PAUL), None, None)
    assert [f.external_id for f in await feedback_of(runtime, paul.id)] == ["5435", "5436"]
    async with runtime.sessions() as session:
        rows = await session.execute(select(Customer.external_id, Customer.name, Customer.email))
        assert all("gravis" not in json.dumps(list(row)).lower() for row in rows.all())
    assert "already erased" in await say(slack, fake_slack, f"forget {PAUL}")

    # Undone by the old id: the tombstone gets the id back, and details may come in again.
    assert "restored" in await say(slack, fake_slack, f"forget {PAUL} undo")
    await send(delivery("5437"))
    [paul] = await customers(runtime)
    assert (paul.external_id, paul.name, paul.email) == (PAUL, "Paul Gravis", PAUL)


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "portable"])
async def test_the_csv_import_keeps_erased_customers_erased(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, tmp_path: Path, bulk: bool
) -> None:
    assert await post(slack, "f-1", customer=ADA) == "created"
    assert await post(slack, "f-2", customer={**ADA, "id": ADA["email"]}) == "created"
    for ident in ("cust-ada", ADA["email"]):
        assert " erased: " in await say(slack, fake_slack, f"forget {ident}")

    path = tmp_path / "export.csv"
    details = f"{ADA['name']},{ADA['email']},{ADA['phone']},2026-11-01T10:00:00Z"
    lines = ["id,metric,score,comment,touchpoint,customer,name,email,phone,at"]
    for n, ident in enumerate(("cust-ada", ADA["email"], "cust-ada")):
        lines.append(f'r{n},nps,{2 + n},"{COMMENT}",checkout,{ident},{details}')
    lines.append(f"f-1,csat,2,,Inbound,cust-ada,{details}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = await import_csv(runtime, path, replace(CSV_OPTIONS, bulk=bulk))
    assert (report.rows, report.created, report.errors) == (4, 4, [])

    by_id, by_email = await customers(runtime)
    assert (by_id.external_id, by_email.external_id) == ("cust-ada", erased_external_id(ADA["email"]))
    assert [f.external_id for f in await feedback_of(runtime, by_id.id)] == ["f-1", "r0", "r2", "f-1"]
    assert [f.external_id for f in await feedback_of(runtime, by_email.id)] == ["f-2", "r1"]
    assert all(c.forgotten_at is not None and c.name is None and c.email is None for c in (by_id, by_email))
    assert await pii_left_in_database(runtime) == []


async def test_undone_by_its_tombstone_the_customer_gets_later_details_under_the_old_id(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    email_id = {**ADA, "id": ADA["email"]}
    assert await post(slack, "f-1", customer=email_id) == "created"
    assert " erased: " in await say(slack, fake_slack, f"forget {ADA['email']}")
    tombstone = erased_external_id(ADA["email"])
    assert "restored" in await say(slack, fake_slack, f"forget {tombstone} undo")
    assert await post(slack, "f-2", customer=email_id) == "created"
    [ada] = await customers(runtime)  # the same customer, found by the tombstone of the id
    assert (ada.external_id, ada.forgotten_at, ada.email) == (tombstone, None, ADA["email"])
    assert [f.external_id for f in await feedback_of(runtime, ada.id)] == ["f-1", "f-2"]
