"""A worker that stops between a post and its record: the next one looks before posting (issue #15).

A replica killed after Slack accepted a post, but before the row was recorded, leaves the row
`sending`. Once its lease runs out another worker claims it, and that attempt may be a duplicate.
Each post carries metadata naming its outbox row and part, so the new attempt reads the channel's
history (a thread's replies for a thread line, a person's direct message for a DM) and binds what it
finds instead of posting again. The kill is simulated exactly at that point: a notifier wrapper whose
task is cancelled once the post's answer is back (or before the post), so no record is written.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import select

from cxbot.commands.dispatch import run_text
from cxbot.db import transaction
from cxbot.models import CasePost
from cxbot.outbox.contract import REPORT, Delivery, Notifier
from cxbot.outbox.queue import queue_message
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from handlers.slack.notifier import POST_MARKER
from tests.slack.test_outbox_clock import HERE, MANAGER, open_cases, rows
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack, error, rate_limited
from tests.support.platforms import platform_notifiers

POST, HISTORY, REPLIES = "chat.postMessage", "conversations.history", "conversations.replies"
LEASE = timedelta(seconds=15)


class KilledAt:
    """The Slack notifier, its worker killed after (or before) delivering rows of one kind."""

    def __init__(self, inner: Notifier, *, kind: str, after_post: bool = True) -> None:
        self.inner, self.kind, self.after_post = inner, kind, after_post
        self.platform, self.kinds = inner.platform, inner.kinds

    async def deliver(self, delivery: Delivery) -> dict:
        if delivery.kind != self.kind:
            return await self.inner.deliver(delivery)
        if self.after_post:
            await self.inner.deliver(delivery)  # Slack has it; the record never comes
        raise asyncio.CancelledError


async def killed_then_survivor(runtime: Runtime, clock: FrozenClock, *, kind: str, after_post: bool = True):
    """Run a worker that dies at `kind`, then (its lease run out) a survivor's run; its stats."""
    notifiers = platform_notifiers(runtime)
    killed = KilledAt(notifiers["slack"], kind=kind, after_post=after_post)
    await OutboxWorker(runtime, {**notifiers, "slack": killed}, lease=LEASE).run_once()
    assert [r.status for r in await rows(runtime) if r.kind == kind] == ["sending"]
    clock.advance(seconds=16)
    return await OutboxWorker(runtime, platform_notifiers(runtime), lease=LEASE).run_once()


def marker(row_id: int, part: str) -> dict:
    return {"event_type": POST_MARKER, "event_payload": {"outbox_id": row_id, "part": part}}


async def test_a_card_posted_by_a_killed_worker_is_found_not_posted_again(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    [ref] = await open_cases(client, 1)
    stats = await killed_then_survivor(runtime, clock, kind="case.card")
    assert (stats.sent, stats.claimed) == (1, 1)
    [post] = fake_slack.calls(POST)  # one card in the channel, not two
    [row] = await rows(runtime)
    assert post.body["metadata"] == marker(row.id, "card") and post.body["text"].startswith(ref)
    first_ts = fake_slack.messages["C0SUPPORT1"][0][1]
    assert row.status == "sent" and row.result == {"message_ref": first_ts, "action": "found"}
    assert row.lost_lease_until is None
    async with runtime.sessions() as session:
        bound = await session.scalar(select(CasePost.message_ref).where(CasePost.case_id == row.case_id))
    assert bound == first_ts  # later refreshes edit the card that is there
    [lookup] = fake_slack.calls(HISTORY)
    assert lookup.body["channel"] == "C0SUPPORT1" and lookup.body["include_all_metadata"] == "true"
    # It looked back to before the lost lease began (the lease's end less the lease and a margin).
    assert float(lookup.body["oldest"]) < (clock.now - timedelta(seconds=16) - LEASE).timestamp()


async def test_a_worker_killed_before_its_post_reached_slack_is_posted_once_after_looking(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    await open_cases(client, 1)
    stats = await killed_then_survivor(runtime, clock, kind="case.card", after_post=False)
    assert stats.sent == 1
    [row] = await rows(runtime)
    assert len(fake_slack.calls(POST)) == 1
    assert row.result == {"message_ref": post_ts(fake_slack), "action": "posted"}
    assert len(fake_slack.calls(HISTORY)) == 1


def post_ts(fake: FakeSlack) -> str:
    [kept] = fake.messages["C0SUPPORT1"]
    return kept[1]


async def test_deliveries_that_were_not_in_doubt_never_look(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack
) -> None:
    ref = (await open_cases(client, 2))[0]
    await run_text(runtime, f"note {ref} rang back", actor=MANAGER, where=HERE)
    stats = await OutboxWorker(runtime, platform_notifiers(runtime)).run_once()
    assert (stats.sent, stats.superseded) == (3, 1)  # two cards and a thread line; the card shows the note
    assert fake_slack.calls(HISTORY) == fake_slack.calls(REPLIES) == []
    assert all(c.body["metadata"]["event_type"] == POST_MARKER for c in fake_slack.calls(POST))


async def test_a_thread_line_in_doubt_is_looked_for_in_its_thread(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    [ref] = await open_cases(client, 1)
    await OutboxWorker(runtime, platform_notifiers(runtime)).run_once()
    card_ts = post_ts(fake_slack)
    await run_text(runtime, f"note {ref} rang back", actor=MANAGER, where=HERE)
    stats = await killed_then_survivor(runtime, clock, kind="case.thread")
    assert stats.sent == 1
    lines = [c for c in fake_slack.calls(POST) if c.body.get("thread_ts")]
    assert len(lines) == 1 and lines[0].body["thread_ts"] == card_ts
    [lookup] = fake_slack.calls(REPLIES)
    assert lookup.body["ts"] == card_ts and fake_slack.calls(HISTORY) == []
    line = next(r for r in await rows(runtime) if r.kind == "case.thread")
    assert line.status == "sent" and line.result["ts"] == fake_slack.messages["C0SUPPORT1"][1][1]


async def test_a_direct_message_in_doubt_is_looked_for_in_the_persons_conversation(
    runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    async with transaction(runtime.sessions) as session:
        await queue_message(
            session,
            kind=REPORT,
            platform="slack",
            destination="U0ADMIN001",
            payload={"text": "a report", "dead_id": 1, "code": "x"},
            subject=("test", 1),
            now=clock.now,
        )
    stats = await killed_then_survivor(runtime, clock, kind=REPORT)
    assert stats.sent == 1 and len(fake_slack.calls(POST)) == 1
    [opened] = fake_slack.calls("conversations.open")
    [lookup] = fake_slack.calls(HISTORY)
    assert opened.body["users"] == "U0ADMIN001" and lookup.body["channel"] == "D0ADMIN001"


async def test_a_lookup_slack_refuses_posts_again_at_least_once(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock, caplog
) -> None:
    await open_cases(client, 1)
    fake_slack.script(HISTORY, error("missing_scope"))
    stats = await killed_then_survivor(runtime, clock, kind="case.card")
    assert stats.sent == 1 and len(fake_slack.calls(POST)) == 2  # the old behaviour: sent again
    assert "cannot look in C0SUPPORT1 for an earlier post (missing_scope)" in caplog.text


async def test_a_rate_limited_lookup_is_tried_again_and_the_row_stays_in_doubt(
    client: httpx.AsyncClient, runtime: Runtime, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    await open_cases(client, 1)
    fake_slack.script(HISTORY, rate_limited(1))
    stats = await killed_then_survivor(runtime, clock, kind="case.card")
    assert (stats.sent, stats.retried) == (0, 1)
    [row] = await rows(runtime)
    assert row.status == "pending" and row.lost_lease_until is not None
    clock.advance(seconds=1)
    assert (await OutboxWorker(runtime, platform_notifiers(runtime)).run_once()).sent == 1
    assert len(fake_slack.calls(POST)) == 1 and len(fake_slack.calls(HISTORY)) == 2
    [row] = await rows(runtime)
    assert row.result["action"] == "found" and row.lost_lease_until is None
