"""The Slack scenario tests' Teams twins (issue #13): the same guarantees, through `POST /api/messages`.

Every test runs the real ASGI app with Slack and Teams both configured (support has a Slack channel
and a Teams channel), signed activities built from the recorded Teams traffic, the fake identity
platform and Bot Connector on loopback, and a real database (SQLite, and PostgreSQL when
CXBOT_TEST_POSTGRES_URL is set). Every connector call is checked against the Bot Connector
Swagger's routes by the `connector_fake` fixture (tests/teams/conftest.py) when the test ends.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from cxbot.cases.escalation import tick as escalation_tick
from cxbot.config import Config, parse_config
from cxbot.digest.posting import tick as digest_tick
from cxbot.models import Case, CaseEvent, CasePost, OutboxMessage
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.conftest import API_KEY, ROOT
from tests.support.clock import FrozenClock
from tests.support.fake_microsoft import (
    APP_ID,
    APP_PASSWORD,
    TENANT_ID,
    Answer,
    FakeConnector,
    FakeIdentity,
    TeamsSender,
    connector_error,
)
from tests.support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, SlackSender, slack_sender
from tests.support.platforms import platform_notifiers
from tests.teams.conftest import ADMIN, MEMBER, TEAMS_CHANNEL

INSTALL = "20191019181214767-request"  # the bot added to the team (conversationUpdate)
CLICK = "20191020020654953-request"  # an invoke from a card in the team's channel
#: A support manager with only a Teams id (no Slack account): escalations reach them on Teams only.
NIGHT_LEAD = "0f9d3c1e-5b7a-4e2f-9c61-2a8b7d4e6f10"
SLACK_MANAGER = "U0SUPMGR1"
OUTSIDER = {"id": "29:1outsider", "name": "Outsider", "aadObjectId": "00000000-0000-4000-8000-0000000000ff"}
# 09:00 in London on 3 November 2026 (GMT): support's digest time in cxbot.example.yaml.
SUPPORT_SENDS = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack.running() as fake:
        yield fake


@pytest.fixture
def settings(
    database_url: str, identity: FakeIdentity, connector_fake: FakeConnector, fake_slack: FakeSlack
) -> Settings:
    """Slack and Teams both configured, every endpoint at a fake (TEAMS_SERVICE_URL too: a 1:1 chat
    with someone the bot never spoke to is created there)."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=database_url,
        CXBOT_API_KEY=API_KEY,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.api_url,
        TEAMS_APP_ID=APP_ID,
        TEAMS_APP_PASSWORD=APP_PASSWORD,
        TEAMS_TENANT_ID=TENANT_ID,
        TEAMS_OPENID_METADATA_URL=identity.metadata_url,
        TEAMS_LOGIN_URL=identity.login_url,
        TEAMS_SERVICE_URL=connector_fake.service_url,
    )


@pytest.fixture
def example_config() -> Config:
    """The example configuration; support on Slack and Teams, the recordings' sender and a
    Teams-only night lead managers of support, the member the install adds an admin."""
    raw = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    raw["people"]["night-lead"] = {"name": "Noor Haddad", "msteams": NIGHT_LEAD}
    support = next(team for team in raw["teams"] if team["key"] == "support")
    support["msteams"] = {"channel": TEAMS_CHANNEL}
    support["managers"] = [*support.get("managers", []), MEMBER, "night-lead"]
    raw["admins"] = [*raw.get("admins", []), ADMIN]
    return parse_config(raw)


@pytest.fixture
def worker(runtime: Runtime) -> OutboxWorker:
    return OutboxWorker(runtime, platform_notifiers(runtime))


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


# -- helpers -------------------------------------------------------------------------------------


async def open_case(client: httpx.AsyncClient) -> str:
    item = {"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    response = await client.post("/feedback", json=item)
    return str(response.json()["results"][0]["case"])


async def posted_card(
    teams: TeamsSender, client: httpx.AsyncClient, worker: OutboxWorker, clock: FrozenClock
) -> tuple[str, str, str]:
    """Install the bot, open a case, deliver its cards: (case ref, card thread, card activity id)."""
    await teams.post(teams.activity(INSTALL))
    ref = await open_case(client)
    await worker.run_once(now=clock.now)
    async with worker.runtime.sessions() as session:
        message_ref = await session.scalar(select(CasePost.message_ref).where(CasePost.platform == "msteams"))
    assert message_ref is not None
    thread, _, activity_id = message_ref.partition("|")
    return ref, thread, activity_id


def click(
    teams: TeamsSender,
    command: str,
    *,
    activity_id: str,
    thread: str,
    card: str,
    sender: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An Action.Execute click on the posted card: the recorded channel invoke, in the card's thread
    and replying to it, with the documented Universal Actions `name` and `value` (no recording has
    one, see tests/fixtures/teams/PROVENANCE.md)."""
    conversation = {**copy.deepcopy(teams.activity(CLICK)["conversation"]), "id": thread}
    activity = teams.activity(
        CLICK,
        id=activity_id,
        conversation=conversation,
        replyToId=card,
        value={
            "action": {"type": "Action.Execute", "verb": "cx", "data": {"command": command}},
            "trigger": "manual",
        },
        **({"from": sender} if sender else {}),
    )
    activity["name"] = "adaptiveCard/action"
    return activity


async def the_case(runtime: Runtime) -> Case:
    async with runtime.sessions() as session:
        return (await session.execute(select(Case))).scalar_one()


async def event_kinds(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(CaseEvent.kind).order_by(CaseEvent.id))).scalars())


async def rows(runtime: Runtime, platform: str = "msteams") -> list[OutboxMessage]:
    async with runtime.sessions() as session:
        found = await session.execute(
            select(OutboxMessage).where(OutboxMessage.platform == platform).order_by(OutboxMessage.id)
        )
        return list(found.scalars())


def is_card(answer: dict[str, Any]) -> bool:
    return answer.get("type") == "application/vnd.microsoft.card.adaptive"


def texts(calls: list[Any]) -> list[str]:
    return [str(c.body.get("text") or "") for c in calls]


# -- buttons -------------------------------------------------------------------------------------


async def test_double_click_and_redelivery_change_the_case_once_and_update_the_card_once(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    fake_slack: FakeSlack,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ref, thread, card = await posted_card(teams, client, worker, clock)
    on = {"thread": thread, "card": card}
    # Two clicks of the same button (two invokes, two activity ids) at once, then Teams redelivering one.
    first, second = await asyncio.gather(
        teams.post(click(teams, f"ack {ref}", activity_id="f:double-1", **on)),
        teams.post(click(teams, f"ack {ref}", activity_id="f:double-2", **on)),
    )
    again = await teams.post(click(teams, f"ack {ref}", activity_id="f:double-1", **on))
    assert {first.status_code, second.status_code, again.status_code} == {200}
    answers = [first.json(), second.json()]

    case = await the_case(runtime)
    assert (case.state, case.acknowledged_by) == ("acknowledged", runtime.config.person_of(MEMBER))
    assert await event_kinds(runtime) == ["created", "acknowledged"]
    # One answer refreshes the card in place (the update); the other says it was already done.
    [refreshed] = [a for a in answers if is_card(a)]
    assert "acknowledged" in json.dumps(refreshed["value"])
    assert "Acknowledge" not in [a["title"] for a in refreshed["value"]["actions"]]
    [told] = [a for a in answers if not is_card(a)]
    assert told["value"].startswith(f"{ref} ") and "acknowledged" in told["value"]
    assert again.json()["value"] == "Already done."

    # The outbox adds no second update of the Teams card: its refresh is recorded as shown by the
    # click's answer. The timeline line still goes into the card's thread, once; Slack's card is
    # updated once.
    await worker.run_once(now=clock.now)
    await worker.run_once(now=clock.now)
    assert connector_fake.calls("update") == []
    lines = [c for c in connector_fake.calls("send") if connector_fake.conversation_of(c) == thread]
    assert len(lines) == 1 and "acknowledged" in lines[0].body["text"].lower()
    teams_rows = [(r.kind, r.status) for r in await rows(runtime)]
    assert teams_rows == [("case.card", "sent"), ("case.card", "sent"), ("case.thread", "sent")]
    shown = (await rows(runtime))[1].result
    assert shown is not None and shown.get("shown_by") == "invoke"
    [slack_update] = fake_slack.calls("chat.update")
    assert "acknowledged" in slack_update.body["text"]


async def test_an_outsiders_click_is_refused_with_a_message_and_nothing_changes(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ref, thread, card = await posted_card(teams, client, worker, clock)
    before = [(r.id, r.kind, r.status) for r in await rows(runtime)]
    answer = await teams.post(
        click(teams, f"ack {ref}", activity_id="f:outsider", thread=thread, card=card, sender=OUTSIDER)
    )
    body = answer.json()
    assert answer.status_code == 200 and body["type"] == "application/vnd.microsoft.activity.message"
    assert body["value"] == "Not allowed: only managers of support can acknowledge its cases"
    assert (await the_case(runtime)).state == "new"
    assert await event_kinds(runtime) == ["created"]
    assert [(r.id, r.kind, r.status) for r in await rows(runtime)] == before
    await worker.run_once(now=clock.now)
    assert connector_fake.calls("update") == []  # the card is as it was
    assert [c for c in connector_fake.calls("send") if connector_fake.conversation_of(c) == thread] == []


async def test_acknowledged_on_slack_updates_the_teams_card_and_the_other_way_round(
    teams: TeamsSender,
    slack: SlackSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    fake_slack: FakeSlack,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ref, thread, card = await posted_card(teams, client, worker, clock)
    case_id = int(ref.removeprefix("CX-"))
    slack_cards = [c for c in fake_slack.calls("chat.postMessage") if c.body.get("channel") == "C0SUPPORT1"]
    assert len(slack_cards) == 1

    await slack.click(f"cx_ack:{case_id}", user=SLACK_MANAGER)  # acknowledged on Slack
    await worker.run_once(now=clock.now)
    [update] = connector_fake.calls("update")
    assert connector_fake.conversation_of(update) == thread
    assert update.path.rsplit("/", 1)[-1] == card.replace(":", "%3A")
    assert "acknowledged" in json.dumps(update.body["attachments"][0]["content"])
    [slack_update] = fake_slack.calls("chat.update")  # Slack's own card, refreshed once too
    assert slack_update.body["ts"] == "1700000000.000001"

    taken = await teams.post(click(teams, f"take {ref}", activity_id="f:take", thread=thread, card=card))
    assert is_card(taken.json())  # taken on Teams: the click's answer refreshes the Teams card
    await worker.run_once(now=clock.now)
    assert len(connector_fake.calls("update")) == 1  # no second PUT of what the answer showed
    assert (await the_case(runtime)).state == "in_progress"
    slack_updates = fake_slack.calls("chat.update")  # and the Slack card follows, with one update
    assert len(slack_updates) == 2 and slack_updates[1].body["ts"] == "1700000000.000001"
    assert ref in json.dumps(slack_updates[1].body)


# -- proactive messages ---------------------------------------------------------------------------


async def test_escalation_reaches_a_teams_only_person_in_a_new_personal_chat_once_per_step(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    fake_slack: FakeSlack,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ref, thread, _ = await posted_card(teams, client, worker, clock)
    for hour, minute in ((12, 20), (12, 30), (12, 31), (13, 0), (13, 0)):
        now = datetime(2026, 11, 2, hour, minute, tzinfo=UTC)
        await escalation_tick(runtime, now=now)
        await worker.run_once(now=now)
        await worker.run_once(now=now)

    personal = [c for c in connector_fake.calls("create") if c.body.get("isGroup") is False]
    to_night_lead = [c for c in personal if c.body["members"] == [{"id": NIGHT_LEAD}]]
    assert len(to_night_lead) == 1, "the 1:1 chat is created once, for the one notice she gets"
    assert to_night_lead[0].body["tenantId"] == TENANT_ID
    chats = {c.body["members"][0]["id"]: None for c in personal}
    assert NIGHT_LEAD in chats
    notices = [c for c in connector_fake.calls("send") if "Escalation level 1" in str(c.body.get("text"))]
    conversations = [connector_fake.conversation_of(c) for c in notices]
    assert len(conversations) == len(set(conversations)), "each notice once per chat"
    night_notices = [c for c in notices if "personal" in connector_fake.conversation_of(c)]
    assert night_notices and all(ref in c.body["text"] for c in night_notices)
    dms = [r for r in await rows(runtime) if r.kind == "escalation.dm"]
    assert sorted(r.destination for r in dms if r.destination == NIGHT_LEAD) == [NIGHT_LEAD]
    assert all(r.status == "sent" for r in dms)
    # She has no Slack account: nothing of hers is queued on Slack.
    slack_dms = [r.destination for r in await rows(runtime, "slack") if r.kind == "escalation.dm"]
    assert slack_dms and NIGHT_LEAD not in slack_dms
    # The escalation channel is a Slack channel id: nothing is posted to it on Teams.
    assert not [c for c in connector_fake.calls() if c.route != "create" and "C0CX" in c.path]
    # The card's thread on Teams holds each step once.
    lines = texts([c for c in connector_fake.calls("send") if connector_fake.conversation_of(c) == thread])
    assert sum("escalated to level 1" in line for line in lines) == 1
    assert sum("escalation level 2" in line for line in lines) == 1


async def test_a_digest_is_posted_to_the_teams_channel_exactly_once_per_team_and_day(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    fake_slack: FakeSlack,
    runtime: Runtime,
    clock: FrozenClock,
) -> None:
    await teams.post(teams.activity(INSTALL))
    item = {"external_id": "d-1", "source": "t", "metric": "csat", "score": 5, "touchpoint": "Inbound"}
    await client.post("/feedback", json={**item, "received_at": "2026-11-02T12:00:00Z"})
    clock.now = SUPPORT_SENDS
    await digest_tick(runtime, now=SUPPORT_SENDS, claimed_by="one")
    await digest_tick(runtime, now=SUPPORT_SENDS, claimed_by="two")  # a second replica, same minute
    later = SUPPORT_SENDS + timedelta(minutes=30)
    await digest_tick(runtime, now=later, claimed_by="one")  # and the same replica, later that day
    for _ in range(2):
        await OutboxWorker(runtime, platform_notifiers(runtime)).run_once(now=later)

    digests = [r for r in await rows(runtime) if r.kind == "digest"]
    assert [(r.destination, r.status) for r in digests] == [(TEAMS_CHANNEL, "sent")]
    posted = [c for c in connector_fake.calls() if c.route in ("send", "create", "reply")]
    into_channel = [c for c in posted if TEAMS_CHANNEL in connector_fake.conversation_of(c)]
    assert len(into_channel) == 1
    assert "Customer Support" in json.dumps(into_channel[0].body, ensure_ascii=False)
    slack_posts = [c for c in fake_slack.calls("chat.postMessage") if c.body.get("channel") == "C0SUPPORT1"]
    assert len(slack_posts) == 1  # the team's Slack channel gets its own one, once


# -- connector failures ---------------------------------------------------------------------------


async def card_rows(runtime: Runtime) -> list[tuple[str, int]]:
    return [(r.status, r.attempts) for r in await rows(runtime) if r.kind == "case.card"]


async def pending_at(runtime: Runtime) -> datetime:
    [row] = [r for r in await rows(runtime) if r.kind == "case.card"]
    due = row.next_attempt_at
    return due if due.tzinfo else due.replace(tzinfo=UTC)


@pytest.mark.parametrize("retry_after", ["30", "date"], ids=["retry-after-seconds", "retry-after-http-date"])
async def test_a_throttled_post_waits_for_retry_after_and_is_then_delivered_once(
    retry_after: str,
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    await teams.post(teams.activity(INSTALL))
    await open_case(client)
    if retry_after == "date":  # the header's other form: an HTTP date, 120 s from now
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
        wait = 120
    else:
        header, wait = retry_after, 30
    connector_fake.script(
        "create", Answer(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": header})
    )
    stats = await worker.run_once(now=clock.now)
    assert stats.retried == 1 and await card_rows(runtime) == [("pending", 1)]
    due = await pending_at(runtime)
    assert due >= clock.now + timedelta(seconds=wait - 2), "Retry-After is not undercut"
    assert due <= clock.now + timedelta(seconds=wait + 2)

    stats = await worker.run_once(now=due - timedelta(seconds=1))
    assert stats.claimed == 0 and len(connector_fake.calls("create")) == 1
    await worker.run_once(now=due)
    assert len(connector_fake.calls("create")) == 2 and await card_rows(runtime) == [("sent", 2)]


@pytest.mark.parametrize("status", [412, 502, 504])
async def test_a_precondition_or_gateway_failure_is_retried_then_delivered_once(
    status: int,
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    await teams.post(teams.activity(INSTALL))
    await open_case(client)
    connector_fake.script(
        "create", connector_error(status, "ServiceError"), connector_error(status, "ServiceError")
    )
    await worker.run_once(now=clock.now)
    assert await card_rows(runtime) == [("pending", 1)]
    await worker.run_once(now=await pending_at(runtime))
    assert await card_rows(runtime) == [("pending", 2)]
    await worker.run_once(now=await pending_at(runtime))
    assert await card_rows(runtime) == [("sent", 3)]
    assert len(connector_fake.calls("create")) == 3
    async with runtime.sessions() as session:
        bound = await session.scalar(select(CasePost.message_ref).where(CasePost.platform == "msteams"))
    assert bound is not None and bound.count("|") == 1


async def test_a_blocked_bot_is_dead_lettered_and_reported_to_the_admins(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    await teams.post(teams.activity(INSTALL))
    ref = await open_case(client)
    connector_fake.script("create", connector_error(403, "MessageWritesBlocked"))
    await worker.run_once(now=clock.now)
    await worker.run_once(now=clock.now + timedelta(hours=1))  # dead: never tried again

    [card] = [r for r in await rows(runtime) if r.kind == "case.card"]
    assert card.status == "dead" and "MessageWritesBlocked" in str(card.last_error)
    channel_posts = [c for c in connector_fake.calls("create") if c.body.get("isGroup") is True]
    assert len(channel_posts) == 1
    # The dead-letter reports go to the admins (a broken destination), each in their personal chat.
    config = runtime.config
    admins = sorted(filter(None, (config.platform_id(config.person_of(a), "msteams") for a in config.admins)))
    reports = [r for r in await rows(runtime) if r.kind == "report"]
    assert sorted(r.destination for r in reports) == admins and ADMIN in admins
    assert all(r.status == "sent" for r in reports)
    chats = [c for c in connector_fake.calls("create") if c.body.get("isGroup") is False]
    assert sorted(c.body["members"][0]["id"] for c in chats) == admins
    told = [c for c in connector_fake.calls("send") if "MessageWritesBlocked" in str(c.body.get("text"))]
    assert len(told) == len(admins)
    assert all(ref in c.body["text"] and connector_fake.conversation_of(c).startswith("a:") for c in told)


async def test_the_teams_http_clients_close_with_the_runtime(teams: TeamsSender, runtime: Runtime) -> None:
    """The endpoint's and the outbox's clients (their pools to the connector) end with the runtime."""
    connector = platform_notifiers(runtime)["msteams"].connector
    assert not connector.http.is_closed and connector.http.aclose in runtime.closers  # beside the endpoint's
    await runtime.close()
    assert connector.http.is_closed and runtime.closers == []
