"""`forget` and `reveal` through the one grammar, on any platform: the edges the Slack tests leave out."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from cxbot.ingest.common import erased_external_id
from cxbot.models import AuditEvent, Customer, Feedback
from cxbot.runtime import Runtime
from tests.support.resurvey import ADMIN, AGENT, negative_case, say


async def test_forget_masks_comments_keeps_scores_and_replaces_an_email_id(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    customer = {"id": "grace@example.com", "name": "Grace Hopper", "phone": "+1 555 010 9999"}
    case_id = await negative_case(
        client, customer=customer, comment="Grace Hopper here, text +1 555 010 9999. Adapter broke."
    )
    first = await say(runtime, "forget grace@example.com", user=ADMIN)
    assert first.ok and first.text.startswith("Customer ") and " erased: " in first.text
    async with runtime.sessions() as session:
        person = (await session.execute(select(Customer))).scalar_one()
        feedback = (await session.execute(select(Feedback))).scalar_one()
    assert (person.external_id, person.name, person.phone) == (erased_external_id(customer["id"]), None, None)
    assert "grace" not in person.external_id  # a one-way tombstone, not the address
    assert (feedback.score, feedback.metric) == (1.0, "csat")  # the score still counts, anonymously
    assert feedback.comment == "[erased] here, text [erased]. Adapter broke."
    # Forgetting by the old id (through its tombstone) or the new one says it was done already.
    assert "was already erased" in (await say(runtime, "forget grace@example.com", user=ADMIN)).text
    again = await say(runtime, f"forget {person.external_id}", user=ADMIN)
    assert "was already erased" in again.text
    shown = await say(runtime, f"reveal CX-{case_id}", user=AGENT)
    assert shown.ephemeral and "was erased on" in shown.text and "Grace" not in shown.text
    async with runtime.sessions() as session:
        actions = list((await session.execute(select(AuditEvent.action).order_by(AuditEvent.id))).scalars())
    assert actions == ["forget", "forget", "forget"]


async def test_unknown_customers_and_cases_without_one(runtime: Runtime, client: httpx.AsyncClient) -> None:
    unknown = await say(runtime, "forget nobody-here", user=ADMIN)
    assert (
        unknown.text
        == "no customer with id 'nobody-here'; give the customer's id as the survey tool sends it"
    )
    usage = await say(runtime, "forget", user=ADMIN)
    assert not usage.ok and "forget <customer id>" in usage.text
    anonymous = await negative_case(client)
    shown = await say(runtime, f"reveal CX-{anonymous}", user=AGENT)
    assert shown.text == f"CX-{anonymous} has no customer on record."
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 0
