"""`/cx` through Slack: signed requests into the real ASGI app, replies caught by a fake Slack on loopback."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from cxbot.models import Case, CaseEvent
from cxbot.runtime import Runtime
from cxbot.web import create_app
from handlers.slack.blocks import unescape
from tests.conftest import API_KEY
from tests.support.fake_slack import (
    SIGNING_SECRET,
    FakeSlack,
    SlackSender,
    sign,
    slack_sender,
)
from tests.support.platforms import platform_routes

MANAGER, AGENT = "U0SUPMGR1", "U0SUPAGT1"


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def open_case(slack: SlackSender) -> str:
    response = await slack.http.post(
        "/feedback",
        json={"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"},
    )
    return response.json()["results"][0]["case"]


async def case_state(runtime: Runtime) -> tuple[str, str | None]:
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
        return case.state, case.acknowledged_by


async def test_malformed_command_answers_the_verbs_usage_ephemerally(
    slack: SlackSender, fake_slack: FakeSlack
) -> None:
    response = await slack.command("snooze CX-1", user=AGENT)
    assert response.status_code == 200
    [reply] = fake_slack.responses()
    assert reply["response_type"] == "ephemeral"
    # Slack shows the usage's placeholders as typed: their `<` goes out escaped, never as markup.
    assert (
        reply["text"]
        == "`snooze` needs a duration and a reason. Usage: /cx snooze CX-42 &lt;duration&gt; &lt;reason&gt;"
    )
    assert unescape(reply["text"]).endswith("Usage: /cx snooze CX-42 <duration> <reason>")
    assert reply["blocks"][0]["type"] == "section"


async def test_unknown_verb_answers_with_the_help(slack: SlackSender, fake_slack: FakeSlack) -> None:
    await slack.command("frobnicate", user=AGENT)
    [reply] = fake_slack.responses()
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("unknown command 'frobnicate'.\n/cx help")


async def test_manager_acknowledges_through_slack_and_the_case_changes(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    ref = await open_case(slack)
    response = await slack.command(f"ack {ref}", user=MANAGER)
    assert response.status_code == 200
    assert await case_state(runtime) == ("acknowledged", runtime.config.person_of(MANAGER))
    [reply] = fake_slack.responses()
    assert reply["text"] == f"{ref} acknowledged"
    # Bolt checked who it is with auth.test, and the reply went to the command's response_url only.
    assert [c.method for c in fake_slack.calls()] == ["auth.test", "respond"]
    assert fake_slack.calls("auth.test")[0].headers["authorization"] == "Bearer xoxb-test-token"


async def test_channel_wide_reply_is_in_channel(slack: SlackSender, fake_slack: FakeSlack) -> None:
    await slack.command("team link support", user="U0ADMIN01", channel="C0NEWCHAN1")  # admins only
    [reply] = fake_slack.responses()
    assert reply["response_type"] == "in_channel"


@pytest.mark.parametrize(
    "options",
    [
        {"signed": False},
        {"secret": "not-the-signing-secret"},
        {"timestamp": int(time.time()) - 6 * 60},
    ],
    ids=["unsigned", "wrong-secret", "stale"],
)
async def test_unverified_requests_are_rejected_and_change_nothing(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, options: dict[str, object]
) -> None:
    ref = await open_case(slack)
    response = await slack.command(f"ack {ref}", user=MANAGER, **options)
    assert response.status_code == 401
    assert await case_state(runtime) == ("new", None)
    async with runtime.sessions() as session:
        kinds = list((await session.execute(select(CaseEvent.kind))).scalars())
    assert kinds == ["created"]
    assert fake_slack.calls() == []


async def test_a_tampered_body_is_rejected(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    ref = await open_case(slack)
    stamp = int(time.time())
    signed_for = "command=%2Fcx&text=help&user_id=U0SUPMGR1"
    response = await slack.http.post(
        "/slack/events",
        content=f"command=%2Fcx&text=ack+{ref}&user_id=U0SUPMGR1",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(stamp),
            "X-Slack-Signature": sign(SIGNING_SECRET, signed_for, stamp),
        },
    )
    assert response.status_code == 401
    assert await case_state(runtime) == ("new", None)


async def test_without_slack_settings_there_is_no_route_and_one_log_line(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"slack_signing_secret": None})
    with caplog.at_level(logging.INFO, logger="handlers.slack"):
        routes = platform_routes(runtime)
    assert routes == []
    [line] = [r.getMessage() for r in caplog.records if r.name == "handlers.slack"]
    assert "SLACK_SIGNING_SECRET" in line and "SLACK_BOT_TOKEN" not in line.split("(")[0]
    transport = httpx.ASGITransport(app=create_app(runtime, routes=routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://cxbot.test") as http:
        assert (await http.post("/slack/events", content=b"x")).status_code == 404


async def test_a_slack_mention_names_the_person_and_the_reply_mentions_them(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    """Slack sends `<@U…|name>`; the Slack package hands the grammar `@U…`, and renders the core's
    person token back as a live mention."""
    ref = await open_case(slack)
    await slack.command(f"assign {ref} <@{AGENT}|sam>", user=MANAGER)
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
    assert case.assignee == runtime.config.person_of(AGENT)
    [reply] = fake_slack.responses()
    assert reply["text"] == f"{ref} assigned to <@{AGENT}>"
