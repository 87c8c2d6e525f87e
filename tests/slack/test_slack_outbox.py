"""The outbox worker delivering to a fake Slack on loopback: cards, threads, retries and dead letters.

The worker is driven with `run_once(now=...)` on the frozen clock; the fake answers 429 with
Retry-After, 500 or `ok: false` when told to. Nothing may be lost and nothing sent twice.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import delete, select

from cxbot.authz import Actor
from cxbot.commands.dispatch import Where, run_text
from cxbot.models import CasePost, OutboxHold, OutboxMessage
from cxbot.outbox.contract import Delivery
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.support.clock import FrozenClock
from tests.support.fake_slack import (
    SERVER_ERROR,
    FakeSlack,
    error,
    rate_limited,
)
from tests.support.platforms import platform_notifiers

MANAGER = Actor("U0SUPMGR1", "slack")
HERE = Where("slack", "C0SUPPORT1")
CHANNEL = "C0SUPPORT1"


@pytest.fixture
def worker(runtime: Runtime) -> OutboxWorker:
    return OutboxWorker(runtime, platform_notifiers(runtime))


async def open_case(client: httpx.AsyncClient, external_id: str = "neg-1", **extra: object) -> str:
    item = {"external_id": external_id, "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    response = await client.post("/feedback", json={**item, **extra})
    return response.json()["results"][0]["case"]


def cards(fake: FakeSlack) -> list[dict]:
    """Top-level posts (cards, reports), not thread replies."""
    return [c.body for c in fake.calls("chat.postMessage") if "thread_ts" not in c.body]


async def outbox(runtime: Runtime) -> list[tuple[str, str, str | None, int]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(
                OutboxMessage.kind, OutboxMessage.status, OutboxMessage.destination, OutboxMessage.attempts
            ).order_by(OutboxMessage.id)
        )
        return [tuple(r) for r in rows.all()]


async def test_card_is_posted_once_then_updated_in_place_with_a_thread(
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    fake_slack: FakeSlack,
    clock: FrozenClock,
) -> None:
    ref = await open_case(
        client,
        comment="Rang 3 times, call me on +44 20 7946 0000 or ada@example.com",
        customer={"id": "c-1", "name": "Ada Lovelace", "email": "ada@example.com"},
    )
    stats = await worker.run_once(now=clock.now)
    assert (stats.sent, stats.retried, stats.dead) == (1, 0, 0)
    [card] = cards(fake_slack)
    assert card["channel"] == CHANNEL and card["text"].startswith(f"{ref} [new]")
    posted = json.dumps(card)
    assert "ada@example.com" not in posted and "7946 0000" not in posted and "Ada Lovelace" not in posted
    assert "a***@e***.com" in posted and "A. L." in posted
    # Built with slack_sdk's models: it parses back into blocks and stays within Slack's limits.
    assert len(Block.parse_all(card["blocks"])) == len(card["blocks"]) <= 50
    action_ids = [e["action_id"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]
    case_id = ref.removeprefix("CX-")
    verbs = ("ack", "take", "assign", "contact", "resolve", "reveal")
    assert action_ids == [f"cx_{v}:{case_id}" for v in verbs]

    await run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE)
    clock.advance(seconds=1)
    stats = await worker.run_once(now=clock.now)
    assert stats.sent == 2
    ts = "1700000000.000001"  # the fake numbers its messages; the card was the first
    [update] = fake_slack.calls("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (CHANNEL, ts)
    assert "acknowledged" in update.body["text"]
    [line] = [c.body for c in fake_slack.calls("chat.postMessage") if "thread_ts" in c.body]
    assert (line["thread_ts"], line["text"]) == (ts, "Acknowledged by <@U0SUPMGR1>")
    async with runtime.sessions() as session:
        post = (await session.execute(select(CasePost))).scalar_one()
    assert (post.destination, post.message_ref) == (CHANNEL, ts)
    # Nothing left to do: another run makes no call at all.
    calls = len(fake_slack.calls())
    assert (await worker.run_once(now=clock.advance(hours=1))).claimed == 0
    assert len(fake_slack.calls()) == calls


async def test_rate_limit_waits_for_retry_after_and_holds_the_platform(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    # One post at a time (posts already in flight in other lanes are not recalled by a 429).
    worker = OutboxWorker(runtime, platform_notifiers(runtime), batch_size=2, concurrency=1)
    for n in range(3):
        await open_case(client, f"neg-{n}")
    fake_slack.script("chat.postMessage", rate_limited(30))
    stats = await worker.run_once(now=clock.now)
    # The first card met the 429; the second, claimed with it, was not even tried (the limit is per
    # workspace) and the third, still queued, is held too, whichever worker would look at it next.
    assert (stats.claimed, stats.retried, stats.released, stats.sent) == (2, 1, 1, 0)
    assert len(fake_slack.calls("chat.postMessage")) == 1
    async with runtime.sessions() as session:
        query = select(OutboxMessage.next_attempt_at).order_by(OutboxMessage.id)
        due = list((await session.execute(query)).scalars())
        holds = (await session.execute(select(OutboxHold.destination, OutboxHold.until))).all()
    assert due[:2] == [clock.now + timedelta(seconds=30)] * 2  # the refused card and the one put back
    assert holds == [(CHANNEL, clock.now + timedelta(seconds=30))]  # the channel, for every worker
    fresh = OutboxWorker(runtime, platform_notifiers(runtime))  # another replica, no memory of the 429
    assert (await fresh.run_once(now=clock.advance(seconds=29))).claimed == 0
    assert (await worker.run_once(now=clock.now)).claimed == 0
    assert len(fake_slack.calls("chat.postMessage")) == 1
    stats = await worker.run_once(now=clock.advance(seconds=1))
    assert stats.sent == 3
    assert len(cards(fake_slack)) == 4  # one refused, then each card exactly once
    assert [(k, s, a) for k, s, _, a in await outbox(runtime)] == [
        ("case.card", "sent", 2),
        ("case.card", "sent", 1),
        ("case.card", "sent", 1),
    ]


async def test_server_errors_back_off_and_then_deliver_once(
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    fake_slack: FakeSlack,
    clock: FrozenClock,
) -> None:
    await open_case(client)
    fake_slack.script("chat.postMessage", SERVER_ERROR, SERVER_ERROR)
    assert (await worker.run_once(now=clock.now)).retried == 1
    async with runtime.sessions() as session:
        row = (await session.execute(select(OutboxMessage))).scalar_one()
    assert row.last_error == "Slack answered 500 http_500" and row.next_attempt_at == clock.now.replace(
        second=10
    )
    assert (await worker.run_once(now=clock.advance(seconds=10))).retried == 1  # backoff doubles: 20 s
    assert (await worker.run_once(now=clock.advance(seconds=19))).claimed == 0
    assert (await worker.run_once(now=clock.advance(seconds=1))).sent == 1
    assert len(cards(fake_slack)) == 3
    assert [(s, a) for _, s, _, a in await outbox(runtime)] == [("sent", 3)]


async def test_channel_not_found_is_dead_lettered_reported_to_admins_and_never_retried(
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    fake_slack: FakeSlack,
    clock: FrozenClock,
) -> None:
    ref = await open_case(client)
    await run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE)
    fake_slack.script("chat.postMessage", error("channel_not_found"))
    stats = await worker.run_once(now=clock.now)
    assert (stats.dead, stats.reports, stats.sent) == (3, 1, 1)
    [refused, report] = cards(fake_slack)
    assert refused["channel"] == CHANNEL
    assert report["channel"] == "U0ADMIN01"
    assert f"for {ref} to {CHANNEL}" in report["text"] and "channel_not_found" in report["text"]
    assert await outbox(runtime) == [
        ("case.card", "dead", CHANNEL, 1),
        ("case.card", "dead", CHANNEL, 0),  # same broken channel: buried with the first, not tried
        ("case.thread", "dead", CHANNEL, 0),
        ("report", "sent", "U0ADMIN01", 1),
    ]
    calls = len(fake_slack.calls())
    assert (await worker.run_once(now=clock.advance(days=1))).claimed == 0
    assert len(fake_slack.calls()) == calls


async def test_a_bad_message_is_reported_to_the_teams_channel(
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    fake_slack: FakeSlack,
    clock: FrozenClock,
) -> None:
    ref = await open_case(client)
    fake_slack.script("chat.postMessage", error("invalid_blocks"))
    stats = await worker.run_once(now=clock.now)
    assert (stats.dead, stats.reports) == (1, 1)
    report = cards(fake_slack)[-1]
    assert report["channel"] == CHANNEL and "invalid_blocks" in report["text"] and ref in report["text"]


async def test_revoked_token_is_dead_and_only_logged(
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    fake_slack: FakeSlack,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await open_case(client)
    fake_slack.script("chat.postMessage", error("invalid_auth"))
    stats = await worker.run_once(now=clock.now)
    assert (stats.dead, stats.reports) == (1, 0)
    assert "slack credentials rejected (invalid_auth)" in caplog.text


async def test_too_many_transient_failures_give_up_and_report(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    from cxbot.outbox.worker import RetryPolicy

    worker = OutboxWorker(runtime, platform_notifiers(runtime), retry=RetryPolicy(max_attempts=2))
    await open_case(client)
    fake_slack.script("chat.postMessage", SERVER_ERROR, SERVER_ERROR)
    assert (await worker.run_once(now=clock.now)).retried == 1
    stats = await worker.run_once(now=clock.advance(minutes=1))
    assert (stats.dead, stats.reports, stats.sent) == (1, 1, 1)
    assert "gave_up" in cards(fake_slack)[-1]["text"]


async def test_deleted_card_is_posted_again_and_rebound(
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    fake_slack: FakeSlack,
    clock: FrozenClock,
) -> None:
    ref = await open_case(client)
    await worker.run_once(now=clock.now)
    await run_text(runtime, f"take {ref}", actor=MANAGER, where=HERE)
    fake_slack.script("chat.update", error("message_not_found"))
    stats = await worker.run_once(now=clock.advance(seconds=1))
    assert (stats.sent, stats.dead) == (2, 0)
    first, second = cards(fake_slack)
    async with runtime.sessions() as session:
        post = (await session.execute(select(CasePost))).scalar_one()
    thread = [c.body for c in fake_slack.calls("chat.postMessage") if "thread_ts" in c.body]
    assert post.message_ref == "1700000000.000002" == thread[0]["thread_ts"]
    assert first["text"] != second["text"]


async def test_two_workers_at_once_deliver_each_message_once(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    refs = [await open_case(client, f"neg-{n}") for n in range(6)]
    first = OutboxWorker(runtime, platform_notifiers(runtime), batch_size=4)
    second = OutboxWorker(runtime, platform_notifiers(runtime), batch_size=4)
    await asyncio.gather(first.run_once(now=clock.now), second.run_once(now=clock.now))
    for ref in refs:
        await run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE)
    await asyncio.gather(first.run_once(now=clock.now), second.run_once(now=clock.now))
    await first.run_once(now=clock.now)  # whatever a round left behind
    assert len(cards(fake_slack)) == 6  # one card per case, never two
    assert len(fake_slack.calls("chat.update")) == 6
    threads = [c.body["thread_ts"] for c in fake_slack.calls("chat.postMessage") if "thread_ts" in c.body]
    assert len(threads) == 6 and len(set(threads)) == 6
    assert {s for _, s, _, _ in await outbox(runtime)} == {"sent"}


async def test_thread_line_without_a_card_posts_the_card_once_even_if_the_line_fails(
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    fake_slack: FakeSlack,
    clock: FrozenClock,
) -> None:
    ref = await open_case(client)
    note = f"note {ref} <!channel> customer rang from 07700 900123"
    await run_text(runtime, note, actor=MANAGER, where=HERE)
    async with runtime.sessions() as session, session.begin():  # a case from before cards were queued
        await session.execute(delete(OutboxMessage).where(OutboxMessage.kind == "case.card"))
    fake_slack.script("chat.postMessage", None, SERVER_ERROR)  # the card goes out, the line does not
    assert (await worker.run_once(now=clock.now)).retried == 1
    async with runtime.sessions() as session:
        post = (await session.execute(select(CasePost))).scalar_one()
    assert post.message_ref == "1700000000.000001"
    assert (await worker.run_once(now=clock.advance(minutes=1))).sent == 1
    assert len(cards(fake_slack)) == 1  # the retry did not post a second card
    line = fake_slack.calls("chat.postMessage")[-1].body
    assert line["thread_ts"] == "1700000000.000001"
    assert line["text"] == "<@U0SUPMGR1>: &lt;!channel&gt; customer rang from •••23"


async def test_old_inbound_event_ids_are_forgotten(runtime: Runtime, clock: FrozenClock) -> None:
    from cxbot.outbox.inbox import forget_inbound_events, remember_inbound_event

    assert await remember_inbound_event(runtime, platform="slack", event_id="Ev1", kind="x", now=clock.now)
    assert not await remember_inbound_event(
        runtime, platform="slack", event_id="Ev1", kind="x", now=clock.now
    )
    assert await forget_inbound_events(runtime, before=clock.now) == 0
    assert await forget_inbound_events(runtime, before=clock.now + timedelta(seconds=1)) == 1


class StuckNotifier:
    """A worker that hangs mid-delivery (a frozen replica): it only answers when the test says so."""

    platform = "slack"
    kinds = frozenset({"case.card", "case.thread", "report"})

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def deliver(self, delivery: Delivery) -> dict:
        self.entered.set()
        await self.release.wait()
        return {"message_ref": "1699999999.999999"}


async def test_an_expired_lease_is_taken_over_and_the_late_worker_is_fenced_out(
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    fake_slack: FakeSlack,
    clock: FrozenClock,
) -> None:
    await open_case(client)
    stuck = StuckNotifier()
    frozen = OutboxWorker(runtime, {"slack": stuck}, lease=timedelta(minutes=2))
    late = asyncio.create_task(frozen.run_once(now=clock.now))
    await stuck.entered.wait()
    assert (await worker.run_once(now=clock.advance(minutes=1))).claimed == 0  # still leased
    assert (await worker.run_once(now=clock.advance(minutes=1))).sent == 1  # lease over: taken over
    stuck.release.set()
    late_stats = await late
    assert (late_stats.sent, late_stats.fenced) == (0, 1)
    async with runtime.sessions() as session:
        post = (await session.execute(select(CasePost))).scalar_one()
        row = (await session.execute(select(OutboxMessage))).scalar_one()
    # The row and the card binding are the live worker's (the frozen one's call was a duplicate).
    assert post.message_ref == "1700000000.000001"
    assert (row.status, row.attempts, row.result["message_ref"]) == ("sent", 1, "1700000000.000001")


async def test_a_team_wide_message_is_queued_once_per_destination_and_posted(
    runtime: Runtime, worker: OutboxWorker, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    from cxbot.db import transaction
    from cxbot.outbox.queue import enqueue_for_team

    text = "*Customer Support, Sunday 1 November*\n" + "\n".join(f"• line {n}" for n in range(400))
    for attempt in range(2):  # a replayed job queues nothing more
        async with transaction(runtime.sessions) as session:
            added = await enqueue_for_team(
                session,
                team_key="support",
                kind="digest",
                payload={"text": text},
                subject=("daily", "2026-11-01"),
                now=clock.now,
            )
        assert added == (1 if attempt == 0 else 0)
    assert (await worker.run_once(now=clock.now)).sent == 1
    [post] = fake_slack.calls("chat.postMessage")
    assert post.body["channel"] == CHANNEL and post.body["text"].startswith("*Customer Support")
    assert 1 < len(post.body["blocks"]) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in post.body["blocks"] if b["type"] == "section")


async def test_serve_services_deliver_in_the_background_and_stop_cleanly(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack
) -> None:
    from tests.support.platforms import platform_services

    async with platform_services(runtime, idle_seconds=0.01):
        ref = await open_case(client)
        [card] = await asyncio.to_thread(fake_slack.wait_for, "chat.postMessage")
    assert card.body["text"].startswith(f"{ref} [new]")
    async with runtime.sessions() as session:
        assert (await session.execute(select(OutboxMessage.status))).scalar_one() == "sent"


async def test_a_queued_row_wakes_the_worker_instead_of_waiting_for_the_poll(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack
) -> None:
    from tests.support.platforms import platform_services

    async with platform_services(runtime, idle_seconds=600):  # the poll would not come in this test
        ref = await open_case(client)
        [card] = await asyncio.to_thread(fake_slack.wait_for, "chat.postMessage", timeout=5)
    assert card.body["text"].startswith(f"{ref} [new]")
