"""The demo database: built fast on the first run, then copied per version of the code (issue #16).

Seeding runs the real ingest, case flows and escalation ticks hour by hour over the live week: about
6,000 ORM statements and 24,000 driver calls (profiled in docs/performance.md). Doing that through bulk
inserts instead would mean a second implementation of the flows whose results could drift from the
real ones, so the flows stay and the build cuts what is around them: :func:`build_demo_database`
seeds a throwaway file with no journal and no fsync, through sqlite3 called inline in SQLAlchemy's
greenlet (cxbot.sqlite_inline, as `serve` does: no event-loop round trip per driver call), with the
cyclic garbage collector paused. Then the database that the real flows
built is kept in the user's cache and copied on every later `console --demo` (a file copy:
milliseconds).

The snapshot's key covers everything the data depends on: the code (every source file of the `cxbot`
package and the migrations), the configuration, and the demo's parameters. Any change builds anew;
the previous snapshot is removed then, so the cache holds one database.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from cxbot.clock import ManualClock
from cxbot.config import Config
from cxbot.db import MIGRATIONS_DIR, session_factory, upgrade
from cxbot.demo import DEMO_NOW, DEMO_SEED, LIVE_DAYS, SeedReport, seed_demo
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.sqlite_inline import inline_engine

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
PREFIX = "demo-"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
#: For the build file only: it is thrown away if the build fails, so it needs no journal, no fsync and
#: no sharing; the console opens the finished file with the usual pragmas (cxbot.db).
BUILD_PRAGMAS = (
    "journal_mode=OFF",
    "synchronous=OFF",
    "locking_mode=EXCLUSIVE",
    "temp_store=MEMORY",
    "cache_size=-65536",
    "foreign_keys=ON",
)


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/cxbot`, else `~/.cache/cxbot`: where a rebuildable file belongs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cxbot"


def snapshot_key(
    config: Config, *, now: datetime = DEMO_NOW, seed: int = DEMO_SEED, live_days: int = LIVE_DAYS
) -> str:
    """A digest of the code, the configuration and the parameters that the demo data comes from."""
    digest = hashlib.sha256()
    digest.update(f"{now.isoformat()}|{seed}|{live_days}|".encode())
    digest.update(config.model_dump_json().encode())
    for root in (PACKAGE_DIR, MIGRATIONS_DIR):
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


def remove_sqlite(path: Path) -> None:
    """A SQLite database and the journal files beside it."""
    for suffix in ("", *SQLITE_SIDE_FILES):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class DemoSnapshots:
    """Built demo databases in a cache folder, one per key, with the seed's report beside each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.folder / f"{PREFIX}{key}.db", self.folder / f"{PREFIX}{key}.json"

    def restore(self, key: str, database: Path) -> SeedReport | None:
        """Copy the snapshot for `key` to `database` (replacing it); None when there is none to copy."""
        snapshot, meta = self._paths(key)
        try:
            raw = json.loads(meta.read_text(encoding="utf-8"))
            report = SeedReport(**{**raw, "states": Counter(raw["states"]), "seconds": 0.0})
        except (OSError, ValueError, TypeError, KeyError):
            return None
        if not snapshot.is_file():
            return None
        remove_sqlite(database)
        database.parent.mkdir(parents=True, exist_ok=True)
        partial = database.with_name(f".{database.name}.partial")
        try:
            shutil.copyfile(snapshot, partial)
        except OSError as error:  # an unreadable cache only costs a build
            log.warning("demo snapshot %s could not be copied (%s); seeding instead", snapshot, error)
            partial.unlink(missing_ok=True)
            return None
        os.replace(partial, database)
        report.copied = True
        return report

    def store(self, key: str, database: Path, report: SeedReport) -> None:
        """Keep a consistent copy of the freshly seeded `database` under `key`; drop older snapshots.

        A cache that cannot be written (a read-only home) is logged and skipped: the next run seeds."""
        try:
            self._store(key, database, report)
        except (OSError, sqlite3.Error) as error:
            log.warning("demo snapshot not kept in %s (%s); the next run seeds again", self.folder, error)

    def _store(self, key: str, database: Path, report: SeedReport) -> None:
        snapshot, meta = self._paths(key)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob(f"{PREFIX}*"):
            old.unlink(missing_ok=True)
        partial = self.folder / f".{snapshot.name}.partial"
        partial.unlink(missing_ok=True)
        # VACUUM INTO reads one consistent state of the database (the console's own connection may be
        # open) and writes a compact single file; it is renamed into place only when complete.
        source = sqlite3.connect(database)
        try:
            source.execute("VACUUM INTO ?", (str(partial),))
        finally:
            source.close()
        os.replace(partial, snapshot)
        fields = asdict(report)
        fields.pop("copied", None)
        meta.write_text(json.dumps({**fields, "states": dict(report.states)}), encoding="utf-8")


def _build_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in BUILD_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def build_engine(path: Path) -> AsyncEngine:
    """An engine on the build file: one connection, sqlite3 called inline, no journal (BUILD_PRAGMAS)."""
    engine = inline_engine(str(path), pool_size=1, max_overflow=0)
    event.listen(engine.sync_engine, "connect", _build_pragmas)
    return engine


async def build_demo_database(
    database: Path,
    *,
    settings: Settings,
    config: Config,
    progress: bool = False,
    live_days: int = LIVE_DAYS,
) -> SeedReport:
    """Migrate and seed a new demo database at `database` (replacing it) with the real flows, fast.

    Built beside it under another name and renamed into place once complete, so an interrupted build
    leaves no half-seeded file where the console looks.
    """
    started = time.perf_counter()
    database.parent.mkdir(parents=True, exist_ok=True)
    building = database.with_name(f".{database.name}.building")
    remove_sqlite(building)
    url = f"sqlite:///{building}"
    await upgrade(url)
    base = Runtime.build(
        settings=settings.model_copy(update={"database_url": url}), config=config, clock=ManualClock(DEMO_NOW)
    )
    await base.engine.dispose()  # never connected: the build's own engine replaces it
    engine = build_engine(building)
    runtime = dataclasses.replace(
        base, engine=engine, sessions=session_factory(engine, outbox_wakeup=base.outbox_queued)
    )
    collecting = gc.isenabled()
    gc.disable()  # tens of thousands of short-lived ORM objects, no cycles worth collecting meanwhile
    try:
        report = await seed_demo(runtime, progress=progress, live_days=live_days)
    except BaseException:
        await runtime.close()
        remove_sqlite(building)
        raise
    finally:
        if collecting:
            gc.enable()
    await runtime.close()
    remove_sqlite(database)
    os.replace(building, database)
    report.seconds = time.perf_counter() - started
    return report
