"""The database going away under a request (a PostgreSQL restart): the work is run again, not a 500.

bench/soak.py restarts PostgreSQL mid-load and counted a dozen 500s from `POST /feedback` each time:
requests whose pooled connection the restart had closed. `cxbot.db.retrying` runs such a
transaction again after a short pause, for work that is safe to run twice. Here the server's
connections are terminated between requests (what a restart does to them), on real PostgreSQL.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from cxbot.authz import Actor
from cxbot.commands.dispatch import Where, run_text
from cxbot.db import database_went_away, retrying
from cxbot.models import CaseEvent, Feedback
from cxbot.runtime import Runtime
from tests.support.databases import postgres_admin


class DriverError(Exception):
    """A driver's exception with the SQLSTATE PostgreSQL sent."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def wrapped(orig: BaseException, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, orig, connection_invalidated=invalidated)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "gone"),
    [
        (wrapped(Exception("closed"), invalidated=True), True),
        (wrapped(DriverError("57P01")), True),  # terminating connection due to administrator command
        (wrapped(DriverError("57P03")), True),  # the database system is starting up
        (wrapped(DriverError("08006")), True),  # connection failure
        (wrapped(ConnectionResetError()), True),
        (ConnectionRefusedError(), True),  # connecting while the server is down
        (IntegrityError("INSERT", {}, DriverError("23505")), False),  # a refused statement stays refused
        (wrapped(DriverError("40001")), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_a_server_that_went_away_counts(error: BaseException, gone: bool) -> None:
    assert database_went_away(error) is gone


async def test_work_is_run_again_while_the_database_is_away_and_no_longer() -> None:
    calls: list[int] = []

    async def work() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise wrapped(DriverError("57P03"))
        return "stored"

    assert await retrying(work, pauses=(0, 0, 0)) == "stored" and len(calls) == 3

    async def refused() -> None:
        calls.append(1)
        raise IntegrityError("INSERT", {}, DriverError("23505"))

    calls.clear()
    with pytest.raises(IntegrityError):
        await retrying(refused, pauses=(0, 0))
    assert len(calls) == 1  # not retried

    async def gone() -> None:
        calls.append(1)
        raise ConnectionRefusedError

    calls.clear()
    with pytest.raises(ConnectionRefusedError):
        await retrying(gone, pauses=(0, 0))
    assert len(calls) == 3  # each pause, then the error


async def drop_connections(database_url: str) -> None:
    """Terminate every other backend on the test database, as a restart of PostgreSQL would."""
    name = make_url(database_url).database
    await postgres_admin(
        database_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )


async def test_feedback_and_commands_survive_their_connections_being_dropped(
    client: httpx.AsyncClient, runtime: Runtime, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to go away")
    item = {"external_id": "neg-0", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    first = await client.post("/feedback", json=item)
    assert first.status_code == 200  # the pool now holds a live connection
    await drop_connections(database_url)
    again = await client.post("/feedback", json=[{**item, "external_id": "neg-1"}])
    assert again.status_code == 200 and again.json()["results"][0]["status"] == "created"
    ref = again.json()["results"][0]["case"]
    await drop_connections(database_url)
    reply = await run_text(
        runtime,
        f"note {ref} rang back",
        actor=Actor("U0SUPMGR1", "slack"),
        where=Where("slack", "C0SUPPORT1"),
    )
    assert reply.ok, reply.text
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Feedback)) == 2
        notes = await session.scalar(select(func.count()).where(CaseEvent.kind == "note"))
    assert notes == 1  # the note once, though its transaction was tried again
    assert caplog.text.count("the database went away") == 2  # each dropped connection, once
