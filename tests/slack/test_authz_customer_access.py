"""Who may unmask a customer (issue #11, defect 2), driven through signed Slack requests.

One rule (cxbot.authz.may_see_customer): admins, and members of the team owning the feedback a case
was opened from. A case made by hand is no way in: only the feedback's team (or an admin) may open one
from it, and whoever the case sits with, `reveal` (button and command) and `/cx customer` follow the
feedback's owner. Every answer users see is checked for the customer's details, and the database for
what was (not) written: no case, no audit row, on a refusal.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from cxbot.models import AuditEvent, Case, Contact
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.slack.test_new_case import open_modal, submission
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender, view_submission

SUPPORT_AGENT, LOGISTICS_AGENT, ADMIN = "U0SUPAGT1", "U0LOGAGT1", "U0ADMIN01"
ADA = {"id": "cust-ada", "name": "Ada Lovelace", "email": "ada.l@example.org", "phone": "+44 20 7946 0555"}
PII = (ADA["name"], "Lovelace", ADA["email"], ADA["phone"])
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def logistics_feedback(slack: SlackSender, external_id: str, *, score: int = 9) -> dict[str, Any]:
    """A delivery answer of Ada's (logistics owns `delivery`); a 9 opens no case."""
    item = {
        "external_id": external_id,
        "source": "survey",
        "metric": "nps",
        "score": score,
        "touchpoint": "delivery",
        "comment": "Parcel came on time",
        "customer": ADA,
    }
    response = await slack.http.post("/feedback", json=item)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    return result


def last_answer(fake_slack: FakeSlack) -> str:
    """What the user saw last (every field of the response, blocks included)."""
    return json.dumps(fake_slack.responses()[-1], ensure_ascii=False)


def pii_in(text: str) -> list[str]:
    return [value for value in PII if value.lower() in text.lower()]


async def count(runtime: Runtime, model: Any) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_hand_made_case_from_another_teams_feedback_is_refused_and_opens_nothing(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    feedback = await logistics_feedback(slack, "d-1")
    await slack.command(f"new support feedback:{feedback['id']}", user=SUPPORT_AGENT)
    answer = fake_slack.responses()[-1]["text"]
    assert answer.startswith(f"Not allowed: feedback {feedback['id']} belongs to logistics")
    assert await count(runtime, Case) == 0

    # The new-case modal is the same command: the refusal points at its feedback field.
    view = await open_modal(slack, fake_slack, user=SUPPORT_AGENT)
    submitted = await slack.post(submission(view, team="support", feedback=str(feedback["id"])), FORM)
    errors = submitted.json()["errors"]
    assert list(errors) == ["feedback"] and "belongs to logistics" in errors["feedback"]
    assert await count(runtime, Case) == 0

    # The owning team may; so may an admin.
    await slack.command(f"new logistics feedback:{feedback['id']}", user=LOGISTICS_AGENT)
    assert fake_slack.responses()[-1]["text"].startswith("CX-1 opened for logistics")
    other = await logistics_feedback(slack, "d-2")
    await slack.command(f"new support feedback:{other['id']}", user=ADMIN)
    assert fake_slack.responses()[-1]["text"].startswith("CX-2 opened for support")
    assert await count(runtime, AuditEvent) == 0


async def test_reveal_and_the_customer_view_follow_the_feedbacks_team_not_the_cases(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    # An admin opens a *support* case from logistics' feedback: the case sits with support.
    feedback = await logistics_feedback(slack, "d-1")
    await slack.command(f"new support feedback:{feedback['id']}", user=ADMIN)
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
    assert case.team_key == "support"

    # Support works the case but may not unmask the customer: not by the button, the verb or the view.
    await slack.click(f"cx_reveal:{case.id}", user=SUPPORT_AGENT)
    assert fake_slack.responses()[-1]["text"].startswith("Not allowed: only members of logistics")
    await slack.command(f"reveal CX-{case.id}", user=SUPPORT_AGENT)
    assert fake_slack.responses()[-1]["text"].startswith("Not allowed: only members of logistics")
    for ident in ("cust-ada", f"CX-{case.id}"):
        await slack.command(f"customer {ident}", user=SUPPORT_AGENT)
        seen = last_answer(fake_slack)
        assert "Customer cust-ada" in seen and "A. L." in seen
        assert pii_in(seen) == [], ident
    assert await count(runtime, AuditEvent) == 0

    # Logistics, which owns the feedback, may, and every reveal is audited.
    await slack.click(f"cx_reveal:{case.id}", user=LOGISTICS_AGENT)
    revealed = fake_slack.responses()[-1]
    assert revealed["response_type"] == "ephemeral" and ADA["email"] in revealed["text"]
    await slack.command("customer cust-ada", user=LOGISTICS_AGENT)
    assert ADA["email"] in last_answer(fake_slack) and "audited" in last_answer(fake_slack)
    async with runtime.sessions() as session:
        audited = (await session.execute(select(AuditEvent.actor, AuditEvent.action))).all()
    assert [tuple(row) for row in audited] == [(runtime.config.person_of(LOGISTICS_AGENT), "pii_reveal")] * 2


async def test_a_customer_with_no_case_is_unmasked_for_admins_only(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    await logistics_feedback(slack, "d-1")  # logistics' feedback, but no case to work on
    for user in (SUPPORT_AGENT, LOGISTICS_AGENT):
        await slack.command("customer cust-ada", user=user)
        assert pii_in(last_answer(fake_slack)) == [], user
    await slack.command("customer cust-ada", user=ADMIN)
    assert ADA["email"] in last_answer(fake_slack)
    assert await count(runtime, AuditEvent) == 1


async def test_the_contact_composer_keeps_the_name_a_placeholder_for_those_who_may_not_see_it(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    feedback = await logistics_feedback(slack, "d-1")
    await slack.command(f"new support feedback:{feedback['id']}", user=ADMIN)
    await slack.command("contact CX-1", user=SUPPORT_AGENT)  # support may contact; the send knows the name
    [opened] = fake_slack.calls("views.open")
    view = opened.body["view"]
    assert pii_in(json.dumps(view, ensure_ascii=False)) == [] and "Ada" not in json.dumps(view)
    [body_block] = [b for b in view["blocks"] if b.get("block_id", "").startswith("body:")]
    shown = body_block["element"]["initial_value"]
    assert shown.startswith("Hi $first_name,")

    submit = view_submission(
        user=SUPPORT_AGENT,
        callback_id=view["callback_id"],
        private_metadata=view["private_metadata"],
        values={
            "channel": {"value": {"type": "static_select", "selected_option": {"value": "email"}}},
            body_block["block_id"]: {"value": {"type": "plain_text_input", "value": shown}},
        },
    )
    answer = await slack.post(submit, FORM)
    assert answer.status_code == 200 and answer.text == ""
    async with runtime.sessions() as session:
        [contact] = (await session.execute(select(Contact))).scalars().all()
    assert contact.body is not None and contact.body.startswith("Hi Ada,")
