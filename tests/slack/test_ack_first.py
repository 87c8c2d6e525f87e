"""Slack gets its answer before the work is done (design.md §10), and a graceful stop still finishes it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from cxbot.models import Case
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender

MANAGER = "U0SUPMGR1"


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


async def case_state(runtime: Runtime) -> str:
    async with runtime.sessions() as session:
        return (await session.execute(select(Case.state))).scalar_one()


async def test_a_command_is_answered_before_its_reply_is_sent(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    ref = await open_case(slack)
    gate = fake_slack.hold("respond")  # the response_url reply waits until the test lets it through
    response = await slack.command(f"ack {ref}", user=MANAGER, wait=False)
    assert (response.status_code, response.text) == (200, "")
    assert runtime.background.pending == 1  # the HTTP answer is out; the work is not finished
    await asyncio.to_thread(fake_slack.wait_for, "respond")
    assert await case_state(runtime) == "acknowledged"  # committed before the reply is sent
    assert runtime.background.pending == 1
    gate.set()
    await runtime.background.drain()
    assert runtime.background.pending == 0
    assert [r["text"] for r in fake_slack.responses()] == [f"{ref} acknowledged"]


async def test_a_click_is_answered_before_its_reply_is_sent(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    ref = await open_case(slack)
    case_id = ref.removeprefix("CX-")
    gate = fake_slack.hold("respond")
    response = await slack.click(f"cx_ack:{case_id}", user=MANAGER, wait=False)
    assert (response.status_code, response.text) == (200, "")
    await asyncio.to_thread(fake_slack.wait_for, "respond")
    assert runtime.background.pending == 1
    gate.set()
    await runtime.background.drain()
    assert await case_state(runtime) == "acknowledged"
    [reply] = fake_slack.responses()
    assert reply["response_type"] == "ephemeral" and reply["text"] == f"{ref} acknowledged"


async def test_stopping_the_services_finishes_work_already_acknowledged(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    from tests.support.platforms import platform_services

    ref = await open_case(slack)
    gate = fake_slack.hold("respond")
    # Let the reply through only once it is on its way, from a thread: the stop below must wait for it.
    release = threading.Thread(target=lambda: (fake_slack.wait_for("respond"), gate.set()), daemon=True)
    async with platform_services(runtime, idle_seconds=0.01):
        await slack.command(f"ack {ref}", user=MANAGER, wait=False)
        assert runtime.background.pending == 1
        release.start()
    release.join(timeout=10)
    assert runtime.background.pending == 0
    assert await case_state(runtime) == "acknowledged"
    assert [r["text"] for r in fake_slack.responses()] == [f"{ref} acknowledged"]
