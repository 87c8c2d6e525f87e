"""The outbox worker delivering to the fake Bot Connector: a case card as a new channel thread
(an Adaptive Card 1.5 that validates against the schema), updated in place, its timeline in the thread."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import select

from cxbot.models import CasePost, OutboxMessage, TeamDestination
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from handlers import platform_notifiers
from tests.support.clock import FrozenClock
from tests.support.fake_microsoft import FIXTURES, FakeConnector, TeamsSender, connector_error
from tests.teams.conftest import TEAMS_CHANNEL

SCHEMA = json.loads((FIXTURES / "adaptive-card-1.5.schema.json").read_text(encoding="utf-8"))
INSTALL = "20191019181214767-request"
CHANNEL_MESSAGE = "20191020020553704-request"


def without_teams_extras(card: Any) -> Any:
    """The card less Teams-only `msteams` properties, which the 1.5 schema does not know."""
    if isinstance(card, dict):
        return {k: without_teams_extras(v) for k, v in card.items() if k != "msteams"}
    if isinstance(card, list):
        return [without_teams_extras(v) for v in card]
    return card


def assert_valid_card(activity: dict[str, Any]) -> dict[str, Any]:
    [attached] = activity["attachments"]
    assert attached["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attached["content"]
    jsonschema.Draft6Validator(SCHEMA).validate(without_teams_extras(copy.deepcopy(card)))
    assert len(json.dumps(activity).encode()) < 28_000
    return card


@pytest.fixture
def worker(runtime: Runtime) -> OutboxWorker:
    return OutboxWorker(runtime, platform_notifiers(runtime))


async def open_case(client: httpx.AsyncClient, **extra: object) -> str:
    item = {"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    response = await client.post("/feedback", json={**item, **extra})
    return response.json()["results"][0]["case"]


async def teams_rows(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.kind, OutboxMessage.status)
            .where(OutboxMessage.platform == "msteams")
            .order_by(OutboxMessage.id)
        )
        return [tuple(r) for r in rows.all()]


async def test_a_case_card_starts_a_thread_in_the_channel_then_is_updated_in_place(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    await teams.post(teams.activity(INSTALL))  # the bot is added to the team: its reference is known
    async with runtime.sessions() as session:
        destination = await session.scalar(
            select(TeamDestination).where(TeamDestination.platform == "msteams")
        )
    assert destination is not None and destination.reference["serviceUrl"] == connector_fake.service_url

    ref = await open_case(
        client,
        comment="**Rang** 3 times [click](https://evil.example), mail ada@example.com",
        customer={"id": "c-1", "name": "Ada Lovelace", "email": "ada@example.com"},
    )
    stats = await worker.run_once(now=clock.now)
    assert stats.sent >= 1
    [created] = connector_fake.calls("create")
    assert created.body["isGroup"] is True
    assert created.body["channelData"]["channel"]["id"] == TEAMS_CHANNEL
    card = assert_valid_card(created.body["activity"])
    shown = json.dumps(card, ensure_ascii=False)
    assert ref in shown and "ada@example.com" not in shown and "Ada Lovelace" not in shown
    assert "**Rang**" not in shown and "[click](" not in shown
    async with runtime.sessions() as session:
        post = await session.scalar(select(CasePost).where(CasePost.platform == "msteams"))
    assert post is not None and "|1:act-" in post.message_ref

    # Acknowledged from Teams: the card is PUT in place and the timeline line goes into its thread.
    await teams.post(teams.activity(CHANNEL_MESSAGE, text=f"<at>My Combined</at> ack {ref}\n"))
    [answer] = connector_fake.calls("reply")
    assert "Not allowed" not in answer.body["text"]
    await worker.run_once(now=clock.now)
    [update] = connector_fake.calls("update")
    thread, activity_id = post.message_ref.split("|")
    assert connector_fake.conversation_of(update) == thread and update.path.endswith(
        activity_id.replace(":", "%3A")
    )
    assert "acknowledged" in json.dumps(assert_valid_card(update.body))
    lines = [c for c in connector_fake.calls("send") if connector_fake.conversation_of(c) == thread]
    assert lines, "the acknowledgement is a line in the card's thread"
    assert all(status == "sent" for _, status in await teams_rows(runtime))


async def test_connector_throttling_is_retried_and_a_blocked_bot_is_dead_lettered(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    await teams.post(teams.activity(INSTALL))
    await open_case(client)
    connector_fake.script("create", connector_error(429, "TooManyRequests", retry_after=3))
    stats = await worker.run_once(now=clock.now)
    assert stats.retried == 1 and await teams_rows(runtime) == [("case.card", "pending")]
    connector_fake.script("create", connector_error(403, "MessageWritesBlocked"))
    clock.advance(seconds=60)
    stats = await worker.run_once(now=clock.now)
    assert stats.dead == 1
    assert ("case.card", "dead") in await teams_rows(runtime)
