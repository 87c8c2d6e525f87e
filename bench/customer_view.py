#!/usr/bin/env python3
"""`/cx customer` answer time: one customer with 500 responses among 200k other rows, against Slack's 3 s.

    python bench/customer_view.py                      # a SQLite file in a temporary directory
    python bench/customer_view.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The database is migrated, then loaded directly (SQLite: the driver's executemany; PostgreSQL: COPY into
a database created and dropped here): 20,000 customers with 200k responses over two years, and the
customer under test with 500 responses (every metric, a fifth of them negative, each negative with
its case). Then the view is built in process exactly as the slash command builds it: `run_text` (one
transaction: find the customer, the header aggregates, one keyset page, the PII reveal audit row for
the admin who asks) plus the Slack rendering (`customer_message`: Block Kit validated by slack_sdk).
Each figure is p50/p99 over `--repeat` runs after warm-up, for the first page and for page 20 (reached
with its `before:` cursor, as the Older button does).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from cxbot.authz import Actor  # noqa: E402
from cxbot.cases.customers import PAGE_SIZE, CustomerPage  # noqa: E402
from cxbot.commands.dispatch import Where, run_text  # noqa: E402
from cxbot.config import load_config  # noqa: E402
from cxbot.db import create_engine, session_factory, upgrade  # noqa: E402
from cxbot.directory import sync_directory  # noqa: E402
from cxbot.models import Case, Feedback  # noqa: E402
from cxbot.runtime import Runtime  # noqa: E402
from cxbot.settings import Settings  # noqa: E402
from handlers.slack.customer_view import customer_message  # noqa: E402
from tests.support.databases import postgres_admin, postgres_connect  # noqa: E402

SLACK_DEADLINE = 3.0
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
TARGET = "bench-customer-0"
TOUCHPOINTS = [
    ("delivery", "logistics"),
    ("refunds", "billing"),
    ("support-phone", "support"),
    ("seat", "travel"),
]
CUSTOMER_COLUMNS = ("id", "external_id", "name", "email", "phone", "created_at", "updated_at")
FEEDBACK_COLUMNS = (
    "source",
    "external_id",
    "metric",
    "score",
    "comment",
    "touchpoint_key",
    "team_key",
    "customer_id",
    "is_negative",
    "tags",
    "received_at",
    "created_at",
    "updated_at",
)


def customers(count: int) -> Iterator[tuple]:
    for n in range(count):
        yield (n + 1, f"bench-customer-{n}", f"Customer {n}", f"c{n}@example.com", None, NOW, NOW)


def feedback(*, rows: int, customer_ids: range, seed: int, prefix: str) -> Iterator[tuple]:
    """`rows` responses over the two years before NOW, for customers drawn from `customer_ids`."""
    rng = random.Random(seed)
    span = int(timedelta(days=730).total_seconds())
    for n in range(rows):
        metric, score, negative = rng.choice(
            [
                ("nps", 3.0, True),
                ("nps", 9.0, False),
                ("csat", 5.0, False),
                ("ces", 6.0, False),
                ("nps", 7.0, False),
            ]
        )
        touchpoint, team = rng.choice(TOUCHPOINTS)
        at = NOW - timedelta(seconds=rng.randrange(span))
        comment = "Parcel late again and nobody called back" if negative or n % 4 == 0 else None
        yield (
            "bench",
            f"{prefix}{n:09d}",
            metric,
            score,
            comment,
            touchpoint,
            team,
            rng.choice(customer_ids),
            negative,
            "[]",
            at,
            at,
            at,
        )


def load_sqlite(path: Path, *, others: int, target_rows: int, customer_count: int) -> None:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")

    def text(at: datetime) -> str:
        return at.replace(tzinfo=None).isoformat(" ", timespec="microseconds")

    connection.executemany(
        f"INSERT INTO customers ({', '.join(CUSTOMER_COLUMNS)}) VALUES ({', '.join('?' * 7)})",
        [(*row[:5], text(row[5]), text(row[6])) for row in customers(customer_count)],
    )
    marks = ", ".join("?" * len(FEEDBACK_COLUMNS))
    sql = f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) VALUES ({marks})"
    for rows in (
        feedback(rows=others, customer_ids=range(2, customer_count + 1), seed=1, prefix="o"),
        feedback(rows=target_rows, customer_ids=range(1, 2), seed=2, prefix="t"),
    ):
        connection.executemany(
            sql, ((*r[:8], int(r[8]), r[9], text(r[10]), text(r[11]), text(r[12])) for r in rows)
        )
    connection.commit()
    connection.execute("ANALYZE")
    connection.commit()
    connection.close()


async def load_postgres(url: str, *, others: int, target_rows: int, customer_count: int) -> None:
    connection = await postgres_connect(url)
    try:
        await connection.copy_records_to_table(
            "customers", records=list(customers(customer_count)), columns=CUSTOMER_COLUMNS
        )
        for rows in (
            feedback(rows=others, customer_ids=range(2, customer_count + 1), seed=1, prefix="o"),
            feedback(rows=target_rows, customer_ids=range(1, 2), seed=2, prefix="t"),
        ):
            await connection.copy_records_to_table("feedback", records=list(rows), columns=FEEDBACK_COLUMNS)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


async def open_cases(runtime: Runtime) -> int:
    """A case for each negative response of the customer under test, as ingest would have opened."""
    async with runtime.sessions() as session, session.begin():
        negatives = await session.execute(
            select(Feedback.id, Feedback.team_key, Feedback.touchpoint_key, Feedback.received_at).where(
                Feedback.customer_id == 1, Feedback.is_negative.is_(True)
            )
        )
        rows = negatives.all()
        for n, (ident, team, touchpoint, at) in enumerate(rows):
            session.add(
                Case(
                    feedback_id=ident,
                    customer_id=1,
                    team_key=team,
                    touchpoint_key=touchpoint,
                    title=f"NPS 3 at {touchpoint}",
                    state="new" if n % 3 == 0 else "closed",
                    priority="normal",
                    routing_rule="touchpoint",
                    routing_reason="bench",
                    created_at=at,
                    updated_at=at,
                )
            )
    return len(rows)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def measure(runtime: Runtime, text: str, *, repeat: int) -> tuple[list[float], CustomerPage, int]:
    """Seconds per answer (command run + Slack rendering), the page, and its block count."""
    actor, where = Actor("U0ADMIN01", "slack"), Where(platform="slack", channel="C0BENCH")
    for _ in range(3):  # warm-up: connections, statement caches
        await run_text(runtime, text, actor=actor, where=where)
    timings = []
    blocks = 0
    page = None
    for _ in range(repeat):
        started = time.perf_counter()
        reply = await run_text(runtime, text, actor=actor, where=where)
        message = customer_message(reply)
        timings.append(time.perf_counter() - started)
        page, blocks = reply.report, len(message["blocks"])
    assert isinstance(page, CustomerPage)
    return timings, page, blocks


async def bench(url: str, *, repeat: int, later_page: int) -> None:
    config = load_config(ROOT / "cxbot.example.yaml")
    runtime = Runtime.build(
        settings=Settings(_env_file=None, DATABASE_URL=url),  # type: ignore[call-arg]
        config=config,
        clock=lambda: NOW,
    )
    try:
        print(f"cases of the customer under test: {await open_cases(runtime)}")
        timings, first, blocks = await measure(runtime, f"customer {TARGET}", repeat=repeat)
        report("first page", timings, first, blocks)
        # Walk to the later page as the Older button does, then time that page alone.
        page = first
        for _ in range(later_page - 2):
            command = page.command("older")
            assert command is not None
            reply = await run_text(runtime, command, actor=Actor("U0ADMIN01", "slack"), where=Where("slack"))
            page = reply.report
        command = page.command("older")
        assert command is not None
        timings, later, blocks = await measure(runtime, command, repeat=repeat)
        report(f"page {later_page}", timings, later, blocks)
    finally:
        await runtime.close()


def report(label: str, timings: list[float], page: CustomerPage, blocks: int) -> None:
    p50, p99 = percentile(timings, 0.5), percentile(timings, 0.99)
    verdict = "within" if p99 < SLACK_DEADLINE else "OVER"
    print(
        f"  {label:<11} p50 {p50 * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms  (n={len(timings)}; "
        f"items {page.start + 1}-{page.end} of {page.total}; {blocks} blocks) — {verdict} Slack's 3 s"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a database is created and dropped)")
    parser.add_argument("--rows", type=int, default=200_000, help="responses of other customers (200k)")
    parser.add_argument("--items", type=int, default=500, help="responses of the customer under test (500)")
    parser.add_argument("--customers", type=int, default=20_000, help="customers in all (20,000)")
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per page (default 50)")
    parser.add_argument("--page", type=int, default=20, help="the later page to time (default 20)")
    args = parser.parse_args()
    if args.page < 2 or args.items < PAGE_SIZE * args.page:
        parser.error(f"--page must be 2 or more, and --items must fill that many pages of {PAGE_SIZE}")
    temp = Path(tempfile.mkdtemp(prefix="cxbot-bench-customer-"))
    created = None
    sizes = dict(others=args.rows, target_rows=args.items, customer_count=args.customers)
    try:
        if args.database_url:
            created = f"cxbot_bench_customer_{uuid.uuid4().hex[:6]}"
            await postgres_admin(args.database_url, f'CREATE DATABASE "{created}"')
            url = make_url(args.database_url).set(database=created).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{temp / 'bench.db'}"
        await upgrade(url)
        engine = create_engine(url)
        async with session_factory(engine)() as session, session.begin():
            await sync_directory(session, config=load_config(ROOT / "cxbot.example.yaml"))
        await engine.dispose()
        started = time.perf_counter()
        if args.database_url:
            await load_postgres(url, **sizes)
        else:
            load_sqlite(temp / "bench.db", **sizes)
        backend = "PostgreSQL" if args.database_url else "SQLite"
        print(
            f"{backend}: {args.rows:,} responses of {args.customers - 1:,} other customers and "
            f"{args.items} of the customer under test, loaded in {time.perf_counter() - started:.0f} s"
        )
        await bench(url, repeat=args.repeat, later_page=args.page)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        if created:
            await postgres_admin(args.database_url, f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
