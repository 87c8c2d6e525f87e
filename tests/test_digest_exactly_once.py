"""Several replicas, one digest: the (scope, local_date) unique key is the lock (design.md §8, §9).

Two runtimes (two engines, as two processes would have) share one SQLite file or PostgreSQL database
and tick at the same instants concurrently. Every team gets one run per local date, and the number
of digests delivered equals the number of `sent` runs: nobody posted twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from cxbot.config import Config, parse_config
from cxbot.digest.posting import LEADERSHIP_SCOPE, claim_and_deliver, tick
from cxbot.digest.schedule import slot_for
from cxbot.models import DigestRun, Feedback, OutboxMessage, TeamDestination
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.support.clock import FrozenClock
from tests.test_digest_schedule import make_config, running

ZONES = ["Europe/London", "America/New_York", "Asia/Singapore", "America/Los_Angeles", "Europe/Berlin"]


def many_teams() -> Config:
    return make_config(
        *(
            {
                "key": f"team-{i}",
                "name": f"Team {i}",
                "timezone": zone,
                "digest": {"time": "09:00", "cutoff": "23h"},
            }
            for i, zone in enumerate(ZONES)
        )
    )


async def all_runs(runtime: Runtime) -> list[DigestRun]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(DigestRun))).scalars())


async def test_two_schedulers_racing_post_one_digest_per_team(database_url: str) -> None:
    config = many_teams()
    clock = FrozenClock()
    start = datetime(2026, 6, 10, 0, 0, tzinfo=UTC)
    async with running(database_url, config, clock) as one, running(database_url, config, clock) as two:
        delivered: Counter[tuple[str, date]] = Counter()
        for step in range(0, 48):  # a whole day, both replicas ticking at the same half hours
            now = start + timedelta(minutes=30 * step)
            results = await asyncio.gather(
                tick(one, now=now, claimed_by="replica-1"), tick(two, now=now, claimed_by="replica-2")
            )
            for outcome in (o for result in results for o in result):
                if outcome.status == "sent":
                    delivered[(outcome.scope, outcome.local_date)] += 1
        recorded = await all_runs(one)
    keys = Counter((r.scope, r.local_date) for r in recorded)
    assert max(keys.values()) == 1
    sent = {(r.scope, r.local_date) for r in recorded if r.status == "sent"}
    assert set(delivered) == sent and max(delivered.values()) == 1
    # Every team's digest of 10 June was sent, by one replica or the other.
    assert {scope for scope, day in sent if day == date(2026, 6, 10)} == {
        f"team-{i}" for i in range(len(ZONES))
    }
    assert {r.claimed_by for r in recorded} <= {"replica-1", "replica-2"}


async def test_the_claim_itself_refuses_a_second_digest(database_url: str, example_config: Config) -> None:
    """Both replicas built the digest and reach the claim together: exactly one wins."""
    settings = Settings(_env_file=None, DATABASE_URL=database_url)  # type: ignore[call-arg]
    now = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
    one = Runtime.build(settings=settings, config=example_config, clock=FrozenClock(now))
    two = Runtime.build(settings=settings, config=example_config, clock=FrozenClock(now))
    await one.sync_directory()
    try:
        from zoneinfo import ZoneInfo

        from cxbot.config import parse_duration
        from cxbot.digest.content import build_team_digest
        from cxbot.digest.schedule import parse_clock

        team = example_config.team("support")
        slot = slot_for(
            scope="support",
            posted_on=date(2026, 6, 10),
            send_time=parse_clock(team.digest.time),
            zone=ZoneInfo(team.timezone),
            cutoff=parse_duration(team.digest.cutoff),
        )
        async with one.sessions() as session:
            digest = await build_team_digest(session, team=team, report_date=slot.report_date, now=now)
        outcomes = await asyncio.gather(
            *(
                claim_and_deliver(
                    runtime, slot=slot, digest=digest, skip_quiet=False, now=now, claimed_by=name
                )
                for runtime, name in ((one, "a"), (two, "b"), (one, "c"), (two, "d"))
            )
        )
        assert sorted(o.status for o in outcomes) == ["lost", "lost", "lost", "sent"]
        assert len(await all_runs(one)) == 1
    finally:
        await one.close()
        await two.close()


async def test_quiet_day_is_posted_briefly_or_skipped_per_team(runtime: Runtime, clock: FrozenClock) -> None:
    # support posts quiet days, logistics skips them (cxbot.example.yaml). 16:00 UTC: both due, in cut-off.
    now = datetime(2026, 6, 10, 15, 0, tzinfo=UTC)
    clock.now = now
    support_due = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)
    logistics_due = datetime(2026, 6, 10, 12, 30, tzinfo=UTC)
    await tick(runtime, now=support_due)
    await tick(runtime, now=logistics_due)
    by_scope = {(r.scope, r.local_date): r for r in await all_runs(runtime)}
    support, logistics = by_scope[("support", date(2026, 6, 10))], by_scope[("logistics", date(2026, 6, 10))]
    assert support.status == "sent"
    assert support.detail is not None and "A quiet day: no feedback received." in support.detail
    assert logistics.status == "skipped"
    assert logistics.detail == "quiet day: no feedback on 2026-06-09"


async def test_a_day_with_feedback_is_not_quiet_for_a_skipping_team(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        session.add(
            Feedback(
                source="t",
                external_id="1",
                metric="nps",
                score=9,
                team_key="logistics",
                received_at=datetime(2026, 6, 9, 15, 0, tzinfo=UTC),
            )
        )
    (outcome,) = [
        o
        for o in await tick(runtime, now=datetime(2026, 6, 10, 12, 30, tzinfo=UTC))
        if o.scope == "logistics" and o.local_date == date(2026, 6, 10)
    ]
    assert outcome.status == "sent"
    assert "1 responses · 0 negative" in outcome.detail


async def test_leadership_digest_puts_all_teams_side_by_side_once(runtime: Runtime) -> None:
    # cxbot.example.yaml: leadership at 09:00 Europe/London.
    due = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)
    first = await tick(runtime, now=due)
    again = await tick(runtime, now=due + timedelta(minutes=1))
    (leadership,) = [o for o in first if o.scope == LEADERSHIP_SCOPE and o.status == "sent"]
    assert leadership.status == "sent"
    assert not [o for o in again if o.scope == LEADERSHIP_SCOPE]
    for team in runtime.config.teams:
        assert f"{team.name}: quiet day, no feedback" in leadership.detail


async def test_the_scheduler_ticks_every_minute_and_stops_cleanly(runtime: Runtime) -> None:
    from cxbot.scheduler import Scheduler

    scheduler = Scheduler(runtime, claimed_by="serve-1")
    scheduler.start()
    try:
        (job,) = scheduler._scheduler.get_jobs()
        assert job.id == "digests" and job.max_instances == 1 and job.coalesce
        assert str(job.trigger) == "cron[second='0']"
    finally:
        scheduler.shutdown()
    await asyncio.sleep(0)  # APScheduler applies the shutdown on the event loop's next turn
    assert not scheduler._scheduler.running


async def test_each_platform_a_team_and_the_leadership_name_gets_its_digest(database_url: str) -> None:
    """`teams[].slack.channel` and `teams[].msteams.channel` are both seeded as destinations; the
    scheduler queues a team's digest to each, and the leadership digest to each platform's channel."""
    teams_channel = "19:2f7c0d1e5b2a4c4f9a1e3b0c6d5e4f3a@thread.tacv2"
    config = parse_config(
        {
            "teams": [
                {
                    "key": "support",
                    "name": "Support",
                    "slack": {"channel": "C0SUPPORT1"},
                    "msteams": {"channel": teams_channel},
                    "digest": {"time": "09:00", "cutoff": "23h"},
                },
                {"key": "billing", "name": "Billing", "msteams": {"channel": "19:billing@thread.tacv2"}},
            ],
            "routing": {"fallback_team": "support"},
            "leadership": {"channel": "C0CXLEADS1", "msteams": {"channel": "19:leads@thread.tacv2"}},
        }
    )
    async with running(database_url, config, FrozenClock()) as runtime:
        async with runtime.sessions() as session:
            seeded = set(
                (await session.execute(select(TeamDestination.team_key, TeamDestination.platform))).all()
            )
        assert seeded == {("support", "slack"), ("support", "msteams"), ("billing", "msteams")}
        await tick(runtime, now=datetime(2026, 6, 10, 9, 0, tzinfo=UTC))
        async with runtime.sessions() as session:
            queued = (
                await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "digest"))
            ).scalars()
            by_scope = Counter((row.payload["scope"], row.platform, row.destination) for row in queued)
    assert by_scope == {
        ("support", "slack", "C0SUPPORT1"): 1,
        ("support", "msteams", teams_channel): 1,
        ("billing", "msteams", "19:billing@thread.tacv2"): 1,
        (LEADERSHIP_SCOPE, "slack", "C0CXLEADS1"): 1,
        (LEADERSHIP_SCOPE, "msteams", "19:leads@thread.tacv2"): 1,
    }
