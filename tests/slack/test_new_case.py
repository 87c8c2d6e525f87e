"""A case opened by hand: `/cx new` opens a modal, its submission opens the case like ingest would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.views import View
from sqlalchemy import select

from cxbot import markup
from cxbot.authz import Actor
from cxbot.commands.dispatch import Where, run_text
from cxbot.commands.grammar import Command, CommandError, parse
from cxbot.models import Case, CaseEvent, OutboxMessage
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender, view_submission

AGENT, OUTSIDER, ADMIN = "U0SUPAGT1", "U0LOGAGT1", "U0ADMIN01"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def post_feedback(slack: SlackSender, *, external_id: str, score: int) -> dict[str, Any]:
    item = {
        "external_id": external_id,
        "source": "t",
        "metric": "csat",
        "score": score,
        "touchpoint": "Inbound",
        "customer": {"id": "cust-1"},
    }
    response = await slack.http.post("/feedback", json=item)
    return response.json()["results"][0]


async def open_modal(slack: SlackSender, fake_slack: FakeSlack, *, user: str = AGENT) -> dict[str, Any]:
    answered = await slack.command("new", user=user)
    assert answered.status_code == 200
    [opened] = fake_slack.calls("views.open")
    assert opened.body["trigger_id"] == "1337.42.abcd"
    return opened.body["view"]


def submission(view: dict[str, Any], *, user: str = AGENT, **fields: str) -> str:
    """The modal submitted with `fields` (block id → value), as Slack nests them."""
    values: dict[str, dict[str, Any]] = {}
    for block, value in fields.items():
        if block in ("team", "touchpoint"):
            values[block] = {"value": {"type": "static_select", "selected_option": {"value": value}}}
        elif block == "feedback":
            values[block] = {"value": {"type": "number_input", "value": value}}
        else:
            values[block] = {"value": {"type": "plain_text_input", "value": value}}
    return view_submission(
        user=user, callback_id=view["callback_id"], private_metadata=view["private_metadata"], values=values
    )


async def cases(runtime: Runtime) -> list[Case]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(Case).order_by(Case.id))).scalars())


async def created_event(runtime: Runtime, case_id: int) -> CaseEvent:
    async with runtime.sessions() as session:
        query = select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.kind == "created")
        return (await session.execute(query)).scalar_one()


async def cards(runtime: Runtime, case_id: int) -> list[OutboxMessage]:
    async with runtime.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.case_id == case_id)
        return list((await session.execute(query)).scalars())


def test_the_grammar_of_new() -> None:
    assert parse("new") == Command("new")
    assert parse("new Support customer called twice") == Command(
        "new",
        args={"team": "support", "feedback_id": None, "text": "customer called twice", "touchpoint": None},
    )
    assert parse("create support touchpoint:delivery feedback:12") == Command(
        "new", args={"team": "support", "feedback_id": 12, "text": None, "touchpoint": "delivery"}
    )
    for bad, message in [
        ("new support", "`new` needs a team and then a text or feedback:<id>"),
        (
            "new support feedback:x1",
            "'feedback:x1' is not a feedback id (expected something like feedback:123)",
        ),
        ("new support feedback:1 more", "unexpected 'more'"),
    ]:
        with pytest.raises(CommandError) as caught:
            parse(bad)
        assert str(caught.value) == message and caught.value.verb == "new"


async def test_slash_new_opens_a_valid_modal_and_its_submission_opens_the_case(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    feedback = await post_feedback(slack, external_id="pos-1", score=4)  # not negative: no case of its own
    assert "case" not in feedback
    view = await open_modal(slack, fake_slack)
    # Slack's own model accepts it back (slack_sdk validates every block and limit in to_dict).
    assert View(**view).to_dict()["callback_id"] == "cx_new_case_modal"
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    team_select = blocks["team"]["element"]
    assert [o["value"] for o in team_select["options"]] == [
        "support",
        "logistics",
        "billing",
        "product",
        "travel",
    ]
    assert team_select["initial_option"]["value"] == "support"  # the agent's only team
    assert blocks["feedback"]["element"]["type"] == "number_input"
    assert "delivery" in [o["value"] for o in blocks["touchpoint"]["element"]["options"]]
    assert json.loads(view["private_metadata"]) == {"channel": "C0SUPPORT1"}
    assert fake_slack.responses() == []  # the form is the answer; no reply through response_url

    answer = await slack.post(
        submission(view, team="support", feedback=str(feedback["id"]), touchpoint="delivery"), FORM
    )
    assert (answer.status_code, answer.text) == (200, "")
    [case] = await cases(runtime)
    assert (case.feedback_id, case.team_key, case.touchpoint_key, case.state) == (
        feedback["id"],
        "support",
        "delivery",
        "new",
    )
    assert case.title == "CSAT 4 at support-phone" and case.customer_id is not None
    agent = runtime.config.person_of(AGENT)  # the Slack user, recorded as their person
    assert (case.routing_rule, case.created_by) == ("manual", agent)
    assert case.routing_reason == f"opened by hand by {agent} from feedback {feedback['id']}"
    # Same SLA clocks as ingest: support's "urgent" policy, 30 min to acknowledge, 1 day to resolve.
    assert case.ack_due_at == clock.now + timedelta(minutes=30)
    assert case.resolve_due_at == clock.now + timedelta(days=1)
    event = await created_event(runtime, case.id)
    assert (event.actor, event.detail, event.data["rule"]) == (
        agent,
        f"Opened by hand by {markup.person(agent)}",
        "manual",
    )
    [card] = await cards(runtime, case.id)
    assert (card.kind, card.platform, card.destination, card.dedupe_key) == (
        "case.card",
        "slack",
        "C0SUPPORT1",
        f"case.card:slack:{case.id}:opened",
    )
    [told] = fake_slack.calls("chat.postEphemeral")
    assert (told.body["channel"], told.body["user"]) == ("C0SUPPORT1", AGENT)
    assert told.body["text"].startswith(f"CX-{case.id} opened for support")


async def test_free_text_case_keeps_the_title_and_the_description(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    view = await open_modal(slack, fake_slack)
    text = "Customer rang twice about a lost parcel"
    answer = await slack.post(
        submission(view, team="support", title=text, description="Wants a call back"), FORM
    )
    assert answer.status_code == 200 and answer.text == ""
    [case] = await cases(runtime)
    assert (case.title, case.feedback_id, case.customer_id, case.touchpoint_key) == (text, None, None, None)
    event = await created_event(runtime, case.id)
    assert (
        event.detail
        == f"Opened by hand by {markup.person(runtime.config.person_of(AGENT))}: Wants a call back"
    )
    assert [c.kind for c in await cards(runtime, case.id)] == ["case.card"]


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"team": "support", "feedback": "999"}, {"feedback": "there is no feedback with id 999"}),
        ({"team": "support"}, {"feedback": "Give a feedback id, or a title below"}),
        (
            {"team": "support", "feedback": "1", "title": "x"},
            {"feedback": "Give a feedback id or a title, not both"},
        ),
        ({"team": "support", "description": "only this"}, {"title": "A case from free text needs a title"}),
    ],
)
async def test_bad_input_is_shown_on_the_field_and_opens_nothing(
    slack: SlackSender,
    fake_slack: FakeSlack,
    runtime: Runtime,
    fields: dict[str, str],
    errors: dict[str, str],
) -> None:
    view = await open_modal(slack, fake_slack)
    answer = await slack.post(submission(view, **fields), FORM)
    assert answer.json() == {"response_action": "errors", "errors": errors}
    assert await cases(runtime) == []


async def test_feedback_that_already_has_a_case_names_it(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    negative = await post_feedback(slack, external_id="neg-1", score=1)
    view = await open_modal(slack, fake_slack)
    answer = await slack.post(submission(view, team="support", feedback=str(negative["id"])), FORM)
    assert answer.json() == {
        "response_action": "errors",
        "errors": {"feedback": f"feedback {negative['id']} already has a case: {negative['case']}"},
    }
    assert len(await cases(runtime)) == 1


async def test_an_outsider_is_refused_on_the_team_field_and_by_command(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    view = await open_modal(slack, fake_slack, user=OUTSIDER)
    answer = await slack.post(submission(view, user=OUTSIDER, team="support", title="Not mine"), FORM)
    refusal = (
        "Not allowed: only members of support can open cases for it; "
        "you are not listed in teams.support of the config"
    )
    assert answer.json() == {"response_action": "errors", "errors": {"team": refusal}}
    await slack.command("new support not mine either", user=OUTSIDER)
    [reply] = fake_slack.responses()
    assert (reply["text"], reply["response_type"]) == (refusal, "ephemeral")
    assert await cases(runtime) == []


async def test_slash_new_with_arguments_opens_directly_and_admins_may_too(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    await slack.command("new support touchpoint:Email Refund promised on the phone never came", user=AGENT)
    await slack.command("new logistics courier keeps missing the address", user=ADMIN)
    assert fake_slack.calls("views.open") == []
    first, second = await cases(runtime)
    assert (first.team_key, first.touchpoint_key, first.title) == (
        "support",
        "support-email",
        "Refund promised on the phone never came",
    )
    assert (second.team_key, second.created_by) == ("logistics", runtime.config.person_of(ADMIN))
    assert [r["text"] for r in fake_slack.responses()] == [
        f"CX-{first.id} opened for support: Refund promised on the phone never came "
        "(its card goes to the team's channel)",
        f"CX-{second.id} opened for logistics: courier keeps missing the address "
        "(its card goes to the team's channel)",
    ]
    assert [c.destination for c in await cards(runtime, second.id)] == ["C0LOGIST01"]


async def test_the_console_uses_the_same_verb(runtime: Runtime) -> None:
    where = Where(platform="console")
    actor = Actor(user_id=AGENT, platform="console")
    bare = await run_text(runtime, "new", actor=actor, where=where)
    assert not bare.ok and bare.text.startswith(
        "`new` needs a team and then a text or feedback:<id>. Usage: /cx new"
    )
    unknown = await run_text(runtime, "new nowhere lost parcel", actor=actor, where=where)
    assert (
        not unknown.ok and unknown.text.startswith("'nowhere' is not a team") and unknown.fix_field == "team"
    )
    bad_touchpoint = await run_text(runtime, "new support touchpoint:moon lost", actor=actor, where=where)
    assert bad_touchpoint.text == "'moon' is not a configured touchpoint"
    opened = await run_text(runtime, "new support lost parcel", actor=actor, where=where)
    assert opened.ok and opened.case is not None and opened.case.routing_rule == "manual"
