"""SLA deadlines in business hours, checked against examples worked out by hand (design.md §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cxbot.cases.sla import add_business_time, deadlines
from cxbot.config import BusinessHours, Config

BERLIN = ZoneInfo("Europe/Berlin")
LONDON = ZoneInfo("Europe/London")
OFFICE = BusinessHours(days=["mon", "tue", "wed", "thu", "fri"], start="09:00", end="17:30")


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)


@pytest.mark.parametrize(
    ("start", "duration", "due", "why"),
    [
        (
            local(BERLIN, 2026, 11, 6, 17, 0),
            "4h",
            local(BERLIN, 2026, 11, 9, 12, 30),
            "Fri 17:00-17:30 is 30 min; the other 3 h 30 min run from Mon 09:00",
        ),
        (
            local(BERLIN, 2026, 11, 6, 16, 0),
            "4h",
            local(BERLIN, 2026, 11, 9, 11, 30),
            "Fri 16:00-17:30 is 1 h 30 min; the other 2 h 30 min run from Mon 09:00",
        ),
        (
            local(BERLIN, 2026, 11, 7, 10, 0),
            "4h",
            local(BERLIN, 2026, 11, 9, 13, 0),
            "started on a Saturday: the clock waits for Mon 09:00",
        ),
        (
            local(BERLIN, 2026, 11, 9, 7, 0),
            "30m",
            local(BERLIN, 2026, 11, 9, 9, 30),
            "started before opening: counts from 09:00",
        ),
        (
            local(BERLIN, 2026, 11, 9, 10, 0),
            "5d",
            local(BERLIN, 2026, 11, 16, 10, 0),
            "days are working days: five of them from Mon 10:00 is the next Mon 10:00",
        ),
        (
            local(BERLIN, 2026, 11, 9, 10, 0),
            "1w",
            local(BERLIN, 2026, 11, 16, 10, 0),
            "a week is as many working days as the week has",
        ),
        (
            local(BERLIN, 2026, 11, 6, 17, 30),
            "8h30m",
            local(BERLIN, 2026, 11, 9, 17, 30),
            "started at closing time: a whole working day is Monday's",
        ),
    ],
)
def test_business_hours_examples(start: datetime, duration: str, due: datetime, why: str) -> None:
    assert add_business_time(start, duration, hours=OFFICE, zone=BERLIN) == due, why


def test_the_weekend_over_a_dst_change_is_still_counted_in_local_working_hours() -> None:
    # Berlin leaves summer time on Sunday 25 October 2026: Friday is UTC+2, Monday UTC+1.
    friday = datetime(2026, 10, 23, 15, 0, tzinfo=UTC)  # 17:00 CEST
    due = add_business_time(friday, "4h", hours=OFFICE, zone=BERLIN)
    assert due == local(BERLIN, 2026, 10, 26, 12, 30) == datetime(2026, 10, 26, 11, 30, tzinfo=UTC)
    # And in spring (29 March 2026) the other way round: Friday UTC+1, Monday UTC+2.
    friday = datetime(2026, 3, 27, 16, 0, tzinfo=UTC)  # 17:00 CET
    due = add_business_time(friday, "4h", hours=OFFICE, zone=BERLIN)
    assert due == local(BERLIN, 2026, 3, 30, 12, 30) == datetime(2026, 3, 30, 10, 30, tzinfo=UTC)


def test_a_window_spanning_the_dst_change_is_an_hour_shorter_in_real_time() -> None:
    # London's 00:00-06:00 window on Sunday 29 March 2026 lasts five real hours (01:00 GMT → 02:00 BST).
    night = BusinessHours(days=["sun"], start="00:00", end="06:00")
    start = local(LONDON, 2026, 3, 29, 0, 0)
    assert add_business_time(start, "5h", hours=night, zone=LONDON) == local(LONDON, 2026, 3, 29, 6, 0)
    # A sixth hour no longer fits that night: it is the first hour of next Sunday's window.
    assert add_business_time(start, "6h", hours=night, zone=LONDON) == local(LONDON, 2026, 4, 5, 1, 0)


def test_an_overnight_window_runs_past_midnight() -> None:
    night = BusinessHours(days=["mon"], start="22:00", end="06:00")
    start = local(LONDON, 2026, 11, 9, 23, 0)
    assert add_business_time(start, "2h", hours=night, zone=LONDON) == local(LONDON, 2026, 11, 10, 1, 0)


def test_deadlines_use_the_team_zone_and_business_hours_only_when_configured(example_config: Config) -> None:
    # billing runs `office-hours` (4h / 5d, Mon-Fri 09:00-17:30) in Europe/Berlin.
    friday_utc = datetime(2026, 11, 6, 16, 0, tzinfo=UTC)  # 17:00 in Berlin
    ack, resolve = deadlines(example_config, team="billing", start=friday_utc)
    assert ack == local(BERLIN, 2026, 11, 9, 12, 30)  # Monday 12:30 local
    assert resolve == local(BERLIN, 2026, 11, 13, 17, 0)  # five working days on: next Friday 17:00
    # support runs `urgent` (30m / 1d) around the clock.
    ack, resolve = deadlines(example_config, team="support", start=friday_utc)
    assert (ack, resolve) == (friday_utc + timedelta(minutes=30), friday_utc + timedelta(days=1))
