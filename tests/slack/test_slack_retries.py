"""Which Web API calls slack_sdk retries itself: the ones a user waits on, once and quickly; never the
outbox's (the outbox retries those, with backoff, and must be the only one that does)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.fake_slack import SERVER_ERROR, Answer, FakeSlack, SlackSender, slack_sender
from tests.support.platforms import platform_notifiers

AGENT = "U0SUPAGT1"


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


def rate_limited(seconds: int) -> Answer:
    return Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(seconds)})


async def test_a_modal_opens_after_one_server_error(slack: SlackSender, fake_slack: FakeSlack) -> None:
    fake_slack.script("views.open", SERVER_ERROR)
    answered = await slack.command("new", user=AGENT)
    assert answered.status_code == 200
    assert len(fake_slack.calls("views.open")) == 2
    assert fake_slack.responses() == []  # no "could not open the form" reply: the user saw the modal


async def test_a_short_rate_limit_is_waited_out_once(slack: SlackSender, fake_slack: FakeSlack) -> None:
    fake_slack.script("views.open", rate_limited(0))
    await slack.command("new", user=AGENT)
    assert len(fake_slack.calls("views.open")) == 2
    assert fake_slack.responses() == []


async def test_a_long_rate_limit_is_not_waited_for_and_the_user_is_told(
    slack: SlackSender, fake_slack: FakeSlack
) -> None:
    fake_slack.script("views.open", rate_limited(30))
    await slack.command("new", user=AGENT)
    assert len(fake_slack.calls("views.open")) == 1
    [reply] = fake_slack.responses()
    assert reply["text"].startswith("Could not open the form")
    assert reply["response_type"] == "ephemeral"


async def test_two_server_errors_give_up_after_one_retry(slack: SlackSender, fake_slack: FakeSlack) -> None:
    fake_slack.script("views.open", SERVER_ERROR, SERVER_ERROR)
    await slack.command("new", user=AGENT)
    assert len(fake_slack.calls("views.open")) == 2
    [reply] = fake_slack.responses()
    assert reply["text"].startswith("Could not open the form")


async def test_the_outbox_client_never_retries_by_itself(
    runtime: Runtime, slack: SlackSender, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    """A 500 on a card post is one call; the outbox schedules the retry (and it then goes through)."""
    item = {"external_id": "r-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    created = (await slack.http.post("/feedback", json=item)).json()["results"][0]
    assert created["case"] == "CX-1"
    fake_slack.script("chat.postMessage", SERVER_ERROR)
    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    first = await worker.run_once(now=clock.now)
    assert first.retried == 1 and len(fake_slack.calls("chat.postMessage")) == 1
    clock.advance(minutes=10)
    later = await worker.run_once(now=clock.now)
    assert later.sent >= 1 and len(fake_slack.calls("chat.postMessage")) == 2
