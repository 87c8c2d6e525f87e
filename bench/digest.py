#!/usr/bin/env python3
"""Digest build time against history size: 50 teams, 1M feedback rows over 365 days, then 5M.

    python bench/digest.py                      # SQLite files in a temporary directory
    python bench/digest.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Rows go straight into a freshly migrated database (SQLite: the driver's executemany; PostgreSQL:
COPY into a database created and dropped here), in time order, 50 teams in 8 time zones, NPS/CSAT/CES
with comments on the negative ones. Then all 50 digests are built in process with the same code the
scheduler runs (`build_team_digest`), minus posting; each figure is the median of `--repeat` timed
passes after one warm-up pass.

"5M" is measured two ways, because they test different things:

- history: 5M rows at the same density as the 1M set, over 5 years instead of one. The digest
  window holds the same rows, so this shows that the work is bounded by the window, not by history.
- dense: 5M rows over the same 365 days (5x the responses per day). The window holds 5x the rows,
  so a query that reads its rows must do about 5x the work; this shows how far it is from that.

`--covering-index` adds, in the scratch database only, an index on (team_key, received_at, metric,
score, is_negative) so the window query is answered from the index alone. It is not in the schema:
it is here to measure what that migration would buy.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.engine import make_url  # noqa: E402

from cxbot.config import Config, parse_config  # noqa: E402
from cxbot.db import create_engine, session_factory, upgrade  # noqa: E402
from cxbot.digest.content import build_team_digest, day_boundaries, explain_window_query  # noqa: E402
from tests.support.databases import postgres_admin, postgres_connect  # noqa: E402

TEAMS = 50
ZONES = [
    "Europe/London",
    "America/New_York",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Asia/Singapore",
    "Asia/Kolkata",
    "Australia/Sydney",
    "UTC",
]
#: The last day of generated history; the digests report it.
LAST_DAY = date(2026, 6, 30)
NEGATIVE_COMMENTS = [
    "Refund still not received after two weeks",
    "The courier never turned up and nobody called",
    "Waited 40 minutes on the phone, then got cut off",
    "App keeps crashing at checkout",
    "Charged twice for the same order",
    "Rude agent, problem not solved",
]
COLUMNS = (
    "source",
    "external_id",
    "metric",
    "score",
    "comment",
    "team_key",
    "is_negative",
    "tags",
    "received_at",
    "created_at",
    "updated_at",
)


def bench_config() -> Config:
    teams = [
        {"key": f"team-{i:02d}", "name": f"Team {i:02d}", "timezone": ZONES[i % len(ZONES)]}
        for i in range(TEAMS)
    ]
    return parse_config({"teams": teams, "routing": {"fallback_team": "team-00"}})


def generate(*, rows: int, first_day: date, days: int, seed: int, id_prefix: str) -> Iterator[tuple]:
    """`rows` feedback rows spread evenly over `days` days from `first_day`, in time order."""
    rng = random.Random(seed)
    per_day, extra = divmod(rows, days)
    serial = 0
    for day_index in range(days):
        day_start = datetime.combine(first_day + timedelta(days=day_index), datetime.min.time(), UTC)
        count = per_day + (1 if day_index < extra else 0)
        for second in sorted(rng.randrange(86400) for _ in range(count)):
            serial += 1
            team = f"team-{rng.randrange(TEAMS):02d}"
            pick = rng.random()
            if pick < 0.5:
                metric, score, negative = "nps", rng.choice((0, 3, 5, 6, 7, 8, 8, 9, 9, 10, 10, 10)), None
                negative = score <= 6
            elif pick < 0.8:
                metric, score = "csat", rng.choice((1, 2, 3, 4, 4, 5, 5, 5))
                negative = score <= 2
            else:
                metric, score = "ces", rng.choice((1, 2, 3, 4, 5, 5, 6, 6, 7, 7))
                negative = score <= 3
            comment = rng.choice(NEGATIVE_COMMENTS) if negative and rng.random() < 0.5 else None
            at = day_start + timedelta(seconds=second)
            yield (
                "bench",
                f"{id_prefix}{serial:09d}",
                metric,
                float(score),
                comment,
                team,
                negative,
                "[]",
                at,
                at,
                at,
            )


# --------------------------------------------------------------------------- loading


def load_sqlite(path: Path, rows: Iterator[tuple]) -> None:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-1000000")  # 1 GB: six B-trees grow at once
    sql = f"INSERT INTO feedback ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    batch: list[tuple] = []

    def flush() -> None:
        connection.executemany(sql, batch)
        connection.commit()
        batch.clear()

    for row in rows:
        # UtcDateTime keeps naive UTC text on SQLite.
        at = row[8].replace(tzinfo=None).isoformat(" ", timespec="microseconds")
        batch.append((*row[:6], int(row[6]), row[7], at, at, at))
        if len(batch) >= 100_000:
            flush()
    flush()
    connection.execute("ANALYZE")
    connection.commit()
    connection.close()


async def load_postgres(url: str, rows: Iterator[tuple]) -> None:
    connection = await postgres_connect(url)
    try:
        batch: list[tuple] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= 200_000:
                await connection.copy_records_to_table("feedback", records=batch, columns=COLUMNS)
                batch.clear()
        if batch:
            await connection.copy_records_to_table("feedback", records=batch, columns=COLUMNS)
        await connection.execute("VACUUM ANALYZE feedback")
    finally:
        await connection.close()


COVERING_INDEX = (
    "CREATE INDEX bench_feedback_window_covering"
    " ON feedback (team_key, received_at, metric, score, is_negative)"
)


async def seed_teams(url: str, config: Config, *, covering_index: bool) -> None:
    from sqlalchemy import text

    from cxbot.directory import sync_directory

    engine = create_engine(url)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        await sync_directory(session, config=config)
        if covering_index:
            await session.execute(text(COVERING_INDEX))
    await engine.dispose()


# --------------------------------------------------------------------------- measuring


async def build_all(url: str, config: Config, *, repeat: int) -> tuple[float, float, int]:
    """(first pass seconds, median of `repeat` later passes, responses reported) for all 50 digests."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    now = datetime.combine(LAST_DAY + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=9)
    timings: list[float] = []
    responses = 0
    try:
        for _ in range(repeat + 1):
            started = time.perf_counter()
            responses = 0
            for team in config.teams:
                async with sessions() as session:
                    digest = await build_team_digest(
                        session, team=team, report_date=LAST_DAY, now=now, config=config
                    )
                responses += sum(m.last_28_days.n for m in digest.metrics)
            timings.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    return timings[0], statistics.median(timings[1:]), responses


async def plan(url: str, config: Config) -> list[str]:
    from zoneinfo import ZoneInfo

    team = config.teams[0]
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            bounds = day_boundaries(last_day=LAST_DAY, days=28, zone=ZoneInfo(team.timezone))
            return await explain_window_query(session, team_key=team.key, bounds=bounds)
    finally:
        await engine.dispose()


def report(label: str, first: float, median: float, responses: int) -> None:
    print(
        f"{label:<34} first {first:6.3f} s   median {median:6.3f} s   ({responses:,} answers in 50x28 days)"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL server URL (databases are created and dropped)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the base set (default 1M)")
    parser.add_argument(
        "--factor", type=int, default=5, help="the larger sets hold factor x rows (default 5)"
    )
    parser.add_argument(
        "--covering-index",
        action="store_true",
        help="measure with a covering window index (not in the schema)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed passes after the warm-up (default 3)")
    args = parser.parse_args()
    config = bench_config()
    base_rows, more_rows = args.rows, args.rows * (args.factor - 1)
    first_day = LAST_DAY - timedelta(days=364)
    older_first = first_day - timedelta(days=365 * (args.factor - 1))
    if args.covering_index:
        print("with the covering window index (bench only, not in the schema)")
    print(
        f"{TEAMS} teams, {args.rows:,} rows over 365 days; "
        f"then {args.factor}x as dense, and {args.factor}x the history"
    )
    results: dict[str, float] = {}
    temp = Path(tempfile.mkdtemp(prefix="cxbot-bench-digest-"))
    created: list[str] = []
    try:
        if args.database_url:
            admin = args.database_url
            names = {k: f"cxbot_bench_digest_{k}_{uuid.uuid4().hex[:6]}" for k in ("dense", "history")}
            urls = {
                k: make_url(admin).set(database=v).render_as_string(hide_password=False)
                for k, v in names.items()
            }
            await postgres_admin(admin, f'CREATE DATABASE "{names["dense"]}"')
            created.append(names["dense"])
            await upgrade(urls["dense"])
            await seed_teams(urls["dense"], config, covering_index=args.covering_index)
            started = time.perf_counter()
            await load_postgres(
                urls["dense"], generate(rows=base_rows, first_day=first_day, days=365, seed=1, id_prefix="a")
            )
            print(f"loaded {base_rows:,} rows in {time.perf_counter() - started:.0f} s")
            await postgres_admin(admin, f'CREATE DATABASE "{names["history"]}" TEMPLATE "{names["dense"]}"')
            created.append(names["history"])
        else:
            urls = {k: f"sqlite:///{temp / (k + '.db')}" for k in ("dense", "history")}
            await upgrade(urls["dense"])
            await seed_teams(urls["dense"], config, covering_index=args.covering_index)
            started = time.perf_counter()
            load_sqlite(
                temp / "dense.db",
                generate(rows=base_rows, first_day=first_day, days=365, seed=1, id_prefix="a"),
            )
            print(f"loaded {base_rows:,} rows in {time.perf_counter() - started:.0f} s")
            shutil.copyfile(temp / "dense.db", temp / "history.db")

        print("plan of one team's window query:")
        for line in await plan(urls["dense"], config):
            print("   ", line if len(line) < 160 else line[:157] + "...")
        first, median, responses = await build_all(urls["dense"], config, repeat=args.repeat)
        results["base"] = median
        report(f"{base_rows / 1e6:g}M rows / 365 days", first, median, responses)

        for key, first_of_more, days, seed in (
            ("history", older_first, 365 * (args.factor - 1), 2),
            ("dense", first_day, 365, 3),
        ):
            rows = generate(rows=more_rows, first_day=first_of_more, days=days, seed=seed, id_prefix="b")
            started = time.perf_counter()
            if args.database_url:
                await load_postgres(urls[key], rows)
            else:
                load_sqlite(temp / f"{key}.db", rows)
            print(f"loaded {more_rows:,} more rows ({key}) in {time.perf_counter() - started:.0f} s")
            first, median, responses = await build_all(urls[key], config, repeat=args.repeat)
            results[key] = median
            span = f"{365 * args.factor} days" if key == "history" else "365 days"
            report(f"{args.rows * args.factor / 1e6:g}M rows / {span} ({key})", first, median, responses)

        print(f"ratio {args.factor}x history / base: {results['history'] / results['base']:.2f}")
        print(f"ratio {args.factor}x dense / base:   {results['dense'] / results['base']:.2f}")
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        for name in created:
            await postgres_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
