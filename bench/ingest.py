#!/usr/bin/env python3
"""Ingest throughput: 50k feedback items over HTTP, through the CSV importer, a raw INSERT baseline,
and signed helpdesk webhooks (Zendesk, Intercom) against the same items posted one by one.

    python bench/ingest.py                      # SQLite files in a temporary directory
    python bench/ingest.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/ingest.py --changed-pii --skip baseline --skip webhooks

With `--changed-pii` the customers are stored before each leg and every item carries a name and an
email that differ from what is stored, so every batch refreshes the PII of each of its customers.

The HTTP leg runs the real server (`python bot.py serve`) as a subprocess, so it measures what a
deployment gets: JSON parsing, validation, routing, sentiment, case creation and the database. The
baseline is a bare SQLAlchemy Core executemany of the same rows into the same `feedback` table, the
floor any ingest path pays; the ratios say how much the product's work costs on top of it. With
`--database-url` each leg gets a PostgreSQL database of its own, created and dropped here.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the PostgreSQL helpers live with the tests
    sys.path.insert(0, str(ROOT))

from tests.support.databases import postgres_admin  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

CONFIG = ROOT / "cxbot.example.yaml"
API_KEY = "bench-api-key-0123456789abcdef"
SOURCE = "bench"
CUSTOMERS = 10_000
CSV_COLUMNS = (
    "id",
    "metric",
    "score",
    "comment",
    "touchpoint",
    "received_at",
    "customer",
    "customer_name",
    "customer_email",
    "tags",
)

# Comments in three moods, so sentiment runs on the passives the way it would on real traffic.
POSITIVE = [
    "Quick and friendly, thank you!",
    "The agent sorted it out in minutes. Great service.",
    "Smooth checkout and the parcel came a day early.",
    "Really happy with the app, easy to find what I needed.",
    "Excellent support, very patient and helpful.",
]
NEUTRAL = [
    "It was fine.",
    "Delivery took the usual time.",
    "Had to ask twice but got an answer.",
    "Average experience, nothing special.",
    "The website works, a bit slow on mobile.",
]
NEGATIVE = [
    "Terrible service, I waited an hour and nobody helped.",
    "I was charged twice and the refund still has not arrived. Awful.",
    "The courier left my parcel in the rain, it was ruined.",
    "The app crashes every time I try to log in. Useless and frustrating.",
    "Rude agent, hung up on me. Never again.",
]
SCORE_WEIGHTS: dict[str, tuple[list[int], list[int]]] = {
    "nps": (list(range(11)), [3, 2, 2, 3, 3, 5, 6, 10, 14, 22, 30]),
    "csat": ([1, 2, 3, 4, 5], [8, 6, 12, 30, 44]),
    "ces": ([1, 2, 3, 4, 5, 6, 7], [4, 5, 8, 13, 20, 25, 25]),
}


def touchpoint_names() -> list[str]:
    """Touchpoint keys and aliases from the example configuration, as survey tools would send them."""
    from cxbot.config import load_config

    config = load_config(CONFIG)
    names: list[str] = []
    for touchpoint in config.touchpoints:
        names.append(touchpoint.key)
        names.extend(touchpoint.aliases)
    return names


def stored_customer(number: int) -> dict[str, str]:
    """Customer `number` as `--changed-pii` stores them before a leg."""
    return {
        "external_id": f"cust-{number:05d}",
        "name": f"Customer {number}",
        "email": f"customer{number}@example.com",
    }


def generate(
    count: int, *, seed: int, customers: int = CUSTOMERS, days: int = 90, changed_pii: bool = False
) -> list[dict[str, Any]]:
    """`count` realistic `POST /feedback` items; the same seed gives the same items.

    `changed_pii`: every item names its customer with a name and email of its own (never the stored
    ones of :func:`stored_customer`, never another item's).
    """
    rng = random.Random(seed)
    touchpoints = touchpoint_names()
    end = datetime(2026, 11, 1, tzinfo=UTC)
    items = []
    for i in range(count):
        metric = rng.choices(("nps", "csat", "ces"), weights=(50, 35, 15))[0]
        values, weights = SCORE_WEIGHTS[metric]
        score = rng.choices(values, weights=weights)[0]
        low, high = {"nps": (6, 9), "csat": (2, 4), "ces": (3, 5)}[metric]
        comment = None
        if rng.random() < 0.4:
            pool = NEGATIVE if score <= low else POSITIVE if score >= high else NEUTRAL + NEGATIVE[:2]
            comment = rng.choice(pool)
        customer_number = rng.randrange(customers)
        customer: dict[str, Any] = {"id": f"cust-{customer_number:05d}"}
        if changed_pii:
            customer["name"] = f"Customer {customer_number} ({i})"
            customer["email"] = f"customer{customer_number}.{i}@example.com"
        elif customer_number % 3 == 0:
            customer["name"] = f"Customer {customer_number}"
            customer["email"] = f"customer{customer_number}@example.com"
        item: dict[str, Any] = {
            "external_id": f"resp-{i:06d}",
            "source": SOURCE,
            "metric": metric,
            "score": score,
            "comment": comment,
            "touchpoint": rng.choice(touchpoints) if rng.random() < 0.95 else None,
            "customer": customer,
            "received_at": (end - timedelta(seconds=rng.randrange(days * 86_400))).isoformat(),
        }
        if rng.random() < 0.2:
            item["tags"] = rng.sample(["web", "ios", "android", "vip", "promo"], k=rng.randint(1, 2))
        items.append(item)
    return items


def write_csv(items: list[dict[str, Any]], path: Path) -> None:
    """The same items as a spreadsheet export would have them."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for item in items:
            customer = item["customer"]
            writer.writerow(
                [
                    item["external_id"],
                    item["metric"],
                    item["score"],
                    item["comment"] or "",
                    item["touchpoint"] or "",
                    item["received_at"],
                    customer["id"],
                    customer.get("name", ""),
                    customer.get("email", ""),
                    ";".join(item.get("tags", [])),
                ]
            )


# --------------------------------------------------------------------------- databases


@dataclass
class Databases:
    """Hands out one fresh, empty database per leg: a SQLite file, or a PostgreSQL database."""

    postgres_url: str | None
    directory: Path

    def __post_init__(self) -> None:
        self.created: list[str] = []

    def fresh(self, name: str) -> str:
        if self.postgres_url is None:
            return f"sqlite:///{self.directory / f'{name}.db'}"
        from sqlalchemy.engine import make_url

        database = f"cxbench_{name}_{uuid.uuid4().hex[:8]}"
        asyncio.run(postgres_admin(self.postgres_url, f'CREATE DATABASE "{database}"'))
        self.created.append(database)
        return make_url(self.postgres_url).set(database=database).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for database in self.created:
            asyncio.run(
                postgres_admin(self.postgres_url or "", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            )


async def _migrated(url: str, *, customers: int = 0) -> None:
    """Schema plus the configured teams and touchpoints, which feedback rows reference, and the first
    `customers` customers as :func:`stored_customer` has them (`--changed-pii`)."""
    from sqlalchemy import insert

    from cxbot.config import load_config
    from cxbot.db import create_engine, session_factory, transaction, upgrade
    from cxbot.directory import sync_directory
    from cxbot.models import Customer

    await upgrade(url)
    engine = create_engine(url)
    try:
        async with transaction(session_factory(engine)) as session:
            await sync_directory(session, config=load_config(CONFIG))
            if customers:
                now = datetime.now(UTC)
                rows = [
                    {**stored_customer(n), "created_at": now, "updated_at": now} for n in range(customers)
                ]
                await session.execute(insert(Customer.__table__), rows)
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- (a) HTTP


async def post_all(base: str, items: list[dict[str, Any]], *, batch: int, connections: int) -> float:
    """POST every item in batches over a few keep-alive connections; returns seconds taken."""
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for chunk in batches:
        queue.put_nowait(chunk)
    problems: list[str] = []
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            chunk = queue.get_nowait()
            response = await client.post("/feedback", json=chunk)
            if response.status_code != 200:
                problems.append(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            results = response.json()["results"]
            bad = [r for r in results if r["status"] != "created"]
            if len(results) != len(chunk) or bad:
                problems.append(f"{len(bad)} of {len(chunk)} not created, first: {bad[:1]}")

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        seconds = time.perf_counter() - started
    if problems:
        raise RuntimeError(f"{len(problems)} batch(es) failed: {problems[0]}")
    return seconds


def run_http(
    items: list[dict[str, Any]], databases: Databases, *, batch: int, connections: int, customers: int = 0
) -> float:
    """POST the items to a real server on a fresh database holding `customers` stored customers."""
    url = databases.fresh("http")
    asyncio.run(_migrated(url, customers=customers))
    env = {"DATABASE_URL": url, "CXBOT_API_KEY": API_KEY, "CXBOT_CONFIG": str(CONFIG)}
    with ServerProcess(env) as server:
        return asyncio.run(post_all(server.url, items, batch=batch, connections=connections))


# --------------------------------------------------------------------------- (d) webhooks

ZENDESK_SECRET = "bench-zendesk-signing-secret"
INTERCOM_SECRET = "bench-intercom-client-secret"
WEBHOOK_ENV = {"ZENDESK_WEBHOOK_SECRET": ZENDESK_SECRET, "INTERCOM_CLIENT_SECRET": INTERCOM_SECRET}


def as_csat(item: dict[str, Any]) -> int:
    """The item's score on a 1-5 scale, so every metric can travel as a helpdesk CSAT rating."""
    low, high = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}[item["metric"]]
    return 1 + round(4 * (float(item["score"]) - low) / (high - low))


def deliveries(items: list[dict[str, Any]]) -> list[tuple[str, bytes, dict[str, Any]]]:
    """Each item as a Zendesk trigger body or an Intercom rating (alternating), plus the same item as
    `POST /feedback` would take it: (provider, body, feedback item)."""
    import json

    out = []
    for n, item in enumerate(items):
        score = as_csat(item)
        customer = item["customer"]
        if n % 2 == 0:
            body = {
                "ticket_id": item["external_id"],
                "rating": str(score),
                "comment": item["comment"] or "",
                "requester_id": customer["id"],
                "requester_email": customer.get("email", ""),
                "requester_name": customer.get("name", ""),
                "group": item["touchpoint"] or "",
                "brand": "Bench",
                "updated_at": item["received_at"],
            }
            provider, source, external_id = "zendesk", "zendesk", item["external_id"]
        else:
            body = {
                "type": "notification_event",
                "app_id": "benchapp",
                "topic": "conversation.rating.added",
                "created_at": 1_700_000_000,
                "data": {
                    "type": "notification_event_data",
                    "item": {
                        "type": "conversation",
                        "id": item["external_id"],
                        "user": {"type": "user", "id": customer["id"], "email": customer.get("email")},
                        "conversation_rating": {
                            "rating": score,
                            "remark": item["comment"],
                            "created_at": int(datetime.fromisoformat(item["received_at"]).timestamp()),
                            "contact": {"type": "contact", "id": customer["id"]},
                            "teammate": {"type": "admin", "id": "1"},
                        },
                    },
                },
            }
            provider, source, external_id = "intercom", "intercom", f"benchapp:{item['external_id']}"
        feedback = {
            **item,
            "source": source,
            "external_id": external_id,
            "metric": "csat",
            "score": score,
            "tags": [],
        }
        out.append((provider, json.dumps(body).encode(), feedback))
    return out


def sign(provider: str, body: bytes) -> dict[str, str]:
    """Each provider's own signature, computed here as the provider would (not with cxbot's code)."""
    import base64
    import hashlib
    import hmac

    if provider == "intercom":
        return {
            "X-Hub-Signature": "sha1=" + hmac.new(INTERCOM_SECRET.encode(), body, hashlib.sha1).hexdigest()
        }
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(ZENDESK_SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


async def deliver_all(base: str, requests: list[tuple[str, Any]], *, concurrency: int) -> float:
    """Send every request (a webhook body or a one-item /feedback list) at `concurrency`; seconds."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    problems: list[str] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            path, payload = queue.get_nowait()
            if path == "/feedback":
                response = await client.post(
                    path, json=payload, headers={"Authorization": f"Bearer {API_KEY}"}
                )
            else:
                headers = {**sign(path.rsplit("/", 1)[1], payload), "Content-Type": "application/json"}
                response = await client.post(path, content=payload, headers=headers)
            status = response.json()["results"][0]["status"] if response.status_code == 200 else None
            if status != "created":
                problems.append(f"{path}: HTTP {response.status_code} {response.text[:200]}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    if problems:
        raise RuntimeError(f"{len(problems)} request(s) failed: {problems[0]}")
    return seconds


def run_webhooks(
    items: list[dict[str, Any]], databases: Databases, *, concurrency: int
) -> tuple[float, float]:
    """Signed Zendesk and Intercom deliveries, then the same items one per POST /feedback, each on a
    fresh database of its own; returns (webhook seconds, /feedback seconds)."""
    made = deliveries(items)
    hooks = [(f"/webhooks/{provider}", body) for provider, body, _ in made]
    singles = [("/feedback", [feedback]) for _, _, feedback in made]
    times = []
    for name, requests in (("webhooks", hooks), ("single", singles)):
        env = {
            "DATABASE_URL": databases.fresh(name),
            "CXBOT_API_KEY": API_KEY,
            "CXBOT_CONFIG": str(CONFIG),
            **WEBHOOK_ENV,
        }
        with ServerProcess(env) as server:
            times.append(asyncio.run(deliver_all(server.url, requests, concurrency=concurrency)))
    return times[0], times[1]


# --------------------------------------------------------------------------- (b) CSV


async def import_file(path: Path, database_url: str, *, batch: int, customers: int = 0) -> tuple[float, Any]:
    from cxbot.config import load_config
    from cxbot.ingest.csv_import import ImportOptions, import_csv
    from cxbot.runtime import Runtime
    from cxbot.settings import Settings

    await _migrated(database_url, customers=customers)
    settings = Settings(_env_file=None, DATABASE_URL=database_url)  # type: ignore[call-arg]
    runtime = Runtime.build(settings=settings, config=load_config(CONFIG), sqlite_in_thread=True)
    options = ImportOptions(
        mapping={
            "external_id": "id",
            "metric": "metric",
            "score": "score",
            "comment": "comment",
            "touchpoint": "touchpoint",
            "received_at": "received_at",
            "customer_id": "customer",
            "customer_name": "customer_name",
            "customer_email": "customer_email",
            "tags": "tags",
        },
        source=SOURCE,
        batch_size=batch,
    )
    try:
        started = time.perf_counter()
        report = await import_csv(runtime, path, options)
        seconds = time.perf_counter() - started
    finally:
        await runtime.close()
    return seconds, report


# --------------------------------------------------------------------------- (c) baseline


def baseline_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The feedback rows a bare INSERT writes: the item's columns, routed, no customers or cases."""
    from cxbot.config import load_config
    from cxbot.ingest.routing import Router

    router = Router(load_config(CONFIG))
    now = datetime.now(UTC)
    rows = []
    for item in items:
        route = router.route(touchpoint=item["touchpoint"], comment=item["comment"])
        rows.append(
            {
                "source": item["source"],
                "external_id": item["external_id"],
                "metric": item["metric"],
                "score": float(item["score"]),
                "comment": item["comment"],
                "touchpoint": item["touchpoint"],
                "touchpoint_key": route.touchpoint_key,
                "team_key": route.team,
                "is_negative": False,
                "tags": item.get("tags", []),
                "received_at": datetime.fromisoformat(item["received_at"]),
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


async def insert_baseline(rows: list[dict[str, Any]], database_url: str) -> float:
    from sqlalchemy import insert

    from cxbot.db import create_engine
    from cxbot.models import Feedback

    await _migrated(database_url)
    engine = create_engine(database_url)
    try:
        started = time.perf_counter()
        async with engine.begin() as connection:
            await connection.execute(insert(Feedback.__table__), rows)
        return time.perf_counter() - started
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--items", type=int, default=50_000, help="feedback items to generate (default 50000)"
    )
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--batch", type=int, default=500, help="items per POST (default 500)")
    parser.add_argument("--connections", type=int, default=2, help="concurrent HTTP connections (default 2)")
    parser.add_argument(
        "--csv-batch", type=int, default=10_000, help="rows per import transaction (default 10000)"
    )
    parser.add_argument(
        "--database-url", help="a PostgreSQL server URL; each leg creates and drops a database of its own"
    )
    parser.add_argument(
        "--webhooks", type=int, default=2_000, help="signed webhook deliveries in leg (d) (default 2000)"
    )
    parser.add_argument(
        "--webhook-concurrency", type=int, default=8, help="concurrent webhook deliveries (default 8)"
    )
    parser.add_argument(
        "--changed-pii",
        action="store_true",
        help="store the customers first; every item then carries a changed name and email",
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=["http", "csv", "baseline", "webhooks"]
    )
    args = parser.parse_args(argv)
    if args.database_url and not args.database_url.startswith(("postgresql", "postgres")):
        parser.error("--database-url must be a PostgreSQL URL (SQLite is the default)")

    items = generate(args.items, seed=args.seed, changed_pii=args.changed_pii)
    seeded = CUSTOMERS if args.changed_pii else 0
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"{len(items):,} items, seed {args.seed}, {backend}, {os.cpu_count()} CPUs, "
        f"{'changed PII on every item, ' if args.changed_pii else ''}"
        f"Python {sys.version.split()[0]}"
    )
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cxbench-") as tmp:
        directory = Path(tmp)
        databases = Databases(args.database_url, directory)
        try:
            if "http" not in args.skip:
                seconds = run_http(
                    items,
                    databases,
                    batch=args.batch,
                    connections=args.connections,
                    customers=seeded,
                )
                rates["http"] = len(items) / seconds
                print(
                    f"(a) HTTP POST /feedback: {rates['http']:>9,.0f} items/s  ({seconds:.2f} s, batches of "
                    f"{args.batch}, {args.connections} connections, all created)"
                )
            if "csv" not in args.skip:
                path = directory / "feedback.csv"
                write_csv(items, path)
                seconds, report = asyncio.run(
                    import_file(path, databases.fresh("csv"), batch=args.csv_batch, customers=seeded)
                )
                if report.errors or report.created != len(items):
                    raise RuntimeError(f"CSV import did not create every row: {report.summary()}")
                rates["csv"] = len(items) / seconds
                print(
                    f"(b) CSV import:          {rates['csv']:>9,.0f} rows/s   ({seconds:.2f} s, batches of "
                    f"{args.csv_batch}; {report.cases:,} cases opened)"
                )
            if "baseline" not in args.skip:
                rows = baseline_rows(items)
                seconds = asyncio.run(insert_baseline(rows, databases.fresh("baseline")))
                rates["baseline"] = len(rows) / seconds
                print(
                    f"(c) raw executemany:     {rates['baseline']:>9,.0f} rows/s   ({seconds:.2f} s, "
                    "one INSERT executemany, one transaction)"
                )
            if "webhooks" not in args.skip:
                sample = items[: args.webhooks]
                hook_seconds, single_seconds = run_webhooks(
                    sample, databases, concurrency=args.webhook_concurrency
                )
                rates["webhooks"] = len(sample) / hook_seconds
                rates["single"] = len(sample) / single_seconds
                print(
                    f"(d) signed webhooks:     {rates['webhooks']:>9,.0f} deliveries/s "
                    f"({hook_seconds:.2f} s, {len(sample):,} Zendesk and Intercom ratings, "
                    f"concurrency {args.webhook_concurrency})"
                )
                print(
                    f"    POST /feedback x1:   {rates['single']:>9,.0f} items/s  "
                    f"({single_seconds:.2f} s, the same items one per request, "
                    f"concurrency {args.webhook_concurrency})"
                )
                print(f"webhooks/feedback: {rates['webhooks'] / rates['single']:.2f}")
        finally:
            databases.drop_all()
    if "baseline" in rates:
        for leg in ("http", "csv"):
            if leg in rates:
                print(f"{leg}/baseline: {rates[leg] / rates['baseline']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
