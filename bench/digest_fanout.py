#!/usr/bin/env python3
"""Digest fan-out: N teams (500 by default), each with its own Slack channel, all due in the same minute.

    python bench/digest_fanout.py                       # SQLite file, one `serve`
    python bench/digest_fanout.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/digest_fanout.py --database-url ... --replicas 2

Real parts end to end: `python bot.py serve` (one process per replica, on one database) posts to
the tests' fake Slack Web API (tests/support/fake_slack.py), which runs in a child process of its own
and records when each `chat.postMessage` arrived. Every team's digest is due at the same UTC minute,
a little after the servers are up, so the scheduler's tick at second 0 of that minute is the one that
finds them all; the outbox worker delivers them paced per channel, as `serve` runs it. The history
holds `--answers` answers per team and day over the 28-day window, so each digest has real work.

It prints the time from the minute to the last digest posted, p50/p99/max of each digest's lag
(post time minus the minute), how many channels got a second copy, and the runs recorded in
`digest_runs` (one per team and day, all `sent`).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the fake Slack and the database helpers live with the tests
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.digest import load_postgres, load_sqlite  # noqa: E402
from cxbot.config import load_config  # noqa: E402
from cxbot.db import create_engine, session_factory, upgrade  # noqa: E402
from cxbot.directory import sync_directory  # noqa: E402
from cxbot.models import DigestRun  # noqa: E402
from tests.support.databases import postgres_admin  # noqa: E402
from tests.support.fake_slack import BOT_TOKEN, SIGNING_SECRET, Call, FakeSlack  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

TARGET_SECONDS = 15.0
#: Time for the servers to start (migrate, sync the directory, start the scheduler) before the minute.
STARTUP_MARGIN = timedelta(seconds=30)
THRESHOLDS = {"nps": 6, "csat": 2, "ces": 3}


def team_key(index: int) -> str:
    return f"team-{index:03d}"


def channel(index: int) -> str:
    return f"C0FAN{index:05d}"


def write_config(path: Path, *, teams: int, due: datetime) -> None:
    """N teams in UTC, digests at the same minute, each posting to its own channel."""
    config = {
        "teams": [
            {
                "key": team_key(i),
                "name": f"Team {i:03d}",
                "timezone": "UTC",
                "digest": {"time": due.strftime("%H:%M"), "cutoff": "3h"},
                "slack": {"channel": channel(i)},
            }
            for i in range(teams)
        ],
        "routing": {"fallback_team": team_key(0)},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def generate(*, teams: int, answers: int, today: datetime, seed: int = 1) -> Iterator[tuple]:
    """`answers` answers per team and day over the 29 days before `today`; about a third negative."""
    rng = random.Random(seed)
    serial = 0
    for back in range(29, 0, -1):
        start = today - timedelta(days=back)
        for team in range(teams):
            for _ in range(answers):
                serial += 1
                at = start + timedelta(seconds=rng.randrange(86400))
                metric = rng.choice(("nps", "nps", "csat", "ces"))
                score = {"nps": rng.randrange(11), "csat": rng.randrange(1, 6), "ces": rng.randrange(1, 8)}
                negative = score[metric] <= THRESHOLDS[metric]
                comment = "Waited 40 minutes on the phone" if negative and rng.random() < 0.5 else None
                row = ("bench", f"f{serial:09d}", metric, float(score[metric]), comment, team_key(team))
                yield (*row, negative, "[]", at, at, at)


async def seed_teams(url: str, config_path: Path) -> None:
    """The teams' rows, which the feedback rows refer to (`serve` syncs them again on start)."""
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await sync_directory(session, config=load_config(config_path))
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- the fake Slack, apart


def _fake_slack_process(pipe: Any) -> None:
    """The tests' fake Slack, recording when each post arrived; answers `posts` until `stop`."""
    arrivals: list[tuple[str, float]] = []

    def arrived(call: Call, _answer: object) -> None:
        arrivals.append((str(call.body.get("channel")), time.time()))

    with FakeSlack.running() as fake:
        fake.on_call("chat.postMessage", arrived)
        pipe.send(fake.api_url)
        while (question := pipe.recv()) != "stop":
            pipe.send(list(arrivals) if question == "posts" else len(arrivals))


class RemoteFakeSlack:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_fake_slack_process, args=(child,), daemon=True)
        self._process.start()
        self.api_url: str = self._pipe.recv()

    def ask(self, question: str) -> Any:
        self._pipe.send(question)
        return self._pipe.recv()

    def close(self) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=10)


# --------------------------------------------------------------------------- the run


async def recorded_runs(url: str) -> Counter[str]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.execute(select(DigestRun.status, func.count()).group_by(DigestRun.status))
            return Counter({status: count for status, count in rows.all()})
    finally:
        await engine.dispose()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(args: argparse.Namespace, url: str, directory: Path, fake: RemoteFakeSlack) -> int:
    now = datetime.now(UTC)
    due = (now + STARTUP_MARGIN).replace(second=0, microsecond=0) + timedelta(minutes=1)
    config = directory / "cxbot.yaml"
    write_config(config, teams=args.teams, due=due)
    asyncio.run(upgrade(url))
    asyncio.run(seed_teams(url, config))
    today = due.replace(hour=0, minute=0)
    rows = generate(teams=args.teams, answers=args.answers, today=today)
    started = time.perf_counter()
    if url.startswith("sqlite"):
        load_sqlite(Path(make_url(url).database or ""), rows)
    else:
        asyncio.run(load_postgres(url, rows))
    print(f"loaded {args.teams * args.answers * 29:,} answers in {time.perf_counter() - started:.1f} s")
    env = {
        "DATABASE_URL": url,
        "CXBOT_CONFIG": str(config),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        "SLACK_APP_TOKEN": "",
    }
    servers = [ServerProcess(env) for _ in range(args.replicas)]
    try:
        if datetime.now(UTC) >= due:
            print(f"the servers took too long to start: {due:%H:%M:%S} has passed")
            return 1
        print(f"{args.replicas} replica(s) up; {args.teams} digests due at {due:%H:%M:%S} UTC")
        deadline = due.timestamp() + args.timeout
        while time.time() < deadline and fake.ask("count") < args.teams:
            time.sleep(0.2)
        time.sleep(args.settle)  # a second copy, if any, would come now
        posts: list[tuple[str, float]] = fake.ask("posts")
    finally:
        for server in servers:
            server.stop()
    per_channel = Counter(name for name, _ in posts)
    first_post = {}
    for name, at in posts:
        first_post.setdefault(name, at)
    lags = [at - due.timestamp() for at in first_post.values()]
    duplicates = sum(count - 1 for count in per_channel.values())
    missing = args.teams - len(first_post)
    runs = asyncio.run(recorded_runs(url))
    label = f"{'SQLite' if url.startswith('sqlite') else 'PostgreSQL'}, {args.replicas} replica(s)"
    if not lags:
        print(f"{label}: no digest posted within {args.timeout:.0f} s")
        return 1
    last = max(lags)
    print(
        f"{label}: {len(first_post)}/{args.teams} digests posted; last {last:.1f} s after the minute "
        f"(target {TARGET_SECONDS:.0f} s: {'met' if last <= TARGET_SECONDS and not missing else 'NOT met'})"
    )
    print(
        f"  per-digest lag p50 {statistics.median(lags):.1f} s, p99 {percentile(lags, 0.99):.1f} s, "
        f"max {last:.1f} s; first {min(lags):.1f} s"
    )
    print(f"  duplicates {duplicates}, missing {missing}; digest_runs {dict(sorted(runs.items()))}")
    return 0 if not missing and not duplicates else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a database is created and dropped)")
    parser.add_argument("--teams", type=int, default=500, help="teams due in the same minute (default 500)")
    parser.add_argument("--answers", type=int, default=10, help="answers per team and day (default 10)")
    parser.add_argument("--replicas", type=int, default=1, help="`serve` processes on the database")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds after the minute to wait")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait for second copies")
    args = parser.parse_args()
    fake = RemoteFakeSlack()
    with tempfile.TemporaryDirectory(prefix="cxbot-bench-fanout-") as temp:
        directory = Path(temp)
        try:
            if not args.database_url:
                return run(args, f"sqlite:///{directory / 'cxbot.db'}", directory, fake)
            name = f"cxbot_bench_fanout_{uuid.uuid4().hex[:8]}"
            asyncio.run(postgres_admin(args.database_url, f'CREATE DATABASE "{name}"'))
            try:
                url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
                return run(args, url, directory, fake)
            finally:
                drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
                asyncio.run(postgres_admin(args.database_url, drop))
        finally:
            fake.close()


if __name__ == "__main__":
    sys.exit(main())
