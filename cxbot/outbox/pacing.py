"""Pacing the outbox per destination (design.md §9, issue #15): what each channel or conversation can take.

Chat platforms limit posts per destination, not per app: about one message a second per channel
(short bursts allowed), or a few per second per conversation. A worker that posts as fast as it
can earns 429s, and a 429 that pauses the whole platform makes every channel wait for the one that
was busy. So each (platform, destination) has its own sliding-window pace (and the worker holds
only the destination that got a Retry-After, or the platform when the error says the limit was
the platform's, measured from when that answer arrived).

A send *reserves* its slot before it waits, so sends to one destination keep the order in which
they asked, and a send that would wait too long is not reserved at all: the worker puts its row
back with the time it may go, and the round moves on.

A destination also takes one call at a time from a process (`Pacer.turn`): the next call to a
channel leaves only once the answer to the last one is in, so a 429 is always known before anything
else is sent there. With calls to one channel in flight side by side, those already sent when the
429 came reach Slack inside its Retry-After (bench/soak.py saw them 0.00-0.03 s after the 429, and
once 1.02 s after it, the two calls held up on the way).

The pace is the process's own: replicas do not share it (each paces what it sends; a 429 still
reaches the database as a hold on the destination, which every replica obeys).
Times here are monotonic seconds from an injectable clock, so tests can pace without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Pace:
    """At most `count` sends in any `seconds`, for every (count, seconds) window at once."""

    windows: tuple[tuple[int, float], ...]

    def __post_init__(self) -> None:
        if not self.windows or any(count < 1 or seconds <= 0 for count, seconds in self.windows):
            raise ValueError(f"a pace needs windows of at least one send per positive time: {self.windows}")

    @property
    def longest(self) -> tuple[int, float]:
        return max(self.windows, key=lambda window: window[1])


CHANNEL_PACE: Final = Pace(((4, 1.0), (10, 10.0)))
"""A chat channel: about one message a second sustained (10 in any 10 s), bursts of up to 4 in a
second. Slack documents "1 message per second per channel, short bursts allowed" for
chat.postMessage without a burst size; this is the default for a notifier that names no pace."""

CONVERSATION_PACE: Final = Pace(((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0)))
"""A Microsoft Teams conversation: the Bot Framework's per-bot, per-conversation limits for sending
to a conversation (7 per second, 8 per 2 s, 60 per 30 s, 1,800 per hour), from Microsoft's "Rate
limiting for bots" page. A Teams notifier names it as its `pace`."""

APP_PACE: Final = Pace(((50, 1.0),))
"""All of a Microsoft Teams bot's sends together: 50 requests a second per app per tenant, the Bot
Framework's global limit beside the per-conversation ones (one tenant per installation here). A Teams
notifier names it as its `app_pace`: a fan-out over many conversations would pass it otherwise."""

#: The lane of a platform's app-wide pace (no destination is named so: ids have no spaces).
APP_LANE: Final = "all conversations"

#: A send that would wait longer than this is put back rather than held in a round. Short, because
#: a round ends with its slowest lane: one channel's 2-second wait held the next claim, and so
#: every other channel's new cards, for those 2 seconds (measured at 40 commands/s over 100
#: channels, docs/performance.md). Put back, the row is claimed again once its slot is this near.
MAX_WAIT_SECONDS: Final = 0.25


class Pacer:
    """Per-destination sliding windows and holds, for one worker process."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self._lanes: dict[tuple[str, str], deque[float]] = {}
        #: The call in flight to each destination, and how many calls wait for it (dropped at none).
        self._turns: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, platform: str, destination: str | None) -> AsyncIterator[Callable[[], None]]:
        """Wait until no other call to `destination` is in flight from here, then hold it.

        Yields `done`, to let the next call go before the block ends (once this call's answer and
        any hold it brought are known). A destination of None is not a channel: no turn is taken.
        """
        if destination is None:
            yield lambda: None
            return
        key = (platform, destination)
        lock, users = self._turns.get(key, (asyncio.Lock(), 0))
        self._turns[key] = (lock, users + 1)
        held = False

        def done() -> None:
            nonlocal held
            if held:
                held = False
                lock.release()

        try:
            await lock.acquire()
            held = True
            yield done
        finally:
            done()
            lock, users = self._turns[key]
            if users > 1:
                self._turns[key] = (lock, users - 1)
            else:
                del self._turns[key]

    def waiting(self, platform: str, destination: str) -> int:
        """Calls to `destination` in flight or waiting for their turn."""
        return self._turns.get((platform, destination), (None, 0))[1]

    def reserve(
        self,
        platform: str,
        destination: str | None,
        pace: Pace | None,
        *,
        max_wait: float,
        app_pace: Pace | None = None,
    ) -> float:
        """Seconds until a send to `destination` may go; reserved only if that is at most `max_wait`.

        The send fits both its destination's `pace` and, if given, the platform's `app_pace` (every
        destination together); it is reserved in both or in neither. A destination of None or a
        pace of None is not paced by destination. Holds (Retry-After) are the worker's: they live in
        the database (`outbox_holds`), so every replica obeys them.
        """
        lanes = []
        if destination is not None and pace is not None:
            lanes.append(((platform, destination), pace))
        if app_pace is not None:
            lanes.append(((platform, APP_LANE), app_pace))
        if not lanes:
            return 0.0
        now = self.monotonic()
        start = now
        logs = []
        for key, lane_pace in lanes:
            sent = self._lanes.setdefault(key, deque())
            while sent and sent[0] <= now - lane_pace.longest[1]:
                sent.popleft()
            start = max(start, *(self._free_at(sent, count, seconds) for count, seconds in lane_pace.windows))
            logs.append(sent)
        wait = start - now
        if wait <= max_wait:
            for sent in logs:  # reservations only move forward in time, so each log stays sorted
                sent.append(start)
        return wait

    def saturated(self, platform: str, pace: Pace | None, *, beyond: float) -> dict[str, float]:
        """Destinations of `platform` whose next slot is more than `beyond` seconds off, with the wait."""
        if pace is None:
            return {}
        now = self.monotonic()
        found: dict[str, float] = {}
        for (lane_platform, destination), sent in self._lanes.items():
            if lane_platform != platform or destination == APP_LANE or not sent:
                continue
            wait = max(self._free_at(sent, count, seconds) for count, seconds in pace.windows) - now
            if wait > beyond:
                found[str(destination)] = wait
        return found

    @staticmethod
    def _free_at(sent: deque[float], count: int, seconds: float) -> float:
        """When one more send fits in this window: `count` sends back, plus the window."""
        if len(sent) < count:
            return 0.0
        return sent[-count] + seconds

    def forget_idle(self) -> None:
        """Drop destinations with nothing in their windows and no hold, so memory follows activity."""
        now = self.monotonic()
        for key, sent in list(self._lanes.items()):
            if not sent or sent[-1] <= now - 3600.0:
                del self._lanes[key]
