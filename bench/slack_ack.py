#!/usr/bin/env python3
"""Slack acknowledgement under load: signed commands and clicks that write, against a bare ack-only app.

    python bench/slack_ack.py                      # SQLite file in a temporary directory
    python bench/slack_ack.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The real server (`python bot.py serve`, a subprocess) gets N signed requests at a fixed concurrency
over loopback: `/cx take CX-n`, `/cx note CX-n …` and Acknowledge clicks (`block_actions`), each of
which writes the case, its event and its outbox rows, and answers through `response_url`. cxbot
acknowledges a command or click at once and does that work after the HTTP answer, so the time to the
HTTP response is the time Slack waits for the acknowledgement, not for the work. The work is timed
apart: the bench waits until every `response_url` reply has arrived (each is sent after its
transaction committed) and until the outbox has delivered every card refresh and thread line, and
prints both times and the "work throughput" (requests / time until done). The same requests then go
to a bare Bolt AsyncApp that only acks, served the same way, in the same run: the floor Bolt costs.
The fake Slack Web API (tests/support/fake_slack.py) runs in a child process so that its threads do
not share the client's interpreter. Afterwards the database is checked: every take, acknowledgement
and note must be there, so the numbers are for real work. The cases are spread over `--teams` teams,
each with its own channel (`bench_config`): the outbox keeps to Slack's pace of about a message a
second per channel, so with every case in one channel the "outbox delivered" time was that pace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the fake Slack and the signing helpers live with the tests
    sys.path.insert(0, str(ROOT))

from tests.support.databases import postgres_admin  # noqa: E402
from tests.support.fake_slack import BOT_TOKEN, SIGNING_SECRET, TEAM_ID, FakeSlack, sign  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

CONFIG = ROOT / "cxbot.example.yaml"
API_KEY = "bench-api-key-0123456789abcdef"
CHANNEL = "C0SUPPORT1"
MANAGER, AGENTS = "U0SUPMGR1", ("U0SUPAGT1", "U0SUPAGT2")
KINDS = ("take", "note", "ack")
TARGET_P99_MS = 100.0
TARGET_RATIO = 0.40
FORM = "application/x-www-form-urlencoded"


# --------------------------------------------------------------------------- the fake Slack, apart


def _fake_slack_process(pipe: Any) -> None:
    """Run the tests' fake Slack in its own process; answer `count <method>` questions until `stop`."""
    with FakeSlack.running() as fake:
        pipe.send(fake.api_url)
        while True:
            question = pipe.recv()
            if question == "stop":
                return
            _, method = question.split(" ", 1)
            if method == "respond-failures":
                pipe.send(sum(1 for body in fake.responses() if not _succeeded(body.get("text") or "")))
            else:
                pipe.send(len(fake.calls(method)))


def _succeeded(text: str) -> bool:
    return not text.startswith(("Sorry", "Not allowed")) and "does not exist" not in text


class RemoteFakeSlack:
    """The fake Slack in a child process: its URL, and how many calls of a method it has seen."""

    def __init__(self, target: Callable[[Any], None] | None = None) -> None:
        """`target(pipe)` runs in the child (default: the counting one); it first sends the API URL."""
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=target or _fake_slack_process, args=(child,), daemon=True)
        self._process.start()
        self.api_url: str = self._pipe.recv()
        self.base = self.api_url.removesuffix("/api/")

    def ask(self, question: str) -> Any:
        self._pipe.send(question)
        return self._pipe.recv()

    def count(self, method: str) -> int:
        return int(self.ask(f"count {method}"))

    def wait_for(self, method: str, count: int, *, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        seen = self.count(method)
        while seen < count and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = self.count(method)
        return seen

    def close(self) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=10)


# --------------------------------------------------------------------------- servers


def serve_bare() -> None:
    """The floor: a Bolt AsyncApp with the same secret and settings whose listeners only ack()."""
    import logging

    import uvicorn
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    app = AsyncApp(
        client=AsyncWebClient(token=BOT_TOKEN, base_url=os.environ["SLACK_API_URL"], retry_handlers=[]),
        signing_secret=SIGNING_SECRET,
        request_verification_enabled=True,
        process_before_response=True,
        logger=logging.getLogger("slack_bolt"),
    )

    async def only_ack(ack: AsyncAck) -> None:
        await ack()

    app.command("/cx")(only_ack)
    app.action(re.compile(".*"))(only_ack)
    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    starlette = Starlette(routes=[Route("/slack/events", events, methods=["POST"])])
    uvicorn.run(starlette, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="info", access_log=False)


def serve_profiled(output: Path) -> None:
    """`bot.py serve` under cProfile (the event loop's thread), written out when the server stops."""
    import cProfile
    import signal

    from cxbot.cli import main as cli_main
    from handlers import load_platforms

    def stop(*_: object) -> None:
        raise SystemExit(0)

    # uvicorn re-raises the SIGTERM it handled once it has shut down; end normally so the profile is kept.
    signal.signal(signal.SIGTERM, stop)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        cli_main(["serve"], platforms=load_platforms)
    finally:
        profiler.disable()
        profiler.dump_stats(str(output))


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str
    case_id: int
    user: str
    body: str


def command_body(text: str, *, user: str, response_url: str) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "cxbot-bench",
            "channel_id": CHANNEL,
            "channel_name": "support",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/cx",
            "text": text,
            "api_app_id": "A0CXBOT01",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": "1337.42.abcd",
        }
    )


def click_body(case_id: int, *, user: str, response_url: str) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0CXBOT01",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": CHANNEL},
        "trigger_id": "1337.42.abcd",
        "team": {"id": TEAM_ID, "domain": "cxbot-bench"},
        "channel": {"id": CHANNEL, "name": "support"},
        "message": {"type": "message", "ts": "1700000000.000001", "text": "card"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": f"cx_ack:{case_id}",
                "block_id": f"cx_case:{case_id}",
                "type": "button",
                "value": str(case_id),
                "action_ts": "1700000001.000001",
            }
        ],
        "is_enterprise_install": False,
    }
    return urlencode({"payload": json.dumps(payload)})


def plan(case_ids: list[int], *, count: int, fake_base: str) -> list[Planned]:
    """Takes and acknowledgements on distinct cases (each one a state change), notes on any case."""
    takes = iter(case_ids[0::2])
    acks = iter(case_ids[1::2])
    planned = []
    for i in range(count):
        kind = KINDS[i % 3]
        url = f"{fake_base}/respond/bench-{i}"
        if kind == "take":
            case_id, user = next(takes), AGENTS[i % 2]
            body = command_body(f"take CX-{case_id}", user=user, response_url=url)
        elif kind == "note":
            case_id, user = case_ids[(i * 7) % len(case_ids)], AGENTS[i % 2]
            body = command_body(
                f"note CX-{case_id} called the customer, bench {i}", user=user, response_url=url
            )
        else:
            case_id, user = next(acks), MANAGER
            body = click_body(case_id, user=user, response_url=url)
        planned.append(Planned(kind, case_id, user, body))
    return planned


@dataclass
class Result:
    label: str
    seconds: float
    latencies_ms: list[float]
    failures: int

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def line(self) -> str:
        return (
            f"{self.label:<28} {self.rate:>7,.0f} req/s   p50 {self.percentile(50):6.1f} ms   "
            f"p99 {self.percentile(99):6.1f} ms   max {max(self.latencies_ms):6.1f} ms   "
            f"({len(self.latencies_ms)} requests, {self.seconds:.2f} s, {self.failures} not 200)"
        )


def signed_headers(body: str) -> dict[str, str]:
    """Headers Slack sends with `body`, signed now (so the timestamp is fresh)."""
    stamp = int(time.time())
    return {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": sign(SIGNING_SECRET, body, stamp),
    }


async def fire(url: str, bodies: list[str], *, concurrency: int, label: str) -> Result:
    """Send every body signed (signed now, so the timestamp is fresh) from `concurrency` workers."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    failures = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            body = queue.get_nowait()
            headers = signed_headers(body)
            started = time.perf_counter()
            response = await client.post("/slack/events", content=body.encode(), headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                failures += 1

    # One client (one keep-alive connection) per worker, as each of Slack's requests is on its own:
    # a single pooled client serialises 32 workers on its pool and measures httpx, not the server.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=limits) for _ in range(concurrency)]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for client in clients))
        seconds = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    return Result(label, seconds, latencies, failures)


# --------------------------------------------------------------------------- the organisation


def touchpoint_key(n: int) -> str:
    return f"bench-tp-{n:03d}"


def bench_config(directory: Path, teams: int) -> Path:
    """The example configuration's people and settings with `teams` teams, each its own channel and
    touchpoint (and no digests, so none falls due during a run); written to `directory`.

    Spread over many channels, cases meet Slack's pace of about a message a second per channel the
    way a real organisation's do: one channel for everything would time that pace, not cxbot."""
    config = yaml.safe_load(CONFIG.read_text())
    config["teams"] = [
        {
            "key": f"bench-{n:03d}",
            "name": f"Bench team {n}",
            "sla_policy": "standard",
            "digest": {"enabled": False},
            "slack": {"channel": f"C0BENCH{n:04d}"},
            "managers": ["support-manager"],
            "members": ["support-agent-1", "support-agent-2"],
        }
        for n in range(teams)
    ]
    config["touchpoints"] = [{"key": touchpoint_key(n), "team": f"bench-{n:03d}"} for n in range(teams)]
    config["routing"] = {"rules": [], "fallback_team": "bench-000"}
    config.pop("leadership", None)
    path = directory / "cxbot.bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def seed(url: str, count: int, *, teams: int | None = None) -> list[int]:
    """`count` negative CSAT responses, each opening a case: on `bench_config`'s teams' touchpoints
    in turn, or (no `teams`) all at the example configuration's support phone line."""
    items = [
        {
            "external_id": f"bench-{i}",
            "source": "bench",
            "metric": "csat",
            "score": 1,
            "comment": "Waited an hour on the phone",
            "touchpoint": touchpoint_key(i % teams) if teams else "Inbound",
            "customer": {"id": f"cust-{i % 500}"},
        }
        for i in range(count)
    ]
    return await open_cases(url, items)


async def open_cases(url: str, items: list[dict[str, Any]]) -> list[int]:
    """POST negative `items` to /feedback 500 at a time; the ids of the cases they opened, in order."""
    cases: list[int] = []
    async with httpx.AsyncClient(
        base_url=url, timeout=120, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as http:
        for start in range(0, len(items), 500):
            answer = await http.post("/feedback", json=items[start : start + 500])
            answer.raise_for_status()
            cases += [int(r["case"].removeprefix("CX-")) for r in answer.json()["results"]]
    return cases


def warm_up_bodies(fake_base: str, count: int) -> list[str]:
    return [
        command_body("help", user=AGENTS[0], response_url=f"{fake_base}/respond/warm-{i}")
        for i in range(count)
    ]


# --------------------------------------------------------------------------- waiting for the work


async def outbox_open(database_url: str) -> int:
    """Outbox rows not yet delivered (pending or being sent)."""
    from sqlalchemy import func, select

    from cxbot.db import create_engine
    from cxbot.models import OutboxMessage

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).select_from(OutboxMessage)
            query = query.where(OutboxMessage.status.in_(("pending", "sending")))
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


@dataclass
class Work:
    """When the work behind the answers was done, counted from the first request sent."""

    requests: int
    replied: float  # seconds until the last response_url reply arrived
    delivered: float  # seconds until the outbox had nothing left to deliver

    def line(self) -> str:
        return (
            f"{'cxbot work done':<28} {self.requests / self.replied:>7,.0f} req/s   every reply sent after "
            f"{self.replied:.2f} s; outbox delivered after {self.delivered:.2f} s "
            f"({self.requests / self.delivered:,.0f} req/s)"
        )


def wait_for_work(
    fake: RemoteFakeSlack, database_url: str, *, started: float, requests: int, replies_before: int
) -> Work:
    """Poll the fake Slack for the replies, then the database for an empty outbox (every 50 ms)."""
    deadline = time.monotonic() + 300
    while fake.count("respond") < replies_before + requests and time.monotonic() < deadline:
        time.sleep(0.05)
    replied = time.perf_counter() - started
    while asyncio.run(outbox_open(database_url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return Work(requests, replied, time.perf_counter() - started)


# --------------------------------------------------------------------------- checking the work


async def check_database(database_url: str, planned: list[Planned]) -> list[str]:
    """Every take, acknowledgement and note the bench sent must be in the database."""
    from sqlalchemy import func, select

    from cxbot.config import load_config
    from cxbot.db import create_engine
    from cxbot.models import Case, CaseEvent, OutboxMessage

    person_of = load_config(CONFIG).person_of  # a Slack user of `people:` is recorded as the person
    wanted = {kind: [p for p in planned if p.kind == kind] for kind in KINDS}
    engine = create_engine(database_url)
    problems = []
    try:
        async with engine.connect() as connection:
            taken = dict(
                (
                    await connection.execute(
                        select(Case.id, Case.assignee).where(Case.id.in_([p.case_id for p in wanted["take"]]))
                    )
                ).all()
            )
            bad = [p for p in wanted["take"] if taken.get(p.case_id) != person_of(p.user)]
            if bad:
                problems.append(f"{len(bad)} taken cases are not assigned to who took them")
            acked = dict(
                (
                    await connection.execute(
                        select(Case.id, Case.acknowledged_by).where(
                            Case.id.in_([p.case_id for p in wanted["ack"]])
                        )
                    )
                ).all()
            )
            bad = [p for p in wanted["ack"] if acked.get(p.case_id) != person_of(MANAGER)]
            if bad:
                problems.append(f"{len(bad)} clicked cases were not acknowledged by the manager")
            notes = (
                await connection.execute(
                    select(func.count()).select_from(CaseEvent).where(CaseEvent.kind == "note")
                )
            ).scalar_one()
            if notes != len(wanted["note"]):
                problems.append(f"{notes} notes recorded, {len(wanted['note'])} sent")
            queued = (
                await connection.execute(
                    select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "case.thread")
                )
            ).scalar_one()
            if queued != len(planned):
                problems.append(f"{queued} thread lines queued in the outbox, {len(planned)} expected")
    finally:
        await engine.dispose()
    return problems


# --------------------------------------------------------------------------- main


def fresh_database(postgres_url: str | None, directory: Path) -> tuple[str, str | None]:
    """A SQLite file, or a new PostgreSQL database (its name returned, to drop it afterwards)."""
    if postgres_url is None:
        return f"sqlite:///{directory / 'bench.db'}", None
    from sqlalchemy.engine import make_url

    name = f"cxbench_ack_{uuid.uuid4().hex[:8]}"
    asyncio.run(postgres_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    return make_url(postgres_url).set(database=name).render_as_string(hide_password=False), name


def server_env(database_url: str, slack_api_url: str) -> dict[str, str]:
    """`serve` in HTTP mode on this database, posting to the fake Slack."""
    return {
        "DATABASE_URL": database_url,
        "CXBOT_CONFIG": str(CONFIG),
        "CXBOT_API_KEY": API_KEY,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api_url,
        "SLACK_APP_TOKEN": "",
    }


def run(args: argparse.Namespace, directory: Path, fake: RemoteFakeSlack) -> int:
    database_url, created = fresh_database(args.database_url, directory)
    env = server_env(database_url, fake.api_url) | {"CXBOT_CONFIG": str(bench_config(directory, args.teams))}
    cases_needed = 2 * ((args.requests + 2) // 3) + 2
    try:
        serve = [sys.executable, "bot.py", "serve"]
        if args.profile:
            serve = [sys.executable, str(Path(__file__).resolve()), "--serve-profiled", str(args.profile)]
        with ServerProcess(env, command=serve) as server:
            case_ids = asyncio.run(seed(server.url, cases_needed, teams=args.teams))
            # Let the outbox post the opening cards first, so the run measures the requests alone.
            posted = fake.wait_for("chat.postMessage", len(case_ids), timeout=120)
            planned = plan(case_ids, count=args.requests, fake_base=fake.base)
            warm = warm_up_bodies(fake.base, args.concurrency * 2)
            asyncio.run(fire(server.url, warm, concurrency=args.concurrency, label="warm-up"))
            fake.wait_for("respond", len(warm), timeout=60)
            replies_before = fake.count("respond")
            started = time.perf_counter()
            cxbot = asyncio.run(
                fire(
                    server.url,
                    [p.body for p in planned],
                    concurrency=args.concurrency,
                    label="cxbot (writes)",
                )
            )
            work = wait_for_work(
                fake, database_url, started=started, requests=len(planned), replies_before=replies_before
            )
        bare_command = [sys.executable, str(Path(__file__).resolve()), "--serve-bare"]
        with ServerProcess(env, command=bare_command) as bare_server:
            asyncio.run(fire(bare_server.url, warm, concurrency=args.concurrency, label="warm-up"))
            bare = asyncio.run(
                fire(
                    bare_server.url,
                    [p.body for p in planned],
                    concurrency=args.concurrency,
                    label="bare AsyncApp (ack only)",
                )
            )
        problems = asyncio.run(check_database(database_url, planned))
    finally:
        if created and args.database_url:
            asyncio.run(
                postgres_admin(args.database_url, f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
            )
    failed_replies = fake.count("respond-failures")
    mix = ", ".join(f"{sum(1 for p in planned if p.kind == k)} {k}" for k in KINDS)
    print(f"{len(case_ids)} cases seeded ({posted} opening cards delivered); {len(planned)} requests: {mix}")
    print(cxbot.line())
    print(bare.line())
    print(work.line())
    ratio = cxbot.rate / bare.rate
    p99_ok = cxbot.percentile(99) < TARGET_P99_MS
    ratio_ok = ratio >= TARGET_RATIO
    print(f"throughput ratio cxbot/bare: {ratio:.2f}")
    print(
        f"targets: p99 < {TARGET_P99_MS:.0f} ms {'met' if p99_ok else 'NOT met'}; "
        f"≥ {TARGET_RATIO:.0%} of ack-only throughput {'met' if ratio_ok else 'NOT met'}"
    )
    print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if cxbot.failures or bare.failures or failed_replies or problems:
        print(f"PROBLEMS: {problems}; {failed_replies} failed replies")
        print(f"HTTP answers other than 200: cxbot {cxbot.failures}, bare {bare.failures}")
        return 1
    print("database checked: every take, acknowledgement and note is recorded, with its outbox rows")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per server (default 2000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument(
        "--teams",
        type=int,
        default=100,
        help="teams, each with its own channel, the cases spread over (default 100)",
    )
    parser.add_argument("--database-url", help="a PostgreSQL server URL; a database is created and dropped")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the cxbot server to this file")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-profiled", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_profiled:
        serve_profiled(args.serve_profiled)
        return 0
    if args.serve_bare:
        serve_bare()
        return 0
    if args.database_url and not args.database_url.startswith(("postgresql", "postgres")):
        parser.error("--database-url must be a PostgreSQL URL (SQLite is the default)")
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"{backend}, concurrency {args.concurrency}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    fake = RemoteFakeSlack()
    try:
        with tempfile.TemporaryDirectory(prefix="cxbench-ack-") as tmp:
            return run(args, Path(tmp), fake)
    finally:
        fake.close()


if __name__ == "__main__":
    sys.exit(main())
