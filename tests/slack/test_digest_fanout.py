"""Digest fan-out (issue #15): many teams due in the same minute, two replicas, each digest posted once.

Two runtimes (two engines, as two `serve` processes would have) share one database; both tick at the
due instant and both run the outbox worker paced as `serve` runs it, against the fake Slack. What
shows that the fan-out is not serialised, without timing anything: the due digests are claimed and
queued in a few batch transactions (counted as commits), the two workers' single runs deliver every
digest (no wait for a poll per digest), and the first posts are in flight at the fake together.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select

from cxbot.config import Config, parse_config
from cxbot.digest.posting import CLAIM_BATCH, tick
from cxbot.models import DigestRun
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.fake_slack import Answer, Call, FakeSlack, slack_settings
from tests.support.platforms import platform_notifiers

TEAMS = 60
DUE = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
#: Posts the worker has in flight at once (OutboxWorker's default concurrency).
IN_FLIGHT = 8


def channel(index: int) -> str:
    return f"C0FAN{index:05d}"


def fanout_config() -> Config:
    teams = [
        {
            "key": f"team-{i:02d}",
            "name": f"Team {i:02d}",
            "timezone": "UTC",
            "digest": {"time": "09:00", "cutoff": "3h"},
            "slack": {"channel": channel(i)},
        }
        for i in range(TEAMS)
    ]
    return parse_config({"teams": teams, "routing": {"fallback_team": "team-00"}})


def count_commits(runtime: Runtime) -> list[int]:
    commits = [0]

    def committed(_connection: Any) -> None:
        commits[0] += 1

    event.listen(runtime.engine.sync_engine, "commit", committed)
    return commits


async def test_digests_due_together_are_batched_and_posted_once_each_across_two_replicas(
    database_url: str, fake_slack: FakeSlack
) -> None:
    config = fanout_config()
    settings = slack_settings(database_url, fake_slack, API_KEY)
    clock = FrozenClock(DUE)
    replicas = [Runtime.build(settings=settings, config=config, clock=clock) for _ in range(2)]
    await replicas[0].sync_directory()
    # The first posts answer only once IN_FLIGHT of them have arrived: a worker posting one digest
    # at a time would break the barrier (and the counts below) instead of passing it.
    together = threading.Barrier(IN_FLIGHT, timeout=10)
    arrival = itertools.count()

    def hold_the_first_until_they_are_all_in_flight(_call: Call, _answer: Answer | None) -> None:
        if next(arrival) < IN_FLIGHT:
            together.wait()

    fake_slack.on_call("chat.postMessage", hold_the_first_until_they_are_all_in_flight)
    try:
        commits = [count_commits(replica) for replica in replicas]
        outcomes = await asyncio.gather(
            *(tick(replica, now=DUE, claimed_by=f"replica-{i}") for i, replica in enumerate(replicas))
        )
        tick_commits = sum(c[0] for c in commits)
        workers = [OutboxWorker(replica, platform_notifiers(replica), paced=True) for replica in replicas]
        delivered = await asyncio.gather(*(worker.run_once() for worker in workers))
        async with replicas[0].sessions() as session:
            today = await session.execute(select(DigestRun).where(DigestRun.local_date == DUE.date()))
            statuses = Counter((run.scope, run.status) for run in today.scalars())
    finally:
        for replica in replicas:
            await replica.close()

    assert statuses == Counter({(f"team-{i:02d}", "sent"): 1 for i in range(TEAMS)})
    sent = sorted(o.scope for result in outcomes for o in result if o.status == "sent")
    assert sent == [f"team-{i:02d}" for i in range(TEAMS)]  # each won by one replica or the other
    # Per replica: one transaction records the three missed days, then one per batch of due digests
    # (a replica skips a batch the other already recorded); one per team would be 2 x 60.
    assert tick_commits <= 2 * (1 + math.ceil(TEAMS / CLAIM_BATCH))
    # One run of each worker delivered everything: rounds of a batch each, no poll per digest.
    assert sum(stats.sent for stats in delivered) == TEAMS
    posts = Counter(call.body["channel"] for call in fake_slack.calls("chat.postMessage"))
    assert posts == Counter({channel(i): 1 for i in range(TEAMS)})
    assert not together.broken
