"""The schema the models describe is exactly the schema the migrations build (design.md §10)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from cxbot.db import create_engine, upgrade_sync
from cxbot.models import Base
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
