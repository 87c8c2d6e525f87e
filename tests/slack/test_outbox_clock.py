"""The outbox worker on a clock that runs while Slack answers (issue #15).

Every post here takes time: the fake Slack's hook moves the test clock as it answers, so a worker
that read the time once per run would schedule retries, pauses, leases and `sent_at` in the past.
The times written must come after the post that caused them, leases must outlive a slow round, and
two workers on one database must never send a rate-limited row again before Retry-After has passed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from cxbot.authz import Actor
from cxbot.commands.dispatch import Where, run_text
from cxbot.models import CasePost, OutboxMessage
from cxbot.outbox.contract import Delivery, Notifier
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.support.clock import FrozenClock
from tests.support.fake_slack import Answer, Call, FakeSlack, rate_limited
from tests.support.platforms import platform_notifiers

POST = "chat.postMessage"
MANAGER, HERE = Actor("U0SUPMGR1", "slack"), Where("slack", "C0SUPPORT1")


@dataclass(frozen=True, slots=True)
class Post:
    """One chat.postMessage as the fake saw it: when it arrived and answered, on the test clock."""

    card: str  # the case reference the card is for
    arrived: datetime
    answered: datetime
    status: int


def slow_slack(fake: FakeSlack, clock: FrozenClock, *, seconds: float) -> list[Post]:
    """Each post takes `seconds` of the test clock; returns the (growing) record of posts."""
    posts: list[Post] = []

    def answer(call: Call, scripted: Answer | None) -> None:
        arrived = clock.now
        clock.advance(seconds=seconds)
        card = str(call.body.get("text", "")).split(" ", 1)[0]
        posts.append(Post(card, arrived, clock.now, scripted.status if scripted else 200))

    fake.on_call(POST, answer)
    return posts


async def open_cases(
    client: httpx.AsyncClient, count: int, *, touchpoints: tuple[str, ...] = ("Inbound",), first: int = 0
) -> list[str]:
    """`count` cases, their touchpoints (so their teams' channels) taken in turn."""
    refs = []
    for n in range(first, first + count):
        item = {
            "external_id": f"neg-{n}",
            "source": "t",
            "metric": "csat",
            "score": 1,
            "touchpoint": touchpoints[n % len(touchpoints)],
        }
        response = await client.post("/feedback", json=item)
        refs.append(response.json()["results"][0]["case"])
    return refs


async def rows(runtime: Runtime) -> list[OutboxMessage]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


async def test_sent_at_retry_time_and_platform_pause_come_after_the_post(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    posts = slow_slack(fake_slack, clock, seconds=2)
    await open_cases(client, 4)
    fake_slack.script(POST, None, None, rate_limited(1))
    # One post at a time, so the rate limit holds the row after it (concurrent lanes: see below).
    stats = await OutboxWorker(runtime, platform_notifiers(runtime), concurrency=1).run_once()
    assert (stats.sent, stats.retried, stats.released) == (2, 1, 1)
    first, second, limited, fourth = await rows(runtime)
    assert [p.status for p in posts] == [200, 200, 429]
    # sent_at is when the post's answer came back, not when the run began (the clock moved 2 s a post).
    assert first.sent_at == posts[0].answered and second.sent_at == posts[1].answered
    # Retry-After: 1 counts from the 429's arrival; the row held behind it waits as long.
    assert limited.status == "pending" and limited.next_attempt_at == posts[2].answered + timedelta(seconds=1)
    assert fourth.status == "pending" and fourth.next_attempt_at == limited.next_attempt_at


class ThenAnotherReplica:
    """The Slack notifier, with a second replica looking for work after each of this one's posts."""

    def __init__(self, inner: Notifier, other: OutboxWorker) -> None:
        self.inner, self.other = inner, other
        self.platform, self.kinds = inner.platform, inner.kinds
        self.others_sent = 0

    async def deliver(self, delivery: Delivery) -> dict:
        result = await self.inner.deliver(delivery)
        self.others_sent += (await self.other.run_once()).sent
        return result


async def test_a_slow_round_renews_its_lease_so_no_replica_posts_its_rows_again(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    posts = slow_slack(fake_slack, clock, seconds=6)  # 5 posts: 30 s, twice the 15 s lease
    refs = await open_cases(client, 5)
    lease = timedelta(seconds=15)
    other = OutboxWorker(runtime, platform_notifiers(runtime), lease=lease)
    watched = ThenAnotherReplica(platform_notifiers(runtime)["slack"], other)
    claimed_until = clock.now + lease
    # One post at a time: the test clock adds each post's 6 s, as a serial round of slow posts would.
    stats = await OutboxWorker(runtime, {"slack": watched}, lease=lease, concurrency=1).run_once()
    assert (stats.sent, stats.fenced, watched.others_sent) == (5, 0, 0)
    assert [p.card for p in posts] == refs  # each card once, in order
    sent = await rows(runtime)
    assert all(row.status == "sent" for row in sent)
    assert [row.sent_at for row in sent] == [p.answered for p in posts]
    assert clock.now - claimed_until > timedelta(seconds=10)  # the round outlived its first lease


async def test_a_crashed_workers_claim_moves_on_within_the_lease_not_minutes(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    [ref] = await open_cases(client, 1)
    gate = fake_slack.hold(POST)
    crashed = asyncio.create_task(OutboxWorker(runtime, platform_notifiers(runtime)).run_once())
    await asyncio.to_thread(fake_slack.wait_for, POST)
    crashed.cancel()  # killed mid-post: nothing recorded, the row stays claimed
    gate.set()
    [row] = await rows(runtime)
    assert row.status == "sending" and row.next_attempt_at == clock.now + timedelta(seconds=15)
    survivor = OutboxWorker(runtime, platform_notifiers(runtime))
    assert (await survivor.run_once(now=clock.advance(seconds=14))).claimed == 0
    assert (await survivor.run_once(now=clock.advance(seconds=2))).sent == 1
    # The killed worker's post did reach Slack: the survivor finds it instead of posting it again
    # (tests/slack/test_outbox_in_doubt.py has the cases around that).
    assert [c.body["text"].split(" ", 1)[0] for c in fake_slack.calls(POST)] == [ref]


async def test_two_workers_never_send_a_row_again_before_its_retry_after(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    posts = slow_slack(fake_slack, clock, seconds=0.4)
    refs = await open_cases(client, 6)
    fake_slack.script(POST, rate_limited(1), None, rate_limited(1), None, None, rate_limited(1))
    replicas = [OutboxWorker(runtime, platform_notifiers(runtime), batch_size=3) for _ in range(2)]
    for _ in range(100):
        if all(row.status == "sent" for row in await rows(runtime)):
            break
        runs = await asyncio.gather(*(replica.run_once() for replica in replicas))
        if not any(run.claimed for run in runs):
            clock.advance(seconds=0.25)  # nothing due: let time pass as it would between polls
    assert sorted({p.card for p in posts if p.status == 200}) == sorted(refs)
    assert sum(p.status == 429 for p in posts) == 3
    for limited in (p for p in posts if p.status == 429):
        # That card is not posted again, by either worker, until a second after the 429 came back.
        [retry] = [p for p in posts if p.card == limited.card and p.arrived > limited.arrived][:1]
        assert retry.arrived >= limited.answered + timedelta(seconds=1), (limited, retry)
    assert sum(p.status == 200 for p in posts) == len(refs)  # and none posted twice


async def test_posts_to_different_channels_are_in_flight_together_and_each_card_keeps_its_order(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack
) -> None:
    support = await open_cases(client, 2)  # two cards in C0SUPPORT1
    others = await open_cases(client, 2, touchpoints=("shipping", "Cancellation"), first=2)
    for ref in support:
        for text in (f"ack {ref}", f"note {ref} rang back"):
            await run_text(runtime, text, actor=MANAGER, where=HERE)
    gate = fake_slack.hold(POST)
    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    delivering = asyncio.create_task(worker.run_once())
    # A card in each channel is posted before Slack has answered any: one slow post does not hold the
    # other channels. The second card of C0SUPPORT1 waits for the first's answer (a 429 would hold it).
    await asyncio.to_thread(fake_slack.wait_for, POST, 3, timeout=5)
    assert sorted(c.body["channel"] for c in fake_slack.calls(POST)) == [
        "C0BILLING1",
        "C0LOGIST01",
        "C0SUPPORT1",
    ]
    gate.set()
    await delivering
    assert all(row.status == "sent" for row in await rows(runtime))
    async with runtime.sessions() as session:
        posted = dict((await session.execute(select(CasePost.case_id, CasePost.message_ref))).all())
    assert sorted(posted) == [int(ref.removeprefix("CX-")) for ref in support + others]
    for case in support:  # per case: its card, then its thread lines in the order they happened
        ts = posted[int(case.removeprefix("CX-"))]
        lines = [c.body["text"] for c in fake_slack.calls(POST) if c.body.get("thread_ts") == ts]
        assert lines == ["Acknowledged by <@U0SUPMGR1>", "<@U0SUPMGR1>: rang back"]
