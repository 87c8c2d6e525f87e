"""The core on its own, through an in-memory notifier (errbot's testbot idea): people with only Teams
ids, a team reached only on Teams. Case flows, escalation and digests run as they would under any
platform; every payload the outbox hands out is neutral text (tokens, no chat markup), and every
target is a person's id, or a channel, on the platform the message goes to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cxbot import markup
from cxbot.authz import actor_for
from cxbot.cases.escalation import tick as escalation_tick
from cxbot.commands.dispatch import Where, run_text
from cxbot.config import Config, parse_config
from cxbot.digest.posting import tick as digest_tick
from cxbot.models import OutboxMessage
from cxbot.outbox.contract import CHAT_KINDS, ESCALATION_CHANNEL, ESCALATION_DM, Delivery
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.test_architecture import PLATFORM_MARKUP

PLATFORM = "msteams"
CHANNEL = "19:support0000000000000000000000@thread.tacv2"
ESCALATIONS = "19:escalate000000000000000000000@thread.tacv2"
PEOPLE = {
    "mara": {"name": "Mara Quinn", "msteams": "0b6c8f2e-4d1a-4c7e-9f3b-2a5d6e7f8a91"},
    "ravi": {"name": "Ravi Shah", "msteams": "1c7d9a3f-5e2b-4d8f-a04c-3b6e7f8a9b02"},
    "lena": {"name": "Lena Berg", "msteams": "2d8eab40-6f3c-4e90-b15d-4c7f8a9bac13"},
}
OPENED = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
#: Markup that came from outside (the customer's comment, a typed note): it stays as typed.
OUTSIDE = ("<!channel>", "<@U0EVIL>", "<!here>")


class NeutralNotifier:
    """Delivers every chat kind into a list, as a platform would receive it."""

    platform = PLATFORM
    kinds = CHAT_KINDS

    def __init__(self) -> None:
        self.delivered: list[Delivery] = []

    async def deliver(self, delivery: Delivery) -> dict[str, Any]:
        self.delivered.append(delivery)
        return {"message_ref": f"{delivery.destination}:{delivery.case.id}"} if delivery.case else {}


def teams_only_config() -> Config:
    return parse_config(
        {
            "people": PEOPLE,
            "admins": ["lena"],
            "teams": [
                {
                    "key": "support",
                    "name": "Support",
                    "timezone": "Europe/London",
                    "msteams": {"channel": CHANNEL},
                    "managers": ["mara"],
                    "members": ["ravi"],
                    "escalation": {"contacts": ["lena"]},
                    "sla_policy": "urgent",
                }
            ],
            "touchpoints": [{"key": "support-phone", "team": "support", "aliases": ["Inbound"]}],
            "routing": {"fallback_team": "support"},
            "sla_policies": {
                "urgent": {
                    "acknowledge": "30m",
                    "resolve": "1d",
                    "warn_before": "10m",
                    "repeat": 1,
                    "repeat_every": "30m",
                }
            },
            "leadership": {"msteams": {"channel": ESCALATIONS}, "time": "09:00", "timezone": "UTC"},
        }
    )


@pytest.fixture
async def core(database_url: str) -> AsyncIterator[tuple[Runtime, NeutralNotifier, httpx.AsyncClient]]:
    settings = Settings(_env_file=None, DATABASE_URL=database_url, CXBOT_API_KEY=API_KEY)  # type: ignore[call-arg]
    runtime = Runtime.build(settings=settings, config=teams_only_config(), clock=FrozenClock(OPENED))
    await runtime.sync_directory()
    transport = httpx.ASGITransport(app=create_app(runtime))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://cxbot.test", headers=headers) as http:
        try:
            yield runtime, NeutralNotifier(), http
        finally:
            await runtime.close()


def texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for inner in value.values() for text in texts(inner)]
    if isinstance(value, list):
        return [text for inner in value for text in texts(inner)]
    return []


async def test_flows_escalation_and_digests_reach_teams_people_in_neutral_words(
    core: tuple[Runtime, NeutralNotifier, httpx.AsyncClient],
) -> None:
    runtime, notifier, http = core
    worker = OutboxWorker(runtime, {PLATFORM: notifier})
    item = {
        "external_id": "n-1",
        "source": "t",
        "metric": "csat",
        "score": 1,
        "touchpoint": "Inbound",
        "comment": "Nobody called back <!channel> <@U0EVIL> *bold* ada@example.com",
    }
    ref = (await http.post("/feedback", json=item)).json()["results"][0]["case"]
    here = Where(platform=PLATFORM, channel=CHANNEL)
    ravi = actor_for(runtime.config, PLATFORM, PEOPLE["ravi"]["msteams"])
    assert ravi.person == "ravi"
    noted = await run_text(runtime, f"note {ref} rang <!here> back", actor=ravi, where=here)
    assert noted.ok, noted.text
    for minutes in (20, 30, 31, 60):  # a warning, level 1 (the manager), level 2 (the contact)
        await escalation_tick(runtime, now=OPENED + timedelta(minutes=minutes))
    await digest_tick(runtime, now=datetime(2026, 11, 3, 9, 0, tzinfo=UTC))
    await worker.run_once(now=datetime(2026, 11, 3, 9, 1, tzinfo=UTC))

    delivered = notifier.delivered
    kinds = {d.kind for d in delivered}
    assert {"case.card", "case.thread", "escalation.dm", "digest"} <= kinds
    # Every target is a Teams id: the team's or the leadership's channel, or a person's Entra id.
    people_ids = {person["msteams"] for person in PEOPLE.values()}
    for delivery in delivered:
        assert delivery.platform == PLATFORM
        expected = people_ids if delivery.kind == ESCALATION_DM else {CHANNEL, ESCALATIONS}
        assert delivery.destination in expected, (delivery.kind, delivery.destination)
    # Queued in step order (level 1, then 2); posts to two people run in lanes side by side.
    dms = [d.destination for d in sorted(delivered, key=lambda d: d.id) if d.kind == ESCALATION_DM]
    assert dms == [PEOPLE["mara"]["msteams"], PEOPLE["lena"]["msteams"]]
    # Every payload is neutral: no chat markup the core wrote, mentions only as person tokens, and the
    # customer's own `<!channel>` plain text, never a token.
    for delivery in delivered:
        for text in texts(delivery.payload):
            plain = markup.as_plain_text(text)
            core_words = text
            for typed in OUTSIDE:  # what a customer or a member typed is plain text, for platforms to escape
                core_words = core_words.replace(typed, "")
            assert not PLATFORM_MARKUP.search(core_words), text
            assert "ada@example.com" not in text
            for piece in markup.segments(text):
                if isinstance(piece, markup.Token) and piece.kind == "person":
                    assert piece.value in PEOPLE, piece
            assert plain  # renders on any platform
    lines = [d.payload["text"] for d in delivered if d.kind == "case.thread"]
    assert f"{markup.person('ravi')}: rang <!here> back" in lines
    assert any(markup.person("mara") in line for line in lines)  # level 1 notified the manager


async def test_an_escalation_channel_hears_on_its_own_platform_only(database_url: str) -> None:
    """`escalation.channel` (Slack) and `escalation.msteams.channel` each get the notice on their own
    platform; neither channel id is ever sent to the other platform."""
    slack_escalations = "C0ESCALATE"
    raw = teams_only_config().model_dump(mode="json", exclude_none=True)
    team = raw["teams"][0]
    team["slack"] = {"channel": "C0SUPPORT"}
    team["escalation"] = {"channel": slack_escalations, "msteams": {"channel": ESCALATIONS}, "contacts": []}
    settings = Settings(_env_file=None, DATABASE_URL=database_url, CXBOT_API_KEY=API_KEY)  # type: ignore[call-arg]
    runtime = Runtime.build(settings=settings, config=parse_config(raw), clock=FrozenClock(OPENED))
    await runtime.sync_directory()
    try:
        item = {"external_id": "n-2", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
        transport = httpx.ASGITransport(app=create_app(runtime))
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as http:
            assert (await http.post("/feedback", json=item)).status_code == 200
        for minutes in (31, 61):  # level 1 (the manager), level 2 (the escalation channels)
            await escalation_tick(runtime, now=OPENED + timedelta(minutes=minutes))
        async with runtime.sessions() as session:
            rows = (
                await session.execute(
                    select(OutboxMessage.platform, OutboxMessage.destination).where(
                        OutboxMessage.kind == ESCALATION_CHANNEL
                    )
                )
            ).all()
    finally:
        await runtime.close()
    assert sorted(rows) == [(PLATFORM, ESCALATIONS), ("slack", slack_escalations)]
