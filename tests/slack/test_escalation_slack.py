"""Escalation end to end: tick, then the outbox worker delivering to a fake Slack on loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from cxbot import markup
from cxbot.cases.escalation import tick
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from handlers.slack.renderers import escalation_message
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack
from tests.support.platforms import platform_notifiers

TEAM_CHANNEL = "C0SUPPORT1"


def posts_to(fake: FakeSlack, channel: str) -> list[dict]:
    return [c.body for c in fake.calls("chat.postMessage") if c.body.get("channel") == channel]


async def test_escalations_reach_the_managers_contacts_and_channel_once_each(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    item = {"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    ref = (await client.post("/feedback", json=item)).json()["results"][0]["case"]
    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    await worker.run_once(now=clock.now)
    [card] = posts_to(fake_slack, TEAM_CHANNEL)

    for hour, minute in ((12, 20), (12, 30), (12, 31), (13, 0), (13, 0)):
        now = datetime(2026, 11, 2, hour, minute, tzinfo=UTC)
        await tick(runtime, now=now)
        await worker.run_once(now=now)

    [manager_dm] = posts_to(fake_slack, "U0SUPMGR1")  # chat.postMessage to a user id opens the DM
    [contact_dm] = posts_to(fake_slack, "U0HEADCX1")
    [notice] = posts_to(fake_slack, "C0CXESCAL1")
    assert manager_dm["text"].startswith(f":rotating_light: {ref} (Customer Support) is not acknowledged")
    assert "Escalation level 1" in manager_dm["text"] and f"`/cx ack {ref}`" in manager_dm["text"]
    assert "Escalation level 2" in contact_dm["text"] and "Escalation level 2" in notice["text"]
    # In the team's channel: the card refreshed at each step, and three lines in its thread.
    card_ts = "1700000000.000001"
    lines = [p["text"] for p in posts_to(fake_slack, TEAM_CHANNEL) if p.get("thread_ts") == card_ts]
    assert lines == [
        "Not acknowledged yet: escalates in 10 min (acknowledge by Mon 12:30 GMT)",
        "Not acknowledged in time (due Mon 12:30 GMT): escalated to level 1, step 1 of 6; "
        "notified <@U0SUPMGR1>",
        "Still not acknowledged, 30 min overdue: escalation level 2, step 2 of 6; "
        "notified <@U0HEADCX1>, the escalation channel",
    ]
    updates = fake_slack.calls("chat.update")
    assert len(updates) == 2 and all(u.body["ts"] == card_ts for u in updates)
    assert "escalated (level 2)" in str(updates[-1].body["blocks"])
    assert card["channel"] == TEAM_CHANNEL


def test_an_escalation_message_keeps_mentions_live_but_not_a_typed_broadcast() -> None:
    text = f"CX-1 for {markup.person('U0SUPMGR1')} in {markup.channel('C0CXESCAL1')}\n" + markup.quote(
        "customer says <!channel> <@U0ADMIN01> help"
    )
    message = escalation_message(text)
    [section] = message["blocks"]
    assert section["text"]["text"] == (
        "CX-1 for <@U0SUPMGR1> in <#C0CXESCAL1>\n> customer says &lt;!channel&gt; &lt;@U0ADMIN01&gt; help"
    )
