"""SQLite called inline, in SQLAlchemy's greenlet on the event loop's thread (issue #15).

With aiosqlite every driver call (execute, fetch, commit) goes to a thread of its own and back: a
queue put, a thread switch, `call_soon_threadsafe`, a wake-up of the loop. A statement on a small
table takes SQLite tens of microseconds; the round trip costs more than that, and the transaction
holding cxbot's one SQLite connection waits for the loop between its statements, behind every other
task that is ready. Under the latency bench's load (40 commands/s + 50 feedback items/s) the
connection was held mostly by transactions waiting their turn on the loop: replies took p99 9.7 s,
with the loop idle a fifth of the time (docs/performance.md). Called inline, a transaction's
statements run one after another without giving the loop away, so the connection is held only for
the work itself.

The cost: a statement blocks the loop while it runs. That is why bulk jobs keep aiosqlite
(`create_engine(..., sqlite_in_thread=True)`): the CSV import converts the next batch while SQLite
writes the last one in its thread. And a write that waits for another process's lock waits on the
loop (up to the busy timeout): a SQLite database is meant for one serving process.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event, pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_only  # `await_` from 2.1 on; this name works on 2.0 too


class InlineCursor(sqlite3.Cursor):
    """sqlite3's cursor, with the one call AsyncSession makes on an async driver's cursor."""

    async def _async_soft_close(self) -> None:
        """Nothing to let go of: sqlite3 reads rows on the calling thread as they are fetched."""


class InlineConnection(sqlite3.Connection):
    """sqlite3's connection, handing out :class:`InlineCursor`."""

    def cursor(self, factory: Any = InlineCursor) -> Any:
        return super().cursor(factory)


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """The plain sqlite3 dialect, declared async so that AsyncEngine and AsyncSession accept it."""

    driver = "cxbot_inline"
    is_async = True
    supports_statement_cache = True

    @classmethod
    def get_pool_class(cls, url: Any) -> type[pool.Pool]:
        # An asyncio-aware queue: a task waiting for the connection awaits instead of blocking.
        return pool.AsyncAdaptedQueuePool


async def _nothing() -> None:
    """An awaitable that completes at once."""


def _await_once(*_args: Any) -> None:
    """AsyncConnection.execute (and exec_driver_sql) refuse a driver that never awaited, a guard
    against a sync driver used by mistake; this one is sync on purpose, so each statement awaits
    something that is already done: two greenlet switches, no trip through the event loop."""
    await_only(_nothing())


def inline_engine(path: str, **kwargs: Any) -> AsyncEngine:
    """An async engine on the SQLite file at `path` whose sqlite3 calls run inline (see the module)."""
    # Registering is idempotent (a name in a dict); done here rather than at import time.
    registry.register(f"sqlite.{InlineSQLiteDialect.driver}", __name__, InlineSQLiteDialect.__name__)
    engine = create_async_engine(
        f"sqlite+{InlineSQLiteDialect.driver}:///{path}",
        creator=lambda: sqlite3.connect(path, factory=InlineConnection, check_same_thread=False),
        **kwargs,
    )
    event.listen(engine.sync_engine, "before_cursor_execute", _await_once)
    return engine
