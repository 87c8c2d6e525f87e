"""The schema the models describe is exactly the schema the migrations build (design.md §10)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, column, insert, inspect, select, table, text

from cxbot import markup
from cxbot.db import create_engine, upgrade_sync
from cxbot.models import Base, Case, CaseEvent, Team
from tests.support.databases import create_postgres_database, drop_postgres_database, postgres_admin_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    if not postgres_admin_url():
        pytest.skip("CXBOT_TEST_POSTGRES_URL is not set")
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


async def _differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_models_and_migrations_agree(empty_database: str) -> None:
    import asyncio

    await asyncio.to_thread(upgrade_sync, empty_database)
    assert await _differences(empty_database) == []


async def test_downgrade_to_base_and_up_again(empty_database: str) -> None:
    import asyncio

    await asyncio.to_thread(upgrade_sync, empty_database)
    from alembic import command

    from cxbot.db import alembic_config

    await asyncio.to_thread(command.downgrade, alembic_config(empty_database), "base")
    assert await _tables(empty_database) <= {"alembic_version"}
    await asyncio.to_thread(upgrade_sync, empty_database)
    assert {t.name for t in Base.metadata.sorted_tables} <= await _tables(empty_database)


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        async with engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
    finally:
        await engine.dispose()
    assert (mode, timeout, foreign_keys) == ("wal", 10_000, 1)


LEGACY_EVENTS = {
    "Acknowledged by <@U0SUPMGR1>": f"Acknowledged by {markup.person('U0SUPMGR1')}",
    ":warning: Message to the customer failed": f"{markup.alert('warning')} Message to the customer failed",
    "<@U1>: typed <!channel> and <http://evil.example|x>": (
        f"{markup.person('U1')}: typed <!channel> and <http://evil.example|x>"
    ),
}
EVENTS = table("case_events", column("id"), column("detail"), column("data", JSON))


async def _stored_events(url: str) -> list[tuple[str, dict]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(EVENTS.c.detail, EVENTS.c.data).order_by(EVENTS.c.id))
            return [(detail, data) for detail, data in rows.all()]
    finally:
        await engine.dispose()


async def test_stored_slack_mentions_become_neutral_tokens_and_back(empty_database: str) -> None:
    """0009: event details the core wrote as Slack mrkdwn read as its neutral markup afterwards; a
    `<!channel>` or link someone typed stays plain text (which every platform escapes)."""
    from alembic import command

    from cxbot.db import alembic_config

    await asyncio.to_thread(upgrade_sync, empty_database, "0006")
    engine = create_engine(empty_database)
    now = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(Team).values(key="support", name="Support", timezone="UTC"))
            await connection.execute(
                insert(Case.__table__).values(
                    id=1,
                    team_key="support",
                    title="t",
                    state="new",
                    priority="normal",
                    routing_rule="manual",
                    routing_reason="r",
                    escalation_level=1,
                    reopened_count=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            await connection.execute(
                insert(CaseEvent.__table__),
                [
                    {
                        "id": n,
                        "case_id": 1,
                        "at": now,
                        "actor": "cxbot",
                        "kind": "note",
                        "detail": detail,
                        "data": {"notified": ["<@U2>", "<#C0CXESCAL1>"]},
                    }
                    for n, detail in enumerate(LEGACY_EVENTS, start=1)
                ],
            )
    finally:
        await engine.dispose()
    await asyncio.to_thread(upgrade_sync, empty_database)
    upgraded = await _stored_events(empty_database)
    assert [detail for detail, _ in upgraded] == list(LEGACY_EVENTS.values())
    assert {tuple(data["notified"]) for _, data in upgraded} == {
        (markup.person("U2"), markup.channel("C0CXESCAL1"))
    }
    await asyncio.to_thread(command.downgrade, alembic_config(empty_database), "0006")
    assert [detail for detail, _ in await _stored_events(empty_database)] == list(LEGACY_EVENTS)
