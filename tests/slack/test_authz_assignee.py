"""Who a case may be given to, and who may re-bind a team's channel (issue #11, defects 5 and 10).

An assignee is a person of the owning team (its members, managers and escalation contacts) or an
admin, checked in the core for `/cx assign` and the card's Reassign select alike; a refusal says who
may be assigned and never echoes what was typed. `team link`, which re-binds where a team's cards and
digests go, is admins' only. Driven through signed Slack requests; asserts on the answers and the rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from cxbot.models import Case, CaseEvent, OutboxMessage, TeamDestination
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender

MANAGER, AGENT, OTHER_AGENT, LOGISTICS_AGENT, ADMIN = (
    "U0SUPMGR1",
    "U0SUPAGT1",
    "U0SUPAGT2",
    "U0LOGAGT1",
    "U0ADMIN01",
)
HOSTILE = ("U1>|<!channel", "<@U1>|<!channel>", "<!here>", "@everyone", "U0SUPAGT1x", LOGISTICS_AGENT)
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def support_case(slack: SlackSender) -> int:
    item = {"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    response = await slack.http.post("/feedback", json=item)
    return int(response.json()["results"][0]["case"].removeprefix("CX-"))


async def snapshot(runtime: Runtime) -> tuple[str | None, list[str], int]:
    """The case's assignee, its event kinds and the outbox size: what a refusal must leave alone."""
    async with runtime.sessions() as session:
        assignee = await session.scalar(select(Case.assignee))
        kinds = list((await session.execute(select(CaseEvent.kind).order_by(CaseEvent.id))).scalars())
        outbox = len((await session.execute(select(OutboxMessage.id))).all())
    return assignee, kinds, outbox


def refused_well(text: str, typed: str) -> None:
    """A refusal names who may be assigned and the usage, and carries nothing of the input."""
    assert text.startswith("CX-1 can be assigned only to a member, manager or escalation contact of support")
    for person in (MANAGER, AGENT, OTHER_AGENT, "U0HEADCX1", ADMIN):
        assert f"<@{person}>" in text
    assert text.endswith("Usage: /cx assign CX-1 @person")
    assert "!channel" not in text and "!here" not in text and "everyone" not in text
    assert typed not in text


async def test_assign_refuses_anyone_outside_the_owning_team_without_echoing_them(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    await support_case(slack)
    before = await snapshot(runtime)
    for typed in HOSTILE:
        await slack.command(f"assign CX-1 {typed}", user=AGENT)
        answer = fake_slack.responses()[-1]
        assert answer["response_type"] == "ephemeral"
        refused_well(answer["text"], typed)
    assert await snapshot(runtime) == before


async def test_the_reassign_select_is_checked_the_same_way(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    await support_case(slack)
    before = await snapshot(runtime)
    for selected in ("U1>|<!channel", LOGISTICS_AGENT):
        body = slack.block_action("cx_assign:1", user=MANAGER, type="users_select", selected_user=selected)
        await slack.post(body, FORM)
        refused_well(fake_slack.responses()[-1]["text"], selected)
    assert await snapshot(runtime) == before

    # A person of the team, an escalation contact and an admin may be given the case.
    for person in (OTHER_AGENT, "U0HEADCX1", ADMIN):
        body = slack.block_action("cx_assign:1", user=MANAGER, type="users_select", selected_user=person)
        await slack.post(body, FORM)
        assert fake_slack.responses()[-1]["text"] == f"CX-1 assigned to <@{person}>"
    await slack.command(f"assign CX-1 <@{AGENT}|agent>", user=MANAGER)
    assert fake_slack.responses()[-1]["text"] == f"CX-1 assigned to <@{AGENT}>"
    assignee, kinds, _ = await snapshot(runtime)
    assert assignee == runtime.config.person_of(AGENT) and kinds.count("assigned") == 4  # the person


async def test_team_link_is_for_admins_only(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    async def bound() -> str | None:
        async with runtime.sessions() as session:
            return await session.scalar(
                select(TeamDestination.address).where(
                    TeamDestination.team_key == "support", TeamDestination.platform == "slack"
                )
            )

    for user in (AGENT, MANAGER):  # a member, even the team's manager, may not re-route its cards
        await slack.command("team link support", user=user, channel="C0ELSEWHERE")
        answer = fake_slack.responses()[-1]
        assert answer["response_type"] == "ephemeral"
        assert answer["text"].startswith("Not allowed: only admins can link a channel to a team")
        assert await bound() == "C0SUPPORT1"
    await slack.command("team link support", user=ADMIN, channel="C0ELSEWHERE")
    answer = fake_slack.responses()[-1]
    assert answer["text"] == "This channel now receives support's case cards and digests."
    assert await bound() == "C0ELSEWHERE"
    await slack.command("help team", user=AGENT)
    assert "(admins)" in fake_slack.responses()[-1]["text"]
