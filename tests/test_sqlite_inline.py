"""SQLite called inline (cxbot.sqlite_inline): a transaction keeps the loop only for its own work.

The property that made replies fast under load (issue #15): the one SQLite connection is not held
while its transaction waits for the event loop between statements, so a transaction of many
statements finishes without other tasks running in the middle of it. Bulk jobs keep aiosqlite's
thread (`sqlite_in_thread=True`), where the loop stays free while SQLite works.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from cxbot.db import create_engine, session_factory, transaction

STATEMENTS = 50


async def _loop_turns_during_transaction(path: Path, *, sqlite_in_thread: bool) -> tuple[int, list[int]]:
    """Loop turns another task saw while one transaction ran `STATEMENTS` statements, and what it read."""
    engine = create_engine(f"sqlite:///{path}", sqlite_in_thread=sqlite_in_thread)
    sessions = session_factory(engine)
    turns = 0
    stop = asyncio.Event()

    async def count_turns() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    try:
        async with transaction(sessions) as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS numbers (n INTEGER)"))
        counter = asyncio.create_task(count_turns())
        await asyncio.sleep(0)
        before = turns
        async with transaction(sessions) as session:
            for n in range(STATEMENTS):
                await session.execute(text("INSERT INTO numbers (n) VALUES (:n)"), {"n": n})
            read = list((await session.execute(text("SELECT n FROM numbers ORDER BY n"))).scalars())
        during = turns - before
        stop.set()
        await counter
        return during, read
    finally:
        await engine.dispose()


async def test_a_serving_transaction_runs_its_statements_without_giving_the_loop_away(tmp_path: Path) -> None:
    during, read = await _loop_turns_during_transaction(
        f"sqlite:///{tmp_path / 'inline.db'}", sqlite_in_thread=False
    )
    assert read == list(range(STATEMENTS))
    # The commit and the pool's checkout may each give the loop a turn; 50 statements do not.
    assert during <= 3


async def test_a_bulk_job_keeps_the_loop_free_while_sqlite_works_in_its_thread(tmp_path: Path) -> None:
    during, read = await _loop_turns_during_transaction(
        f"sqlite:///{tmp_path / 'thread.db'}", sqlite_in_thread=True
    )
    assert read == list(range(STATEMENTS))
    # Each statement's round trip to aiosqlite's thread lets the other task run.
    assert during >= STATEMENTS


async def test_a_connection_used_by_plain_execute_and_driver_sql_works_inline(tmp_path: Path) -> None:
    """AsyncConnection.execute and exec_driver_sql refuse a driver that never awaits; inline awaits once."""
    engine = create_engine(f"sqlite:///{tmp_path / 'conn.db'}")
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
            await connection.execute(text("INSERT INTO t VALUES (7)"))
            assert (await connection.execute(text("SELECT n FROM t"))).scalar_one() == 7
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    finally:
        await engine.dispose()
