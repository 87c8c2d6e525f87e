"""The demo's fast build (cxbot.demo_cache.build_demo_database): the same rows as seeding the usual way,
and what the README's console tour promises."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

from sqlalchemy.engine import make_url

from cxbot.clock import ManualClock
from cxbot.config import Config
from cxbot.demo import DEMO_NOW, seed_demo
from cxbot.demo_cache import build_demo_database
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.support.databases import fresh_sqlite

#: Stamped with the wall clock by the directory sync (not the demo clock): compared by count only.
WALL_CLOCK_TABLES = {"teams", "team_destinations"}


def _rows(database: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, sorted, from a SQLite file."""
    connection = sqlite3.connect(database)
    try:
        tables = [
            name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {
            table: sorted((tuple(row) for row in connection.execute(f'SELECT * FROM "{table}"')), key=repr)
            for table in tables
        }
    finally:
        connection.close()


def _settings(url: str = "sqlite://") -> Settings:
    return Settings(_env_file=None, DATABASE_URL=url)  # type: ignore[call-arg]


async def test_the_fast_build_writes_the_rows_the_usual_engine_writes(
    tmp_path: Path, sqlite_template: Path, example_config: Config
) -> None:
    url = fresh_sqlite(sqlite_template, tmp_path)
    runtime = Runtime.build(settings=_settings(url), config=example_config, clock=ManualClock(DEMO_NOW))
    try:
        usual = await seed_demo(runtime, live_days=1)
    finally:
        await runtime.close()
    built = tmp_path / "here" / "demo.db"
    fast = await build_demo_database(built, settings=_settings(), config=example_config, live_days=1)

    assert (fast.feedback, fast.cases, fast.states, fast.actions, fast.escalations) == (
        usual.feedback,
        usual.cases,
        usual.states,
        usual.actions,
        usual.escalations,
    )
    expected, got = _rows(Path(make_url(url).database or "")), _rows(built)
    assert set(got) == set(expected)
    for table in expected:
        if table in WALL_CLOCK_TABLES:
            assert len(got[table]) == len(expected[table]), table
        else:
            assert got[table] == expected[table], table
    assert sorted(p.name for p in built.parent.iterdir()) == ["demo.db"]  # renamed into place, no leftovers


async def test_the_demo_holds_what_the_console_tour_promises(tmp_path: Path, example_config: Config) -> None:
    """The README's tour (and docs/performance.md) quote these: a change here is a change there too."""
    database = tmp_path / "cxbot-demo.db"
    report = await build_demo_database(database, settings=_settings(), config=example_config)
    connection = sqlite3.connect(database)
    try:
        states = Counter(dict(connection.execute("SELECT state, count(*) FROM cases GROUP BY state")))
        events = Counter(dict(connection.execute("SELECT kind, count(*) FROM case_events GROUP BY kind")))
        (contacts,) = connection.execute("SELECT count(*) FROM contacts").fetchone()
        (feedback,) = connection.execute("SELECT count(*) FROM feedback").fetchone()
        newest = connection.execute(
            "SELECT c.id, c.state, c.team_key, f.metric, f.score, f.touchpoint_key FROM cases c"
            " JOIN feedback f ON f.id = c.feedback_id ORDER BY c.id DESC LIMIT 2"
        ).fetchall()
    finally:
        connection.close()

    # "about 12,000 responses" over 60 days; cases opened, acknowledged late, escalated, contacted, resolved.
    assert feedback == report.feedback == 12_352
    assert states == report.states == Counter(resolved=184, in_progress=34, contacted=7, new=5)
    assert events["escalated"] == report.escalations == 139
    assert events["acknowledged"] == 69 and events["taken"] == 225 and events["resolved"] == 184
    assert contacts == events["contacted"] == 99
    assert report.actions == 651 and report.refused == 0
    # `list new` in the tour: CX-230 logistics CSAT 1 at delivery, CX-229 support NPS 6 at support-phone.
    assert newest == [
        (230, "new", "logistics", "csat", 1, "delivery"),
        (229, "new", "support", "nps", 6, "support-phone"),
    ]
