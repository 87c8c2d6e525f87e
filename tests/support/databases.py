"""Real databases for the tests: a migrated SQLite file per test, and PostgreSQL when configured.

SQLite always runs. PostgreSQL runs when `CXBOT_TEST_POSTGRES_URL` is set: the suite creates its own
database there (so parallel runs never share one), migrates it once and empties it between tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from cxbot.db import upgrade_sync
from cxbot.models import Base

POSTGRES_ENV = "CXBOT_TEST_POSTGRES_URL"


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


async def postgres_connect(url: str) -> asyncpg.Connection:
    """A plain asyncpg connection to the database `url` names (for COPY and statements outside a
    transaction, which SQLAlchemy's pool does not give)."""
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database=parsed.database or "postgres",
    )


async def postgres_admin(url: str, sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) outside a transaction on the server `url` names."""
    connection = await postgres_connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def create_postgres_database() -> str:
    """A new, empty database on the configured server; returns its URL."""
    name = f"cxbot_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(postgres_admin(postgres_admin_url() or "", f'CREATE DATABASE "{name}"'))
    return make_url(postgres_admin_url() or "").set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(postgres_admin(postgres_admin_url() or "", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrated_sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"
    upgrade_sync(f"sqlite:///{path}")
    return path


def fresh_sqlite(template: Path, directory: Path) -> str:
    target = directory / f"cxbot-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def truncate_sql() -> str:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    return f"TRUNCATE {tables} RESTART IDENTITY CASCADE"
