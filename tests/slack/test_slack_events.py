"""Events API: deduplicated on `event_id`, and App Home published with the user's cases."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import func, select

from cxbot.authz import Actor
from cxbot.commands.dispatch import Where, run_text
from cxbot.models import InboundEvent
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender

AGENT, MANAGER = "U0SUPAGT1", "U0SUPMGR1"


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def open_case(http: httpx.AsyncClient, external_id: str) -> str:
    item = {"external_id": external_id, "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    return (await http.post("/feedback", json=item)).json()["results"][0]["case"]


def home_texts(view: dict) -> str:
    return json.dumps(view["blocks"])


async def test_app_home_shows_my_cases_and_my_teams_overdue_ones(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    mine = await open_case(slack.http, "neg-1")
    overdue = await open_case(slack.http, "neg-2")
    await run_text(runtime, f"take {mine}", actor=Actor(AGENT, "slack"), where=Where("slack", "C0SUPPORT1"))
    clock.advance(hours=3)  # support acknowledges within 30 minutes: the untouched case is overdue
    response = await slack.post(slack.app_home_opened(user=AGENT, event_id="Ev0HOME001"), "application/json")
    assert response.status_code == 200
    [publish] = fake_slack.calls("views.publish")
    assert publish.body["user_id"] == AGENT
    view = publish.body["view"]
    assert view["type"] == "home"
    assert len(Block.parse_all(view["blocks"])) == len(view["blocks"]) <= 100
    sections = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert sections[0].startswith(f"*{mine}*")
    assert any(s.startswith(f"*{overdue}*") and "acknowledge overdue by" in s for s in sections[1:])
    # The agent's team scores: two CSAT 1s are far below support's floor of 30 responses.
    assert (
        sections[-1] == "*Customer Support*\nNPS: no responses · CSAT: _low sample (n=2)_ · CES: no responses"
    )


async def test_a_retried_event_acts_once(slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime) -> None:
    body = slack.app_home_opened(user=MANAGER, event_id="Ev0HOME002")
    assert (await slack.post(body, "application/json")).status_code == 200
    assert (await slack.post(body, "application/json", retry_num=1)).status_code == 200
    assert (await slack.post(body, "application/json", retry_num=2)).status_code == 200
    assert len(fake_slack.calls("views.publish")) == 1
    other = slack.app_home_opened(user=MANAGER, event_id="Ev0HOME003")
    await slack.post(other, "application/json")
    assert len(fake_slack.calls("views.publish")) == 2
    async with runtime.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(InboundEvent))).scalar_one()
    assert count == 2


async def test_unsigned_event_is_rejected_and_not_remembered(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    body = slack.app_home_opened(user=MANAGER, event_id="Ev0HOME004")
    assert (await slack.post(body, "application/json", signed=False)).status_code == 401
    assert fake_slack.calls("views.publish") == []
    # The genuine delivery that follows still acts.
    assert (await slack.post(body, "application/json")).status_code == 200
    assert len(fake_slack.calls("views.publish")) == 1


async def test_url_verification_challenge_is_answered(slack: SlackSender) -> None:
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "c0ffee"})
    response = await slack.post(body, "application/json")
    assert response.status_code == 200 and response.json() == {"challenge": "c0ffee"}
