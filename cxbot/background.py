"""Work a request started and answered before it finished: tracked, so a graceful stop loses none of it.

Slack waits at most 3 seconds for an acknowledgement (design.md §10). A slash command or a click is
answered at once, and its transaction and `response_url` reply run here, after the HTTP answer.
`drain()` waits for everything started so far: tests call it after each request, and shutdown calls
it before the database is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("cxbot.background")

#: At most this many pieces of work run at once; the rest wait here, in order, rather than on the
#: database pool (whose 30-second timeout would turn a backlog into failures).
DEFAULT_LIMIT = 8


class BackgroundWork:
    """A set of running tasks, each one a request's work; failures are logged, never lost silently."""

    def __init__(self, *, limit: int = DEFAULT_LIMIT) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, Any], *, name: str) -> None:
        """Run `work` after the caller returns; keep a reference so it is neither collected nor lost."""
        task = asyncio.get_running_loop().create_task(self._run(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        if self._slots is None:  # made in the running loop, on first use
            self._slots = asyncio.Semaphore(self._limit)
        try:
            async with self._slots:
                await work
        except Exception:
            log.exception("background work %s failed", name)

    async def drain(self) -> None:
        """Wait until every piece of work started so far, and any it started in turn, has finished."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)
