"""Backpressure on slash commands (issue #15): a command that waits is told so; a full queue says no.

The real ASGI app and the fake Slack on loopback; the background work is made small (one slot, a
short `busy_after`) and its one slot is held by work the test releases, so the command under test
waits exactly as it would behind a backlog. What is checked is what the user sees through
`response_url`, and what the database holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from cxbot.background import BackgroundWork
from cxbot.models import Case
from cxbot.runtime import Runtime
from handlers.slack.commands import QUEUED, REFUSED
from tests.conftest import API_KEY
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender

MANAGER = "U0SUPMGR1"


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    runtime.background = BackgroundWork(limit=1, max_waiting=1, busy_after=0.05)
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def open_case(slack: SlackSender) -> str:
    item = {"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    response = await slack.http.post("/feedback", json=item)
    return response.json()["results"][0]["case"]


async def case_state(runtime: Runtime) -> str:
    async with runtime.sessions() as session:
        return (await session.execute(select(Case.state))).scalar_one()


def replies(fake: FakeSlack) -> list[tuple[str, str, str]]:
    """(response URL, visibility, text) of every response_url post, in the order they arrived."""
    return [
        (c.path.rsplit("/", 1)[-1], c.body.get("response_type", ""), c.body["text"])
        for c in fake.calls("respond")
    ]


async def test_a_command_that_waits_is_told_it_is_queued_then_gets_its_answer(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    ref = await open_case(slack)
    backlog = asyncio.Event()
    runtime.background.start(backlog.wait(), name="backlog")  # the one slot is taken

    response = await slack.command(f"ack {ref}", user=MANAGER, wait=False)

    assert (response.status_code, response.text) == (200, "")
    await asyncio.to_thread(fake_slack.wait_for, "respond")
    assert replies(fake_slack) == [("command-1", "ephemeral", QUEUED)]
    assert await case_state(runtime) == "new"  # told it is queued: it has not run yet
    backlog.set()
    await runtime.background.drain()
    assert replies(fake_slack) == [
        ("command-1", "ephemeral", QUEUED),
        ("command-1", "ephemeral", f"{ref} acknowledged"),
    ]
    assert await case_state(runtime) == "acknowledged"
    assert runtime.background.told_busy["slack-command"] == 1


async def test_a_command_offered_to_a_full_queue_is_refused_and_changes_nothing(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    ref = await open_case(slack)
    backlog, running = asyncio.Event(), asyncio.Event()

    async def holds_the_slot() -> None:
        running.set()
        await backlog.wait()

    runtime.background.start(holds_the_slot(), name="backlog")
    await running.wait()
    runtime.background.start(backlog.wait(), name="backlog")  # waiting: the queue is full

    response = await slack.command(f"ack {ref}", user=MANAGER, wait=False)

    assert response.status_code == 200
    await asyncio.to_thread(fake_slack.wait_for, "respond")
    backlog.set()
    await runtime.background.drain()
    assert replies(fake_slack) == [("command-1", "ephemeral", REFUSED)]
    assert await case_state(runtime) == "new"
    assert runtime.background.refused["slack-command"] == 1


async def test_a_command_with_a_free_slot_gets_only_its_answer(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    ref = await open_case(slack)
    await slack.command(f"ack {ref}", user=MANAGER)
    assert replies(fake_slack) == [("command-1", "ephemeral", f"{ref} acknowledged")]
    assert runtime.background.took.count(work="slack-command") == 1
