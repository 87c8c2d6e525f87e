"""Card refreshes queued while the card waited are sent as one: the card shows the case as it is now.

Thread lines are never merged (each says what happened), and a change committed after the worker
read the case keeps its own refresh.
"""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import select

from cxbot.authz import Actor
from cxbot.commands.dispatch import Where, run_text
from cxbot.models import OutboxMessage
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack
from tests.support.platforms import platform_notifiers

MANAGER, AGENT = Actor("U0SUPMGR1", "slack"), Actor("U0SUPAGT1", "slack")
HERE = Where("slack", "C0SUPPORT1")


async def open_case(client: httpx.AsyncClient) -> str:
    item = {"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    response = await client.post("/feedback", json=item)
    return response.json()["results"][0]["case"]


async def card_rows(runtime: Runtime) -> list[tuple[str, dict | None]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.status, OutboxMessage.result)
            .where(OutboxMessage.kind == "case.card")
            .order_by(OutboxMessage.id)
        )
        return [tuple(row) for row in rows.all()]


def thread_lines(fake: FakeSlack) -> list[str]:
    return [c.body["text"] for c in fake.calls("chat.postMessage") if "thread_ts" in c.body]


async def test_three_changes_before_delivery_update_the_card_once_with_every_thread_line(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    ref = await open_case(client)
    await worker.run_once(now=clock.now)  # the card is in the channel
    for text, actor in ((f"ack {ref}", MANAGER), (f"take {ref}", AGENT), (f"note {ref} rang back", AGENT)):
        await run_text(runtime, text, actor=actor, where=HERE)

    stats = await worker.run_once(now=clock.now)

    [update] = fake_slack.calls("chat.update")
    assert update.body["text"].startswith(f"{ref} [in_progress]")
    assert "U0SUPAGT1" in json.dumps(update.body["blocks"])  # the assignee, from the latest change
    assert thread_lines(fake_slack) == [
        "Acknowledged by <@U0SUPMGR1>",
        "Taken by <@U0SUPAGT1>",
        "<@U0SUPAGT1>: rang back",
    ]
    assert stats.superseded == 2
    # The opening card, the refresh that was sent, and the two it made unnecessary: all closed.
    opening, sent, *superseded = await card_rows(runtime)
    assert [status for status, _ in (opening, sent, *superseded)] == ["sent"] * 4
    assert sent[1] is not None and "superseded_by" not in sent[1]
    assert [result for _, result in superseded] == [{"superseded_by": await _id_of_card(runtime, 1)}] * 2


async def test_a_change_made_while_the_card_is_being_sent_gets_its_own_refresh(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    ref = await open_case(client)
    await worker.run_once(now=clock.now)
    await run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE)
    gate = fake_slack.hold("chat.update")
    delivering = asyncio.create_task(worker.run_once(now=clock.now))
    await asyncio.to_thread(fake_slack.wait_for, "chat.update")  # the worker has read the case
    await run_text(runtime, f"take {ref}", actor=AGENT, where=HERE)
    gate.set()
    await delivering
    await worker.run_once(now=clock.now)

    first, second = fake_slack.calls("chat.update")
    assert first.body["text"].startswith(f"{ref} [acknowledged]")
    assert second.body["text"].startswith(f"{ref} [in_progress]")
    assert thread_lines(fake_slack) == ["Acknowledged by <@U0SUPMGR1>", "Taken by <@U0SUPAGT1>"]
    assert [result for _, result in await card_rows(runtime) if result and "superseded_by" in result] == []


async def _id_of_card(runtime: Runtime, index: int) -> int:
    async with runtime.sessions() as session:
        ids = await session.execute(
            select(OutboxMessage.id).where(OutboxMessage.kind == "case.card").order_by(OutboxMessage.id)
        )
        return list(ids.scalars())[index]
