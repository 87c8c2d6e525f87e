"""Clocks the core can run on: the system clock, or a manual one that only moves when told to.

:class:`cxbot.runtime.Runtime` takes any callable returning an aware UTC datetime. The console demo
uses :class:`ManualClock` so a newcomer can jump a day ahead (`:advance 1d`) and watch the digests
post and the escalations fire that the real scheduler would produce over that time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class ManualClock:
    """A clock that stands still until `advance` or `set` moves it (never backwards)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta`; time in the core only runs forwards, so negative deltas are refused."""
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> datetime:
        """Jump to `moment`, which must not be in this clock's past."""
        moment = moment.astimezone(UTC)
        if moment < self._now:
            raise ValueError("the clock only moves forward")
        self._now = moment
        return self._now
