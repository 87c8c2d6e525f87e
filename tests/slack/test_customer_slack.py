"""`/cx customer` through Slack: signed slash command, Older/Newer buttons, the card's history button."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cxbot.models import Case
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender
from tests.support.platforms import platform_notifiers

ADMIN, LOGISTICS_AGENT, SUPPORT_AGENT = "U0ADMIN01", "U0LOGAGT1", "U0SUPAGT1"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def feed(slack: SlackSender, clock: FrozenClock, count: int) -> list[dict[str, Any]]:
    """`count` delivery responses of customer c-9 an hour apart, every fifth one negative."""
    items = [
        {
            "external_id": f"s-{n}",
            "source": "survey",
            "metric": "csat",
            "score": 1 if n % 5 == 0 else 4,
            "touchpoint": "delivery",
            "comment": f"response number {n}; reach me at carol@example.net",
            "customer": {"id": "c-9", "name": "Carol Danvers", "email": "carol@example.net"},
            "received_at": (clock.now - timedelta(hours=count - n)).isoformat(),
        }
        for n in range(count)
    ]
    response = await slack.http.post("/feedback", json=items)
    assert response.status_code in (200, 201, 207), response.text
    return response.json()["results"]


def sections(message: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b]


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}


async def test_slash_command_pages_with_buttons_that_replace_the_ephemeral_message(
    slack: SlackSender, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    await feed(slack, clock, 40)
    response = await slack.command("customer c-9", user=LOGISTICS_AGENT)
    assert response.status_code == 200
    [first] = fake_slack.responses()
    assert first["response_type"] == "ephemeral"
    assert first["blocks"][0]["text"]["text"] == "Customer c-9 · Carol Danvers · carol@example.net"
    assert "responses 1–15 of 40" in json.dumps(first["blocks"], ensure_ascii=False)
    assert "response number 39" in sections(first)[-15]  # newest first
    assert "carol@example.net" not in "".join(sections(first)[-15:])  # comments masked even so
    assert set(buttons(first)) == {"cx_customer_page:older"}

    older = buttons(first)["cx_customer_page:older"]
    # The button names the customer by the bot's own reference, never by their external id.
    assert older["text"]["text"] == "Older ▸" and re.match(r"customer cust:\d+ before:", older["value"])
    await slack.post(
        slack.block_action("cx_customer_page:older", user=LOGISTICS_AGENT, value=older["value"]), FORM
    )
    second = fake_slack.responses()[-1]
    assert second["replace_original"] is True and second["response_type"] == "ephemeral"
    assert "responses 16–30 of 40" in json.dumps(second["blocks"], ensure_ascii=False)
    assert "response number 24" in sections(second)[-15]
    assert not set(sections(first)[-15:]) & set(sections(second)[-15:])
    assert set(buttons(second)) == {"cx_customer_page:newer", "cx_customer_page:older"}

    newer = buttons(second)["cx_customer_page:newer"]
    await slack.post(
        slack.block_action("cx_customer_page:newer", user=LOGISTICS_AGENT, value=newer["value"]), FORM
    )
    again = fake_slack.responses()[-1]
    assert again["replace_original"] is True
    assert sections(again)[-15:] == sections(first)[-15:]


async def test_a_page_button_runs_only_the_customer_view_and_rechecks_who_may_see_pii(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    results = await feed(slack, clock, 20)
    case_ref = next(r["case"] for r in results if r.get("case"))
    # A forged value naming another verb does nothing at all.
    await slack.post(slack.block_action("cx_customer_page:older", user=ADMIN, value=f"ack {case_ref}"), FORM)
    assert fake_slack.responses() == []
    async with runtime.sessions() as session:
        assert {c.state for c in (await session.execute(select(Case))).scalars()} == {"new"}
    # A page of the view, clicked by someone outside the owning team, shows masked details.
    await slack.command("customer c-9", user=LOGISTICS_AGENT)
    value = buttons(fake_slack.responses()[-1])["cx_customer_page:older"]["value"]
    await slack.post(slack.block_action("cx_customer_page:older", user=SUPPORT_AGENT, value=value), FORM)
    page = fake_slack.responses()[-1]
    assert page["blocks"][0]["text"]["text"] == "Customer c-9 · C. D. · c***@e***.net"
    assert "carol@example.net" not in json.dumps(page)


async def test_the_case_card_links_to_the_full_history(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    results = await feed(slack, clock, 12)
    refs = [r["case"] for r in results if r.get("case")]
    assert len(refs) == 3
    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    await worker.run_once(now=clock.now)
    cards = fake_slack.calls("chat.postMessage")
    newest = next(c.body for c in cards if refs[-1] in c.body["text"])
    blocks = newest["blocks"] if isinstance(newest["blocks"], list) else json.loads(newest["blocks"])
    assert len(blocks) <= 50
    history = next(b for b in blocks if "Customer history" in b.get("text", {}).get("text", ""))
    assert "⚠ repeat detractor: 3 negatives in 90 days" in history["text"]["text"]
    assert (
        f"open cases {refs[1]} with Logistics &amp; Delivery, {refs[0]} with Logistics &amp; Delivery"
        in history["text"]["text"]
    )
    assert history["accessory"]["action_id"] == f"cx_customer:{refs[-1].removeprefix('CX-')}"
    assert history["accessory"]["value"].startswith("customer cust:")  # our row ref, never an external id
    assert "*Priority*\nhigh" in json.dumps(blocks, ensure_ascii=False).replace("\\n", "\n")

    await slack.click(
        history["accessory"]["action_id"], user=LOGISTICS_AGENT, value=history["accessory"]["value"]
    )
    [reply] = fake_slack.responses()
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert reply["blocks"][0]["text"]["text"] == "Customer c-9 · Carol Danvers · carol@example.net"
    assert "repeat detractor: 3 negatives in 90 days" in json.dumps(reply["blocks"], ensure_ascii=False)


@pytest.mark.parametrize("posted", ["now", "before cards carried the row ref"])
async def test_history_is_the_cases_own_customer_even_when_another_ones_id_reads_like_the_case(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock, posted: str
) -> None:
    results = await feed(slack, clock, 1)
    ref = results[0]["case"]
    impostor = {"external_id": "x-1", "source": "survey", "metric": "csat", "score": 5,
                "touchpoint": "delivery", "customer": {"id": ref, "name": "Mallory Impostor"}}  # fmt: skip
    assert (await slack.http.post("/feedback", json=impostor)).status_code in (200, 201)
    await OutboxWorker(runtime, platform_notifiers(runtime)).run_once(now=clock.now)
    card = next(c.body for c in fake_slack.calls("chat.postMessage") if ref in c.body["text"])
    blocks = card["blocks"] if isinstance(card["blocks"], list) else json.loads(card["blocks"])
    history = next(b for b in blocks if "Customer history" in b.get("text", {}).get("text", ""))
    value = history["accessory"]["value"] if posted == "now" else None  # None: the case id, as then
    await slack.click(history["accessory"]["action_id"], user=ADMIN, value=value)
    [reply] = fake_slack.responses()
    assert "Carol Danvers" in json.dumps(reply["blocks"]) and "Mallory" not in json.dumps(reply["blocks"])
