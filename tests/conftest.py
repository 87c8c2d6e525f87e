"""Shared fixtures: real SQLite and PostgreSQL databases, a runtime, and the real ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from cxbot.config import Config, load_config
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.support.clock import FrozenClock
from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    fresh_sqlite,
    migrated_sqlite_template,
    postgres_admin_url,
    truncate_sql,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
API_KEY = "test-api-key-0123456789"

BACKENDS = ["sqlite", *(["postgresql"] if postgres_admin_url() else [])]


@pytest.fixture(scope="session")
def example_config() -> Config:
    return load_config(ROOT / "cxbot.example.yaml")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    if not postgres_admin_url():
        yield None
        return
    from cxbot.db import upgrade_sync

    url = create_postgres_database()
    upgrade_sync(url)
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated, empty database of each backend under test."""
    if request.param == "sqlite":
        return fresh_sqlite(sqlite_template, tmp_path)
    url = request.getfixturevalue("postgres_database")
    import asyncio

    from cxbot.db import create_engine

    async def empty() -> None:
        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text(truncate_sql()))
        await engine.dispose()

    asyncio.run(empty())
    return url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(_env_file=None, DATABASE_URL=database_url, CXBOT_API_KEY=API_KEY)  # type: ignore[call-arg]


@pytest.fixture
async def runtime(settings: Settings, example_config: Config, clock: FrozenClock) -> AsyncIterator[Runtime]:
    built = Runtime.build(settings=settings, config=example_config, clock=clock)
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the real ASGI app in process, authenticated with the API key."""
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://cxbot.test", headers={"Authorization": f"Bearer {API_KEY}"}
    ) as http:
        yield http
