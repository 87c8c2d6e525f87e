"""The demo data: deterministic, realistic in shape, and stored through the real ingest path and flows."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from cxbot.clock import ManualClock
from cxbot.config import Config
from cxbot.db import transaction
from cxbot.demo import DEMO_DAYS, DEMO_NOW, SeedReport, generate_feedback, seed_demo
from cxbot.demo_cache import DemoSnapshots, snapshot_key
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.models import OPEN_CASE_STATES, Case, CaseEvent, Feedback
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.support.databases import fresh_sqlite


def test_the_feedback_is_the_same_every_time_and_looks_like_a_real_programme(example_config: Config) -> None:
    items = generate_feedback(example_config)
    assert items == generate_feedback(example_config)
    assert items != generate_feedback(example_config, seed=1)
    assert 8_000 <= len(items) <= 16_000
    received = [datetime.fromisoformat(item["received_at"]) for item in items]
    assert received == sorted(received)
    assert DEMO_NOW - timedelta(days=DEMO_DAYS + 1) <= received[0] and received[-1] <= DEMO_NOW
    assert len({item["external_id"] for item in items}) == len(items)

    by_team = Counter(example_config.touchpoint_index()[item["touchpoint"]].team for item in items)
    assert set(by_team) == set(example_config.team_keys)  # every team hears from customers
    assert by_team["support"] > by_team["travel"] * 3
    metrics = Counter(item["metric"] for item in items)
    assert set(metrics) == {"nps", "csat", "ces", "comment"}
    scales = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
    for item in items:
        if item["metric"] in scales:
            low, high = scales[item["metric"]]
            assert low <= item["score"] <= high
    commented = sum(1 for item in items if item["comment"])
    assert 0.3 < commented / len(items) < 0.7
    # Negative scores carry complaints, not praise: every detractor comment is from the complaint list.
    detractor_comments = {
        i["comment"] for i in items if i["metric"] == "nps" and i["score"] <= 5 and i["comment"]
    }
    assert not detractor_comments & {"Quick and friendly, thank you", "Great experience overall"}
    # Support hears from enough people on a weekday for its daily NPS not to be "low sample".
    monday = [
        i
        for i in items
        if i["metric"] == "nps"
        and i["touchpoint"].startswith("support-")
        and i["received_at"].startswith((DEMO_NOW - timedelta(days=1)).date().isoformat())
    ]
    assert len(monday) >= 30


async def test_seeding_opens_cases_the_normal_way_and_leaves_them_in_every_state(runtime: Runtime) -> None:
    report = await seed_demo(runtime, live_days=2)
    assert report.feedback == len(generate_feedback(runtime.config))
    assert report.refused == 0 and report.actions > 0

    async with runtime.sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(Feedback))
        states = Counter(
            dict((await session.execute(select(Case.state, func.count()).group_by(Case.state))).all())
        )
        without_feedback = await session.scalar(
            select(func.count()).select_from(Case).where(Case.feedback_id.is_(None))
        )
        kinds = Counter(
            dict((await session.execute(select(CaseEvent.kind, func.count()).group_by(CaseEvent.kind))).all())
        )
        overdue = await session.scalar(
            select(func.count())
            .select_from(Case)
            .where(Case.state.in_(OPEN_CASE_STATES), Case.resolve_due_at < DEMO_NOW)
        )
        history_cases = await session.scalar(
            select(func.count())
            .select_from(Case)
            .where(Case.created_at < DEMO_NOW - timedelta(days=2, hours=1))
        )
    assert stored == report.feedback
    assert states == report.states and sum(states.values()) == report.cases
    assert states["new"] >= 2 and states["resolved"] >= 10
    assert states["in_progress"] + states["acknowledged"] + states["contacted"] >= 1
    assert overdue >= 1
    assert without_feedback == 0  # every case was opened by the ingest, from a negative response
    assert history_cases == 0  # the weeks before going live were imported without cases
    assert kinds["created"] == report.cases
    assert kinds["escalated"] >= 1 and kinds["resolved"] == states["resolved"]
    assert kinds["contacted"] >= 1


async def test_two_seedings_give_the_same_cases(
    tmp_path: Path, sqlite_template: Path, example_config: Config
) -> None:
    seen = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        settings = Settings(_env_file=None, DATABASE_URL=fresh_sqlite(sqlite_template, folder))  # type: ignore[call-arg]
        runtime = Runtime.build(settings=settings, config=example_config, clock=ManualClock(DEMO_NOW))
        try:
            await seed_demo(runtime, live_days=1)
            async with runtime.sessions() as session:
                rows = await session.execute(
                    select(
                        Case.id, Case.state, Case.team_key, Case.feedback_id, Case.escalation_level
                    ).order_by(Case.id)
                )
                seen.append(rows.all())
        finally:
            await runtime.close()
    assert seen[0] == seen[1] and len(seen[0]) > 10


async def _cases_and_feedback(runtime: Runtime) -> tuple[list[tuple[object, ...]], int]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(Case.id, Case.state, Case.team_key, Case.feedback_id).order_by(Case.id)
        )
        feedback = await session.scalar(select(func.count()).select_from(Feedback))
    return [tuple(row) for row in rows.all()], int(feedback or 0)


async def test_the_demo_database_is_built_once_then_copied_with_its_report(
    tmp_path: Path, sqlite_template: Path, example_config: Config
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    settings = Settings(_env_file=None, DATABASE_URL=fresh_sqlite(sqlite_template, built))  # type: ignore[call-arg]
    runtime = Runtime.build(settings=settings, config=example_config, clock=ManualClock(DEMO_NOW))
    items = generate_feedback(example_config)[-60:]  # the last hour's worth: a few negative ones
    try:
        await runtime.sync_directory()
        async with transaction(runtime.sessions) as session:
            results = await ingest_items(session, ingestor_for(runtime.config), items, now=DEMO_NOW)
        seeded = await _cases_and_feedback(runtime)
        report = SeedReport(feedback=seeded[1], cases=len(seeded[0]), states=Counter(new=len(seeded[0])))
        snapshots = DemoSnapshots(tmp_path / "cache")
        key = snapshot_key(example_config)
        assert snapshots.restore(key, tmp_path / "console.db") is None  # nothing built yet
        snapshots.store(key, Path(make_url(settings.database_url).database or ""), report)
    finally:
        await runtime.close()
    assert any(r.case for r in results) and seeded[1] == 60

    target = tmp_path / "here" / "cxbot-demo.db"
    target.parent.mkdir()
    target.write_bytes(b"an older demo database")
    Path(f"{target}-wal").write_bytes(b"its stale write-ahead log")
    copied = snapshots.restore(key, target)
    assert copied is not None and copied.copied
    assert (copied.feedback, copied.cases, copied.states) == (report.feedback, report.cases, report.states)
    assert not Path(f"{target}-wal").exists()
    settings = Settings(_env_file=None, DATABASE_URL=f"sqlite:///{target}")  # type: ignore[call-arg]
    again = Runtime.build(settings=settings, config=example_config, clock=ManualClock(DEMO_NOW))
    try:
        assert await _cases_and_feedback(again) == seeded
    finally:
        await again.close()

    # Another configuration, other parameters or other code: another key, and a build; one snapshot kept.
    other = example_config.model_copy(update={"admins": ["U0SOMEONE"]})
    assert len({key, snapshot_key(other), snapshot_key(example_config, live_days=1)}) == 3
    assert snapshots.restore(snapshot_key(other), target) is None
    snapshots.store(snapshot_key(other), target, report)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        f"demo-{snapshot_key(other)}.db",
        f"demo-{snapshot_key(other)}.json",
    ]
    (tmp_path / "cache" / f"demo-{snapshot_key(other)}.json").write_text("{not json")
    assert snapshots.restore(snapshot_key(other), target) is None  # a damaged snapshot is rebuilt


def test_a_cache_that_cannot_be_written_costs_only_a_build(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    database = tmp_path / "demo.db"
    sqlite3.connect(database).close()
    snapshots = DemoSnapshots(blocked / "cxbot")
    snapshots.store("k", database, SeedReport())  # logged, not raised
    assert snapshots.restore("k", database) is None and database.exists()
