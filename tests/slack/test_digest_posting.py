"""A claimed digest is queued in the outbox in the same transaction and posted to Slack exactly once."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from cxbot.digest.posting import tick
from cxbot.models import DigestRun, OutboxMessage
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack
from tests.support.platforms import platform_notifiers

# 09:00 in London on 3 November 2026 (GMT): support's send time in cxbot.example.yaml.
SUPPORT_SENDS = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


async def test_digest_is_queued_once_and_posted_once(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, fake_slack: FakeSlack
) -> None:
    await client.post(
        "/feedback",
        json={
            "external_id": "d-1",
            "source": "t",
            "metric": "csat",
            "score": 5,
            "touchpoint": "Inbound",
            "received_at": "2026-11-02T12:00:00Z",
        },
    )
    clock.now = SUPPORT_SENDS
    await tick(runtime, now=SUPPORT_SENDS, claimed_by="one")
    await tick(runtime, now=SUPPORT_SENDS, claimed_by="two")
    async with runtime.sessions() as session:
        queued = (
            await session.execute(
                select(OutboxMessage.destination, OutboxMessage.payload).where(OutboxMessage.kind == "digest")
            )
        ).all()
        runs = (
            (
                await session.execute(
                    select(DigestRun.status).where(
                        DigestRun.scope == "support", DigestRun.local_date == SUPPORT_SENDS.date()
                    )
                )
            )
            .scalars()
            .all()
        )
    assert runs == ["sent"]
    # Due at 09:00 UTC: support (09:00 London), billing (09:30 Berlin) and the leadership digest.
    assert sorted(destination for destination, _ in queued) == ["C0BILLING1", "C0CXLEADS1", "C0SUPPORT1"]
    support_text = next(payload["text"] for destination, payload in queued if destination == "C0SUPPORT1")
    assert "Customer Support" in support_text

    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    await worker.run_once(now=SUPPORT_SENDS)
    await worker.run_once(now=SUPPORT_SENDS)
    posts = [c.body for c in fake_slack.calls("chat.postMessage") if c.body.get("channel") == "C0SUPPORT1"]
    assert len(posts) == 1
    assert "Customer Support" in posts[0]["text"]
