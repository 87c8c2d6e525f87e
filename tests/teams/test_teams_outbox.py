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

from cxbot.models import Case, CasePost, OutboxMessage, TeamDestination
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.support.clock import FrozenClock
from tests.support.fake_microsoft import FIXTURES, FakeConnector, TeamsSender, connector_error
from tests.support.platforms import platform_notifiers
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


CLICK = "20191020020654953-request"  # an invoke from a card in a channel


def click(
    teams: TeamsSender, command: str, *, activity_id: str, sender: dict[str, Any] | None = None
) -> dict:
    """An Action.Execute click. No recording has one (see PROVENANCE.md), so the recorded invoke
    gets the documented Universal Actions `name` and `value`."""
    activity = teams.activity(
        CLICK,
        id=activity_id,
        value={
            "action": {"type": "Action.Execute", "verb": "cx", "data": {"command": command}},
            "trigger": "manual",
        },
        **({"from": sender} if sender else {}),
    )
    activity["name"] = "adaptiveCard/action"
    return activity


async def case_state(runtime: Runtime, ref: str) -> str:
    async with runtime.sessions() as session:
        return str(await session.scalar(select(Case.state).where(Case.id == int(ref.removeprefix("CX-")))))


async def test_a_card_click_answers_with_the_refreshed_card_and_an_outsider_is_refused(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    await teams.post(teams.activity(INSTALL))
    ref = await open_case(client)
    await worker.run_once(now=clock.now)
    [created] = connector_fake.calls("create")
    buttons = assert_valid_card(created.body["activity"])["actions"]
    assert {
        "type": "Action.Execute",
        "title": "Acknowledge",
        "verb": "cx",
        "data": {"command": f"ack {ref}"},
        "style": "positive",
    } in buttons

    outsider = {
        "id": "29:1outsider",
        "name": "Outsider",
        "aadObjectId": "00000000-0000-4000-8000-0000000000ff",
    }
    refused = (await teams.post(click(teams, f"ack {ref}", activity_id="f:1", sender=outsider))).json()
    assert (
        refused["type"] == "application/vnd.microsoft.activity.message" and "Not allowed" in refused["value"]
    )
    assert await case_state(runtime, ref) == "new"

    answered = await teams.post(click(teams, f"ack {ref}", activity_id="f:2"))
    assert answered.status_code == 200
    body = answered.json()
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    card = assert_valid_card({"attachments": [{"contentType": body["type"], "content": body["value"]}]})
    assert "acknowledged" in json.dumps(card) and "Acknowledge" not in [a["title"] for a in card["actions"]]
    assert await case_state(runtime, ref) == "acknowledged"

    again = (await teams.post(click(teams, f"ack {ref}", activity_id="f:2"))).json()
    assert again["value"] == "Already done."


async def test_reveal_from_a_card_goes_to_the_clickers_personal_chat_only(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    await teams.post(teams.activity(INSTALL))
    ref = await open_case(client, customer={"id": "c-1", "name": "Ada Lovelace", "email": "ada@example.com"})
    await worker.run_once(now=clock.now)
    [created] = connector_fake.calls("create")
    assert f"reveal {ref}" in [
        a["data"]["command"] for a in created.body["activity"]["attachments"][0]["content"]["actions"]
    ]
    answer = (await teams.post(click(teams, f"reveal {ref}", activity_id="f:9"))).json()
    assert answer["value"] == "Sent to your personal chat with cxbot."
    assert "ada@example.com" not in json.dumps(answer)
    personal = [c for c in connector_fake.calls("create") if c.body.get("isGroup") is False]
    assert len(personal) == 1
    [sent] = [c for c in connector_fake.calls("send") if "ada@example.com" in json.dumps(c.body)]
    assert connector_fake.conversation_of(sent).startswith("a:1fake-personal")  # the 1:1 chat just created
    assert await case_state(runtime, ref) == "new"
