"""SLA deadlines of a case from its team's policy (design.md §6), in business hours when configured.

Pure functions of the configuration and an instant. With `business_hours` the clocks only run inside
the team's working windows (its `days`, from `start` to `end`, in the team's IANA time zone), and
time is measured in real elapsed time, so a window that spans a DST change is an hour longer or
shorter, as the people working it experience it. Two readings of a duration under business hours:

- the `h`, `m`, `s` parts (and a plain number of seconds) count working time: `4h` is four working hours;
- the `d` and `w` parts count working days (one day = one window's length, one week = `len(days)` of
  them): `5d` on Mon-Fri 09:00-17:30 is five working days, not 120 working hours.

Without business hours every duration is plain wall-clock time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cxbot.config import WEEKDAYS, BusinessHours, Config, Duration, SlaPolicy, parse_duration

_DURATION_PART = re.compile(r"(\d+)\s*([wdhms])")
_SECONDS = {"h": 3600, "m": 60, "s": 1}
#: A clock that finds no working time for this long is misconfigured; stop rather than loop forever.
_MAX_DAYS_SCANNED = 366 * 20


def deadlines(config: Config, *, team: str, start: datetime) -> tuple[datetime, datetime]:
    """When the case must be acknowledged and resolved, counted from `start`."""
    return (
        add_clock(config, team=team, start=start, duration=policy_of(config, team).acknowledge),
        add_clock(config, team=team, start=start, duration=policy_of(config, team).resolve),
    )


def policy_of(config: Config, team: str) -> SlaPolicy:
    """The SLA policy a team runs under."""
    return config.sla_policies[config.team(team).sla_policy]


def add_clock(config: Config, *, team: str, start: datetime, duration: Duration) -> datetime:
    """`start` plus `duration` on the team's SLA clock (business time if its policy has hours)."""
    hours = policy_of(config, team).business_hours
    if hours is None:
        return start + parse_duration(duration)
    return add_business_time(start, duration, hours=hours, zone=ZoneInfo(config.team(team).timezone))


def add_business_time(
    start: datetime, duration: Duration, *, hours: BusinessHours, zone: ZoneInfo
) -> datetime:
    """The instant at which `duration` of working time has passed since `start` (aware, in UTC)."""
    opens, closes = time.fromisoformat(hours.start), time.fromisoformat(hours.end)
    window = _window_length(opens, closes)
    days = [WEEKDAYS.index(d) for d in hours.days]
    if not days or window <= timedelta(0):
        return start + parse_duration(duration)  # no working time at all: fall back to the wall clock
    remaining = _business_duration(duration, window=window, days_per_week=len(set(days)))
    cursor = start.astimezone(UTC)
    day = cursor.astimezone(zone).date() - timedelta(days=1)  # an overnight window may have opened yesterday
    for _ in range(_MAX_DAYS_SCANNED):
        if day.weekday() in days:
            window_start, window_end = _window(day, opens, closes, zone)
            begin = max(window_start, cursor)
            if begin < window_end:
                available = window_end - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
                cursor = window_end
        day += timedelta(days=1)
    raise ValueError("business hours leave no working time to count")


def _window_length(opens: time, closes: time) -> timedelta:
    """A working day's nominal length; `end` at or before `start` means the window runs past midnight."""
    length = datetime.combine(date.min, closes) - datetime.combine(date.min, opens)
    return length if length > timedelta(0) else length + timedelta(days=1)


def _window(day: date, opens: time, closes: time, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The working window that opens on local `day`, as UTC instants (DST-correct)."""
    end_day = day if closes > opens else day + timedelta(days=1)
    return (
        datetime.combine(day, opens, tzinfo=zone).astimezone(UTC),
        datetime.combine(end_day, closes, tzinfo=zone).astimezone(UTC),
    )


def _business_duration(duration: Duration, *, window: timedelta, days_per_week: int) -> timedelta:
    """Working time for a duration: `d`/`w` parts become working days of `window` length each."""
    if not isinstance(duration, str):
        return parse_duration(duration)
    parse_duration(duration)  # the same validation and error message as everywhere else
    total = timedelta(0)
    for amount, unit in _DURATION_PART.findall(duration.strip().lower().replace(" ", "")):
        if unit == "w":
            total += window * days_per_week * int(amount)
        elif unit == "d":
            total += window * int(amount)
        else:
            total += timedelta(seconds=int(amount) * _SECONDS[unit])
    return total
