"""Digest timing: local send instants across DST changes, exactly once per local day (design.md §8).

The frozen clock drives time: `tick` is called at chosen instants, never slept on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from cxbot.config import Config, parse_config
from cxbot.digest.posting import tick
from cxbot.digest.schedule import local_day_bounds, local_instant
from cxbot.models import DigestRun
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.support.clock import FrozenClock

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def make_config(*teams: dict[str, Any]) -> Config:
    return parse_config({"teams": list(teams), "routing": {"fallback_team": teams[0]["key"]}})


@asynccontextmanager
async def running(database_url: str, config: Config, clock: FrozenClock) -> AsyncIterator[Runtime]:
    settings = Settings(_env_file=None, DATABASE_URL=database_url)  # type: ignore[call-arg]
    runtime = Runtime.build(settings=settings, config=config, clock=clock)
    await runtime.sync_directory()
    try:
        yield runtime
    finally:
        await runtime.close()


async def runs(runtime: Runtime, scope: str | None = None) -> list[DigestRun]:
    query = select(DigestRun).order_by(DigestRun.scope, DigestRun.local_date)
    if scope is not None:
        query = query.where(DigestRun.scope == scope)
    async with runtime.sessions() as session:
        return list((await session.execute(query)).scalars())


# --------------------------------------------------------------------------- pure time arithmetic


@pytest.mark.parametrize(
    ("zone", "day", "at", "expected"),
    [
        # Spring forward in New York: 02:00-03:00 does not exist; 02:30 fires at 03:00 EDT.
        (NEW_YORK, date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7, 0)),
        (NEW_YORK, date(2026, 3, 8), time(9, 0), utc(2026, 3, 8, 13, 0)),
        # Fall back in New York: 01:30 happens twice; the first (EDT) counts.
        (NEW_YORK, date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),
        (NEW_YORK, date(2026, 11, 1), time(9, 0), utc(2026, 11, 1, 14, 0)),
        # London: 01:00-02:00 does not exist on 29 March; 01:30 happens twice on 25 October.
        (LONDON, date(2026, 3, 29), time(1, 30), utc(2026, 3, 29, 1, 0)),
        (LONDON, date(2026, 3, 29), time(1, 0), utc(2026, 3, 29, 1, 0)),
        (LONDON, date(2026, 10, 25), time(1, 30), utc(2026, 10, 25, 0, 30)),
        (LONDON, date(2026, 10, 25), time(9, 0), utc(2026, 10, 25, 9, 0)),
    ],
)
def test_send_instant_is_dst_safe(zone: ZoneInfo, day: date, at: time, expected: datetime) -> None:
    assert local_instant(day=day, at=at, zone=zone) == expected


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        (NEW_YORK, date(2026, 3, 8), 23),
        (NEW_YORK, date(2026, 11, 1), 25),
        (LONDON, date(2026, 3, 29), 23),
        (LONDON, date(2026, 10, 25), 25),
        (LONDON, date(2026, 6, 1), 24),
    ],
)
def test_local_days_are_as_long_as_the_wall_clock_says(zone: ZoneInfo, day: date, hours: int) -> None:
    start, end = local_day_bounds(day=day, zone=zone)
    assert end - start == timedelta(hours=hours)
    assert start.astimezone(zone).replace(tzinfo=None) == datetime.combine(day, time(0))


# --------------------------------------------------------------------------- stepping the clock

#: (zone, the DST day, send time, {local date: expected UTC instant}); expectations written by hand.
DST_CASES = [
    pytest.param(
        "America/New_York",
        date(2026, 3, 8),
        "02:30",
        {
            date(2026, 3, 7): utc(2026, 3, 7, 7, 30),
            date(2026, 3, 8): utc(2026, 3, 8, 7, 0),
            date(2026, 3, 9): utc(2026, 3, 9, 6, 30),
        },
        id="new-york-spring-forward-gap",
    ),
    pytest.param(
        "America/New_York",
        date(2026, 3, 8),
        "09:00",
        {
            date(2026, 3, 7): utc(2026, 3, 7, 14, 0),
            date(2026, 3, 8): utc(2026, 3, 8, 13, 0),
            date(2026, 3, 9): utc(2026, 3, 9, 13, 0),
        },
        id="new-york-spring-forward-9am",
    ),
    pytest.param(
        "America/New_York",
        date(2026, 11, 1),
        "01:30",
        {
            date(2026, 10, 31): utc(2026, 10, 31, 5, 30),
            date(2026, 11, 1): utc(2026, 11, 1, 5, 30),
            date(2026, 11, 2): utc(2026, 11, 2, 6, 30),
        },
        id="new-york-fall-back-overlap",
    ),
    pytest.param(
        "America/New_York",
        date(2026, 11, 1),
        "09:00",
        {
            date(2026, 10, 31): utc(2026, 10, 31, 13, 0),
            date(2026, 11, 1): utc(2026, 11, 1, 14, 0),
            date(2026, 11, 2): utc(2026, 11, 2, 14, 0),
        },
        id="new-york-fall-back-9am",
    ),
    pytest.param(
        "Europe/London",
        date(2026, 3, 29),
        "01:30",
        {
            date(2026, 3, 28): utc(2026, 3, 28, 1, 30),
            date(2026, 3, 29): utc(2026, 3, 29, 1, 0),
            date(2026, 3, 30): utc(2026, 3, 30, 0, 30),
        },
        id="london-spring-forward-gap",
    ),
    pytest.param(
        "Europe/London",
        date(2026, 10, 25),
        "01:30",
        {
            date(2026, 10, 24): utc(2026, 10, 24, 0, 30),
            date(2026, 10, 25): utc(2026, 10, 25, 0, 30),
            date(2026, 10, 26): utc(2026, 10, 26, 1, 30),
        },
        id="london-fall-back-overlap",
    ),
    pytest.param(
        "Europe/London",
        date(2026, 10, 25),
        "09:00",
        {
            date(2026, 10, 24): utc(2026, 10, 24, 8, 0),
            date(2026, 10, 25): utc(2026, 10, 25, 9, 0),
            date(2026, 10, 26): utc(2026, 10, 26, 9, 0),
        },
        id="london-fall-back-9am",
    ),
]

STEP = timedelta(minutes=5)


def instants(start: datetime, end: datetime, extra: list[datetime]) -> list[datetime]:
    """Every STEP from start to end, plus each expected instant and the minute before it."""
    points = set(extra) | {e - timedelta(minutes=1) for e in extra}
    moment = start
    while moment <= end:
        points.add(moment)
        moment += STEP
    return sorted(points)


@pytest.mark.parametrize(("zone", "dst_day", "send_time", "expected"), DST_CASES)
async def test_one_digest_per_local_day_at_the_right_instant_across_dst(
    database_url: str,
    zone: str,
    dst_day: date,
    send_time: str,
    expected: dict[date, datetime],
) -> None:
    clock = FrozenClock()
    config = make_config(
        {"key": "cx", "name": "CX", "timezone": zone, "digest": {"time": send_time, "cutoff": "3h"}}
    )
    first_day, last_day = min(expected), max(expected)
    start = local_day_bounds(day=first_day, zone=ZoneInfo(zone))[0]
    end = local_day_bounds(day=last_day, zone=ZoneInfo(zone))[1] - timedelta(minutes=1)
    first_seen: dict[date, datetime] = {}
    async with running(database_url, config, clock) as runtime:
        for moment in instants(start, end, list(expected.values())):
            clock.now = moment
            for outcome in await tick(runtime, now=moment):
                if outcome.status == "sent":
                    assert outcome.local_date not in first_seen, f"second digest for {outcome.local_date}"
                    first_seen[outcome.local_date] = moment
        recorded = {r.local_date: r for r in await runs(runtime, "cx")}
    assert first_seen == expected
    for day, due in expected.items():
        run = recorded[day]
        assert (run.status, run.scheduled_for, run.claimed_at) == ("sent", due, due)
        assert "A quiet day" in (run.detail or "")
    # A bot that starts fresh records the days it could not have sent as missed, never posts them.
    older = [r for d, r in recorded.items() if d < first_day]
    assert older and all(r.status == "skipped" and "missed" in (r.detail or "") for r in older)


# --------------------------------------------------------------------------- downtime and cut-off

SUPPORT = {"key": "support", "name": "Support", "timezone": "Europe/London", "digest": {"time": "09:00"}}


def london(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=LONDON).astimezone(UTC)


async def today_run(runtime: Runtime, day: date) -> list[DigestRun]:
    return [r for r in await runs(runtime, "support") if r.local_date == day]


async def test_down_at_send_time_back_before_cutoff_posts_once(database_url: str) -> None:
    clock = FrozenClock(london(10, 8, 59))
    async with running(database_url, make_config(SUPPORT), clock) as runtime:
        await tick(runtime, now=london(10, 8, 59))
        assert await today_run(runtime, date(2026, 6, 10)) == []
        # Down from 09:00; back at 11:00, then ticking every minute again.
        sent = [
            o for m in range(0, 120) for o in await tick(runtime, now=london(10, 11) + timedelta(minutes=m))
        ]
        assert [(o.local_date, o.status) for o in sent] == [(date(2026, 6, 10), "sent")]
        (run,) = await today_run(runtime, date(2026, 6, 10))
    assert (run.status, run.scheduled_for, run.claimed_at) == ("sent", london(10, 9), london(10, 11))


async def test_back_after_cutoff_posts_nothing_and_records_skipped(database_url: str) -> None:
    clock = FrozenClock(london(10, 8, 59))
    async with running(database_url, make_config(SUPPORT), clock) as runtime:
        await tick(runtime, now=london(10, 8, 59))
        # The default cut-off is 3 h: 12:00. Back at 12:01.
        outcomes = [
            o for m in range(0, 30) for o in await tick(runtime, now=london(10, 12, 1) + timedelta(minutes=m))
        ]
        (run,) = await today_run(runtime, date(2026, 6, 10))
    assert [o.status for o in outcomes] == ["skipped"]
    assert run.status == "skipped"
    assert run.detail is not None and run.detail.startswith("missed: not sent between 2026-06-10 08:00 UTC")


async def test_exactly_at_the_cutoff_still_posts(database_url: str) -> None:
    async with running(database_url, make_config(SUPPORT), FrozenClock()) as runtime:
        await tick(runtime, now=london(10, 8, 59))
        outcomes = await tick(runtime, now=london(10, 12, 0))
    assert [o.status for o in outcomes] == ["sent"]


async def test_a_disabled_digest_is_neither_sent_nor_recorded(database_url: str) -> None:
    team: dict[str, Any] = {**SUPPORT, "digest": {"time": "09:00", "enabled": False}}
    async with running(database_url, make_config(team), FrozenClock()) as runtime:
        assert await tick(runtime, now=london(10, 10)) == []
        assert await runs(runtime) == []
