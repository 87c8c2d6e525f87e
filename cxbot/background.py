"""Work a request started and answered before it finished: bounded, measured, and drained on stop.

Slack waits at most 3 seconds for an acknowledgement (design.md §10). A slash command or a click is
answered at once, and its transaction and `response_url` reply run here, after the HTTP answer.
`drain()` waits for everything started so far: tests call it after each request, and shutdown calls
it before the database is closed.

Backpressure (issue #15): at most `limit` pieces run at once and at most `max_waiting` wait, in
order. Work that has waited `busy_after` seconds gets its `busy` callback once (the caller's "busy,
your command is queued" reply) and still runs in its turn; work offered when the queue is full is
refused (`start` returns False) so the caller can say so, rather than growing memory without end.
What waits and how long it took are measured for `/metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from cxbot.observability import Histogram

log = logging.getLogger("cxbot.background")

#: At most this many pieces of work run at once; the rest wait here, in order, rather than on the
#: database pool (whose 30-second timeout would turn a backlog into failures).
DEFAULT_LIMIT = 8
#: At most this many wait; more is refused. At the ~100 commands/s this machine runs, 20 s of work.
DEFAULT_MAX_WAITING = 2000
#: Work still waiting after this long tells its user it is queued (a user notices a silent second).
DEFAULT_BUSY_AFTER = 1.5

Busy = Callable[[], Awaitable[Any]]


class BackgroundWork:
    """A set of running tasks, each one a request's work; failures are logged, never lost silently."""

    def __init__(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        max_waiting: int = DEFAULT_MAX_WAITING,
        busy_after: float = DEFAULT_BUSY_AFTER,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None
        self.max_waiting = max_waiting
        self.busy_after = busy_after
        self._monotonic = monotonic
        #: Pieces waiting for a slot now, and running now.
        self.waiting = 0
        self.running = 0
        #: By the work's name: refused because the queue was full, and told "busy, queued".
        self.refused: Counter[str] = Counter()
        self.told_busy: Counter[str] = Counter()
        self.waited = Histogram("Time background work waited for a slot, by work.")
        #: What the user waits for after the acknowledgement: handed off until done (reply sent).
        self.took = Histogram("Time from a request handing its work off to that work finishing, by work.")

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, Any], *, name: str, busy: Busy | None = None) -> bool:
        """Run `work` after the caller returns; keep a reference so it is neither collected nor lost.

        Returns False (and drops `work` unrun) when `max_waiting` pieces already wait. `busy` is
        awaited once if the work waits `busy_after` seconds, before the work itself runs.
        """
        if self.waiting >= self.max_waiting:
            work.close()
            self.refused[name] += 1
            log.warning("background queue full (%d waiting): refused %s", self.waiting, name)
            return False
        self.waiting += 1
        self._track(self._run(work, name, busy, self._monotonic()), name)
        return True

    def _track(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, work: Coroutine[Any, Any, Any], name: str, busy: Busy | None, since: float) -> None:
        if self._slots is None:  # made in the running loop, on first use
            self._slots = asyncio.Semaphore(self._limit)
        told: list[asyncio.Task[None]] = []
        timer = None
        if busy is not None:
            # A timer, not a timeout on the wait: the work keeps its place in the queue.
            timer = asyncio.get_running_loop().call_later(
                self.busy_after, lambda: told.append(self._track(self._tell_busy(busy, name), name))
            )
        try:
            try:
                await self._slots.acquire()
            finally:
                self.waiting -= 1
                if timer is not None:
                    timer.cancel()
            try:
                self.running += 1
                self.waited.observe(self._monotonic() - since, work=name)
                if told:  # the "queued" reply goes out before the answer, never after it
                    await asyncio.gather(*told)
                await work
            finally:
                self.running -= 1
                self._slots.release()
        except Exception:
            log.exception("background work %s failed", name)
        finally:
            work.close()  # never awaited if the wait was cancelled: no "never awaited" warning
            self.took.observe(self._monotonic() - since, work=name)

    async def _tell_busy(self, busy: Busy, name: str) -> None:
        self.told_busy[name] += 1
        try:
            await busy()
        except Exception:
            log.exception("could not tell the user that %s is queued", name)

    async def drain(self) -> None:
        """Wait until every piece of work started so far, and any it started in turn, has finished."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)
