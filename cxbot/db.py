"""Engines, sessions and schema upgrades for SQLite (embedded default) and PostgreSQL.

Callers pass any ordinary URL (`sqlite:///cxbot.db`, `postgresql://...`); the async driver is chosen
here so the request path stays asynchronous end to end (design.md §10).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from cxbot.sqlite_inline import inline_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Pauses before a transaction is run again because the database went away under it: 3.85 s in
#: all, longer than a PostgreSQL fast restart or a failover of a managed database usually takes.
RECONNECT_PAUSES = (0.1, 0.25, 0.5, 1.0, 2.0)
#: SQLSTATE classes of a server that is gone or going: connection exceptions (08) and operator
#: intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
_GONE_SQLSTATES = ("08", "57P")

log = logging.getLogger(__name__)
T = TypeVar("T")


def async_url(url: str) -> str:
    """Pick the async driver for a database URL (aiosqlite for SQLite, asyncpg for PostgreSQL)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"DATABASE_URL: unsupported database {backend!r} (use sqlite or postgresql)")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; the busy timeout makes a second writer wait
    # instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 64 MiB of page cache (the default is 2 MiB): the feedback table carries five indexes, and a
    # bulk import touches all of them; measured 10-25% less CPU per import (docs/performance.md).
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: Connections a PostgreSQL engine keeps open, and how many more it may open for a burst.
POSTGRES_POOL_SIZE = 16
POSTGRES_MAX_OVERFLOW = 8


def create_engine(url: str, *, sqlite_in_thread: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine with SQLite's pragmas set on every new connection.

    A SQLite file is called inline on the event loop's thread (cxbot.sqlite_inline: measured 19 → 12
    ms of CPU per request and reply p99 9.7 s → 0.2 s under load); `sqlite_in_thread` keeps
    aiosqlite's thread instead, for a bulk job whose Python work overlaps SQLite's (the CSV import).
    """
    parsed = make_url(url)
    file_database = parsed.database not in (None, "", ":memory:")
    if parsed.get_backend_name() == "sqlite" and file_database:
        # One connection: SQLite has one writer anyway, and transactions queued here wait in order,
        # where several connections wait in SQLite's busy handler, which sleeps up to 100 ms a try:
        # Slack commands at concurrency 32 took up to 7.6 s instead of 0.7 s (docs/performance.md).
        kwargs.setdefault("pool_size", 1)
        kwargs.setdefault("max_overflow", 0)
    elif parsed.get_backend_name() in ("postgresql", "postgres"):
        # Keep as many connections as a busy replica uses at once (8 background commands, 8 outbox
        # lanes, requests): with SQLAlchemy's default of 5 kept, the rest were opened and closed
        # again, about 15 new PostgreSQL backends a second at 40 commands/s, each starting with empty
        # catalogue and statement caches (docs/performance.md, issue #15).
        kwargs.setdefault("pool_size", POSTGRES_POOL_SIZE)
        kwargs.setdefault("max_overflow", POSTGRES_MAX_OVERFLOW)
        if "prepared_statement_cache_size" not in parsed.query:
            # asyncpg prepares each statement on first use per connection; 100 (the default) was
            # fewer than the statements one busy replica runs, so prepares kept repeating.
            url = parsed.update_query_dict({"prepared_statement_cache_size": "500"}).render_as_string(
                hide_password=False
            )
    if parsed.get_backend_name() == "sqlite" and file_database and not sqlite_in_thread:
        engine = inline_engine(parsed.database, **kwargs)
    else:
        engine = create_async_engine(async_url(url), **kwargs)
    if engine.dialect.name == "sqlite":
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


#: `Session.info` keys: a session that queued outbox rows says so; its factory's event is set on commit.
OUTBOX_QUEUED = "cxbot_outbox_queued"
OUTBOX_WAKEUP = "cxbot_outbox_wakeup"


def session_factory(
    engine: AsyncEngine, *, outbox_wakeup: asyncio.Event | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine`; with `outbox_wakeup`, set once a transaction that queued outbox rows commits.

    The outbox worker waits on that event, so a new row is delivered at once instead of at the next
    poll (rows queued by another replica are still found by the poll).
    """
    if outbox_wakeup is None:
        return async_sessionmaker(engine, expire_on_commit=False)
    # A class of its own per factory: the listener sees this runtime's sessions only.
    sync_class = type("WakingSession", (Session,), {})
    event.listen(sync_class, "after_commit", _wake_outbox)
    return async_sessionmaker(
        engine, expire_on_commit=False, sync_session_class=sync_class, info={OUTBOX_WAKEUP: outbox_wakeup}
    )


def mark_outbox_queued(session: AsyncSession) -> None:
    """Called by whatever inserts outbox rows: wake the worker when this transaction commits."""
    session.info[OUTBOX_QUEUED] = True


def _wake_outbox(session: Session) -> None:
    if session.info.pop(OUTBOX_QUEUED, False):
        wakeup = session.info.get(OUTBOX_WAKEUP)
        if wakeup is not None:
            wakeup.set()


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction per interaction or job: commit on success, roll back on any error."""
    async with sessions() as session, session.begin():
        yield session


def database_went_away(error: BaseException) -> bool:
    """Whether `error` says the database server was unreachable or dropped the connection (a
    restart, a failover), as opposed to refusing the statement: only then is running it again right."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or ""
        return sqlstate.startswith(_GONE_SQLSTATES) or isinstance(error.orig, OSError)
    return isinstance(error, ConnectionError | TimeoutError)  # raised by the driver's connect


async def retrying(work: Callable[[], Awaitable[T]], *, pauses: tuple[float, ...] = RECONNECT_PAUSES) -> T:
    """Run `work` (one whole transaction) again while the database is away, after each pause.

    A restart then costs the caller a few hundred milliseconds instead of a 500 (bench/soak.py
    restarts PostgreSQL mid-load). For work that is safe to run twice: its transaction rolled back
    with the connection, or it commits by keys that make a second run a no-op (feedback's source and
    external id, a command's event id); the rare commit whose answer was lost then reads as done."""
    for pause in (*pauses, None):
        try:
            return await work()
        except Exception as error:
            if pause is None or not database_went_away(error):
                raise
            log.warning("the database went away (%s); trying again in %s s", type(error).__name__, pause)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


@asynccontextmanager
async def custom_plans(session: AsyncSession) -> AsyncIterator[None]:
    """PostgreSQL: plan the statements run inside for their own parameters, and only those.

    After five runs of a prepared statement PostgreSQL may switch to a generic plan. On a fresh,
    unanalysed table (one a bulk import is filling) that plan of a key probe scans every row of the
    source: 250 ms instead of 10. Only the probes need this. The setting also governs the cached
    plans of foreign-key checks, so left on for the rest of the transaction it had every inserted
    row's checks planned afresh, which more than doubled their cost (docs/performance.md, Ingest).
    On the way out the setting goes back to the session's default (nothing in cxbot sets it for a
    session); after an error nothing is sent, as the transaction is lost anyway.
    """
    dialect = session.bind.dialect
    if dialect.name != "postgresql" or (dialect.server_version_info or (0,)) < (12,):
        yield
        return
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    yield
    await session.execute(text("SET LOCAL plan_cache_mode TO DEFAULT"))


def alembic_config(url: str) -> Any:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = url
    return config


def upgrade_sync(url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision` (blocking; for the command line and start-up)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Run migrations from async code without blocking the event loop's thread."""
    await asyncio.to_thread(upgrade_sync, url, revision)


def insert_for(session: AsyncSession | Any, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on both SQLite and PostgreSQL (the two share the syntax)."""
    dialect = session.bind.dialect.name if isinstance(session, AsyncSession) else session.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
