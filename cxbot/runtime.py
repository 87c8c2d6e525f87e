"""Everything a running cxbot shares: settings, configuration, database and clock.

Built once by the command line (or a test) and passed explicitly to what needs it, so nothing is
created at import time and a test can run several independent bots in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cxbot.background import BackgroundWork
from cxbot.config import Config
from cxbot.db import create_engine, session_factory, transaction
from cxbot.directory import sync_directory
from cxbot.observability import Counters
from cxbot.settings import Settings


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    config: Config
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime] = system_clock
    counters: Counters = field(default_factory=Counters)
    #: Work requests handed off so they could answer at once (Slack's acknowledgement); drained on close.
    background: BackgroundWork = field(default_factory=BackgroundWork)
    #: Set when a transaction that queued outbox rows commits: the worker delivers them at once.
    outbox_queued: asyncio.Event = field(default_factory=asyncio.Event)
    #: Called on close, after the background work: what platform packages opened (HTTP clients).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        *,
        settings: Settings,
        config: Config,
        clock: Callable[[], datetime] = system_clock,
        sqlite_in_thread: bool = False,
    ) -> Runtime:
        """`sqlite_in_thread`: SQLite through aiosqlite's thread, for a bulk job (cxbot.db.create_engine)."""
        engine = create_engine(settings.database_url, sqlite_in_thread=sqlite_in_thread)
        queued = asyncio.Event()
        return cls(
            settings=settings,
            config=config,
            engine=engine,
            sessions=session_factory(engine, outbox_wakeup=queued),
            clock=clock,
            outbox_queued=queued,
        )

    async def sync_directory(self) -> None:
        """Write the configured teams and touchpoints to the database (idempotent)."""
        async with transaction(self.sessions) as session:
            await sync_directory(session, config=self.config)

    async def close(self) -> None:
        await self.background.drain()
        while self.closers:
            await self.closers.pop()()
        await self.engine.dispose()
