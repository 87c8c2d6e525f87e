"""When a digest is due: local days and send instants, DST-safe (design.md §8).

Pure functions over `zoneinfo`. A local wall time that does not exist (inside a spring-forward gap)
resolves to the first valid instant after the gap; one that happens twice (inside a fall-back
overlap) resolves to its first occurrence. Day boundaries use the same rule, so a local day is
23, 24 or 25 hours long exactly as the clocks on the wall say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    """The naive local wall time of an aware instant, for comparing with requested wall times."""
    return moment.astimezone(zone).replace(tzinfo=None)


def local_instant(*, day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant at which local wall time `at` on `day` occurs (gap: first valid instant after)."""
    wanted = datetime.combine(day, at)
    first = wanted.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wanted:
        return first  # exists; in an overlap fold=0 is the first occurrence
    # A gap: fold=0 reads the wall time with the offset before the jump and lands after the gap,
    # fold=1 with the offset after it and lands before. The jump lies between; find it to the second.
    before = int(wanted.replace(tzinfo=zone, fold=1).timestamp())  # wall time before the gap
    after = int(first.timestamp())  # wall time after the gap
    while after - before > 1:  # invariant: wall(before) < wanted <= wall(after)
        middle = (before + after) // 2
        if _wall(datetime.fromtimestamp(middle, UTC), zone) >= wanted:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


def local_day_bounds(*, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of one local calendar day: 23, 24 or 25 hours around DST changes."""
    return (
        local_instant(day=day, at=time(0), zone=zone),
        local_instant(day=day + timedelta(days=1), at=time(0), zone=zone),
    )


def local_date(*, moment: datetime, zone: ZoneInfo) -> date:
    """The calendar date on the wall in `zone` at an aware instant."""
    return moment.astimezone(zone).date()


def parse_clock(text: str) -> time:
    """`"09:00"` as a time of day (the config has already validated it)."""
    return time.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Slot:
    """One digest's place in time: the local date it is posted on, the day it reports, when it is due."""

    scope: str
    local_date: date  # the day the digest is posted on: the `digest_runs` key
    report_date: date  # the local day it describes: the day before `local_date`
    due_at: datetime  # UTC send instant
    cutoff_at: datetime  # after this a digest nobody sent is recorded as skipped, not posted late


def slot_for(*, scope: str, posted_on: date, send_time: time, zone: ZoneInfo, cutoff: timedelta) -> Slot:
    """The slot of the digest posted on local date `posted_on` at local `send_time`."""
    due = local_instant(day=posted_on, at=send_time, zone=zone)
    return Slot(
        scope=scope,
        local_date=posted_on,
        report_date=posted_on - timedelta(days=1),
        due_at=due,
        cutoff_at=due + cutoff,
    )


def recent_slots(
    *, scope: str, now: datetime, send_time: time, zone: ZoneInfo, cutoff: timedelta, lookback_days: int
) -> list[Slot]:
    """Slots due by `now`, from `lookback_days` local days back to today, oldest first."""
    today = local_date(moment=now, zone=zone)
    slots = [
        slot_for(
            scope=scope, posted_on=today - timedelta(days=back), send_time=send_time, zone=zone, cutoff=cutoff
        )
        for back in range(lookback_days, -1, -1)
    ]
    return [slot for slot in slots if slot.due_at <= now]
