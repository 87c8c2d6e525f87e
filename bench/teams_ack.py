#!/usr/bin/env python3
"""Teams card clicks under load: signed Action.Execute invokes that write, against a bare handler.

    python bench/teams_ack.py                      # SQLite, 10 and 25 invokes/s for 10 s each
    python bench/teams_ack.py --rates 40 --seconds 20
    python bench/teams_ack.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/teams_ack.py --quick              # a few seconds (tests/test_bench_smoke.py)

The twin of bench/slack_ack.py for Microsoft Teams (issue #13). The real server (`python bot.py
serve`, a subprocess) has Teams configured against the tests' fakes on loopback
(tests/support/fake_microsoft.py): an identity platform publishing OpenID metadata and a JWKS of an
RSA key generated here, and a Bot Connector that takes the outbox's card posts. The bot is installed
in the support team's channel (the recorded `conversationUpdate`), cases are opened through
`POST /feedback` and their cards posted; then, at each rate, Action.Execute invokes arrive on
schedule whether or not earlier ones were answered (open loop), each with its own RS256 Bot Framework
token (minted before the run, so the client's signing is not timed): a third each `take CX-n` (an
agent), `note CX-n …` (an agent) and `ack CX-n` (the manager), each one a write. Teams waits for the
invoke's answer, the refreshed card, which cxbot sends after the transaction committed: the time to
that answer is what a clicker waits for, counted from the moment the invoke was due (so a server that
falls behind is charged for the queue). The outbox's card updates and thread lines after it are timed
apart ("work done").

The same invokes then go, at the same rate, to a bare handler (Starlette on uvicorn, in a subprocess)
that checks the token the same way (handlers.teams.auth, same JWKS) and only answers "ok": the floor
of a Bot Framework endpoint on this stack. Printed: p50 / p99 / max of both and their ratios, and the
machine's load. Afterwards the database is checked: every take, acknowledgement and note must be there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the fakes live with the tests
    sys.path.insert(0, str(ROOT))

from bench.slack_ack import API_KEY, fresh_database, seed  # noqa: E402
from tests.support.databases import postgres_admin  # noqa: E402
from tests.support.fake_microsoft import (  # noqa: E402
    APP_ID,
    APP_PASSWORD,
    TENANT_ID,
    FakeConnector,
    FakeIdentity,
    recorded_activity,
)
from tests.support.server import ServerProcess  # noqa: E402

EXAMPLE = ROOT / "cxbot.example.yaml"
INSTALL = "20191019181214767-request"  # the bot added to the recordings' team
CLICK = "20191020020654953-request"  # an invoke from a card in that team's channel
TEAMS_CHANNEL = "19:097e6717fd7245bdbeba6baa13840db8@thread.skype"
KINDS = ("take", "note", "ack")
CARD = "application/vnd.microsoft.card.adaptive"
TARGET_P99_MS = 1000.0  # well inside the time Teams gives an invoke before it shows the click failed


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    name: str
    object_id: str


def people() -> tuple[Person, Person, Person]:
    """The support manager and its two agents in the example config, with their Entra object ids."""
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["people"]
    manager, first, second = (
        Person(key, raw[key]["name"], raw[key]["msteams"])
        for key in ("support-manager", "support-agent-1", "support-agent-2")
    )
    return manager, first, second


def bench_config(directory: Path) -> Path:
    """The example config with support's Teams channel set to the recordings' channel."""
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    support = next(team for team in raw["teams"] if team["key"] == "support")
    support["msteams"] = {"channel": TEAMS_CHANNEL}
    path = directory / "cxbot.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- servers


def serve_bare() -> None:
    """The floor: the same token check (same JWKS, same validator), then only an answer."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from handlers.teams.app import invoke_message
    from handlers.teams.auth import KeySet, TeamsAuthError, TokenValidator

    http = httpx.AsyncClient(timeout=10)
    validator = TokenValidator(
        KeySet(http, os.environ["TEAMS_OPENID_METADATA_URL"]), app_id=os.environ["TEAMS_APP_ID"]
    )

    async def messages(request: Request) -> Response:
        activity = json.loads(await request.body())
        try:
            await validator.validate(request.headers.get("authorization"), activity)
        except TeamsAuthError as refused:
            return JSONResponse({"error": str(refused)}, status_code=401)
        return JSONResponse(invoke_message("ok"))

    app = Starlette(routes=[Route("/api/messages", messages, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="info", access_log=False)


def server_env(
    database_url: str, config: Path, identity: FakeIdentity, connector: FakeConnector
) -> dict[str, str]:
    """`serve` with Teams configured against the fakes, and Slack off."""
    return {
        "DATABASE_URL": database_url,
        "CXBOT_CONFIG": str(config),
        "CXBOT_API_KEY": API_KEY,
        "TEAMS_APP_ID": APP_ID,
        "TEAMS_APP_PASSWORD": APP_PASSWORD,
        "TEAMS_TENANT_ID": TENANT_ID,
        "TEAMS_OPENID_METADATA_URL": identity.metadata_url,
        "TEAMS_LOGIN_URL": identity.login_url,
        "TEAMS_SERVICE_URL": connector.service_url,
        "SLACK_BOT_TOKEN": "",
        "SLACK_SIGNING_SECRET": "",
        "SLACK_APP_TOKEN": "",
    }


# --------------------------------------------------------------------------- invokes


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str
    case_id: int
    person: Person
    body: bytes
    headers: dict[str, str]


def invoke(command: str, *, activity_id: str, person: Person, service_url: str) -> dict[str, Any]:
    """The recorded channel invoke, as an Action.Execute click of a cxbot card (no recording has one:
    the documented Universal Actions `name` and `value`, as tests/teams/test_teams_outbox.py does)."""
    activity = recorded_activity(
        CLICK,
        service_url=service_url,
        id=activity_id,
        value={
            "action": {"type": "Action.Execute", "verb": "cx", "data": {"command": command}},
            "trigger": "manual",
        },
        **{"from": {"id": f"29:1bench-{person.key}", "name": person.name, "aadObjectId": person.object_id}},
    )
    activity["name"] = "adaptiveCard/action"
    return activity


def signed(activity: dict[str, Any], identity: FakeIdentity) -> tuple[bytes, dict[str, str]]:
    token = identity.mint(service_url=activity["serviceUrl"], lifetime=1800)
    headers = {"Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {token}"}
    return json.dumps(activity).encode("utf-8"), headers


def plan(
    case_ids: list[int], *, count: int, start: int, identity: FakeIdentity, service_url: str
) -> list[Planned]:
    """Takes and acknowledgements on distinct cases (each a state change), notes on any case; ids go on
    from `start` so that no invoke is a redelivery of another."""
    manager, *agents = people()
    takes, acks = iter(case_ids[0::2]), iter(case_ids[1::2])
    planned = []
    for i in range(count):
        kind = KINDS[i % 3]
        if kind == "take":
            case_id, person = next(takes), agents[i % 2]
            command = f"take CX-{case_id}"
        elif kind == "note":
            case_id, person = case_ids[(i * 7) % len(case_ids)], agents[i % 2]
            command = f"note CX-{case_id} called the customer, bench {start + i}"
        else:
            case_id, person = next(acks), manager
            command = f"ack CX-{case_id}"
        activity = invoke(command, activity_id=f"f:bench-{start + i}", person=person, service_url=service_url)
        body, headers = signed(activity, identity)
        planned.append(Planned(kind, case_id, person, body, headers))
    return planned


@dataclass
class Step:
    label: str
    rate: float
    latencies_ms: list[float]
    not_ok: int
    dropped: int
    work: float = 0.0  # seconds from the last answer until the outbox had delivered everything

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms) or [float("nan")]
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def line(self) -> str:
        return (
            f"{self.label:<26} rate {self.rate:g}/s   p50 {self.percentile(50):7.1f} ms   "
            f"p99 {self.percentile(99):7.1f} ms   max {max(self.latencies_ms, default=0):7.1f} ms   "
            f"({len(self.latencies_ms)} invokes, {self.not_ok} not answered as expected, "
            f"{self.dropped} dropped connections)"
        )


async def open_loop(url: str, planned: list[Planned], *, rate: float, label: str, expect: str) -> Step:
    """Send each invoke at its due time (i / rate after the start); time each from then to its answer."""
    latencies: list[float] = []
    not_ok = dropped = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await http.post("/api/messages", content=b"{}")  # open a connection before the clock starts

        async def one(item: Planned, due: float) -> None:
            nonlocal not_ok, dropped
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                response = await http.post("/api/messages", content=item.body, headers=item.headers)
            except httpx.TransportError:
                dropped += 1
                return
            latencies.append((time.perf_counter() - due) * 1000)
            answer = response.json() if response.status_code == 200 else {}
            if answer.get("type") != expect:
                not_ok += 1

        start = time.perf_counter() + 0.05
        await asyncio.gather(*(one(item, start + i / rate) for i, item in enumerate(planned)))
    return Step(label, rate, latencies, not_ok, dropped)


# --------------------------------------------------------------------------- the work after the answers


async def teams_outbox_open(database_url: str) -> int:
    """Teams outbox rows not yet delivered (the Slack ones wait: Slack is not configured here)."""
    from sqlalchemy import func, select

    from cxbot.db import create_engine
    from cxbot.models import OutboxMessage

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.platform == "msteams")
            query = query.where(OutboxMessage.status.in_(("pending", "sending")))
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


def wait_for_outbox(database_url: str, *, timeout: float) -> float:
    """Seconds until the Teams outbox is empty (polled every 50 ms)."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while asyncio.run(teams_outbox_open(database_url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return time.perf_counter() - started


async def check_database(database_url: str, planned: list[Planned]) -> list[str]:
    """Every take, acknowledgement and note the bench sent must be in the database."""
    from sqlalchemy import func, select

    from cxbot.db import create_engine
    from cxbot.models import Case, CaseEvent

    engine = create_engine(database_url)
    problems = []
    try:
        async with engine.connect() as connection:
            for kind, column in (("take", Case.assignee), ("ack", Case.acknowledged_by)):
                wanted = [p for p in planned if p.kind == kind]
                rows = await connection.execute(
                    select(Case.id, column).where(Case.id.in_([p.case_id for p in wanted]))
                )
                found = dict(rows.all())
                bad = [p for p in wanted if found.get(p.case_id) != p.person.key]
                if bad:
                    problems.append(f"{len(bad)} of {len(wanted)} {kind} invokes left no trace on their case")
            notes = (
                await connection.execute(
                    select(func.count()).select_from(CaseEvent).where(CaseEvent.kind == "note")
                )
            ).scalar_one()
            sent = sum(1 for p in planned if p.kind == "note")
            if notes != sent:
                problems.append(f"{notes} notes recorded, {sent} sent")
    finally:
        await engine.dispose()
    return problems


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, directory: Path, identity: FakeIdentity, connector: FakeConnector) -> int:
    database_url, created = fresh_database(args.database_url, directory)
    env = server_env(database_url, bench_config(directory), identity, connector)
    per_rate = {rate: max(3, round(rate * args.seconds)) for rate in args.rates}
    total = sum(per_rate.values())
    cases_needed = 2 * ((total + 2) // 3) + 2 * len(per_rate) + 2
    steps: list[tuple[Step, Step]] = []
    planned_all: list[Planned] = []
    # The bare handler starts beside the real server (it idles until its turn): a shorter run.
    pool = ThreadPoolExecutor(max_workers=1)
    bare_command = [sys.executable, str(Path(__file__).resolve()), "--serve-bare"]
    bare_starting = pool.submit(ServerProcess, env, command=bare_command)
    try:
        with ServerProcess(env) as server:
            install = recorded_activity(INSTALL, service_url=connector.service_url)
            body, headers = signed(install, identity)
            httpx.post(
                f"{server.url}/api/messages", content=body, headers=headers, timeout=30
            ).raise_for_status()
            case_ids = asyncio.run(seed(server.url, cases_needed))
            connector.wait_for("create", len(case_ids), timeout=120)  # the opening cards, posted first
            wait_for_outbox(database_url, timeout=60)
            warm = plan(
                case_ids[-2:], count=1, start=10**6, identity=identity, service_url=connector.service_url
            )
            asyncio.run(open_loop(server.url, warm, rate=10, label="warm-up", expect=CARD))
            planned_all += warm  # checked in the database with the rest
            remaining, start = case_ids[:-2], 0
            plans = {}
            for rate, count in per_rate.items():
                needed = 2 * ((count + 2) // 3)
                plans[rate] = plan(
                    remaining[:needed],
                    count=count,
                    start=start,
                    identity=identity,
                    service_url=connector.service_url,
                )
                remaining, start = remaining[needed:], start + count
            cxbot_steps = {}
            for rate, planned in plans.items():
                cxbot_steps[rate] = asyncio.run(
                    open_loop(server.url, planned, rate=rate, label="cxbot (writes)", expect=CARD)
                )
                cxbot_steps[rate].work = wait_for_outbox(database_url, timeout=120)
                planned_all += planned
        with bare_starting.result() as bare_server:
            asyncio.run(open_loop(bare_server.url, warm, rate=10, label="warm-up", expect="x"))
            for rate, planned in plans.items():
                bare = asyncio.run(
                    open_loop(
                        bare_server.url,
                        planned,
                        rate=rate,
                        label="bare handler (answers)",
                        expect="application/vnd.microsoft.activity.message",
                    )
                )
                steps.append((cxbot_steps[rate], bare))
        problems = asyncio.run(check_database(database_url, planned_all))
    finally:
        pool.shutdown()
        if bare_starting.exception() is None:
            bare_starting.result().stop()  # already stopped, unless the real server's part failed
        if created and args.database_url:
            asyncio.run(
                postgres_admin(args.database_url, f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
            )
    timed = [p for planned in plans.values() for p in planned]
    mix = ", ".join(f"{sum(1 for p in timed if p.kind == k)} {k}" for k in KINDS)
    print(f"{len(case_ids)} cases seeded, their cards posted; {len(timed)} timed invokes: {mix}")
    failed = bool(problems)
    for cxbot, bare in steps:
        print(cxbot.line())
        print(bare.line())
        print(
            f"  ratio cxbot/bare: p50 {cxbot.percentile(50) / bare.percentile(50):.1f}x, "
            f"p99 {cxbot.percentile(99) / bare.percentile(99):.1f}x; outbox (card updates, thread lines) "
            f"empty {cxbot.work:.2f} s after the last answer"
        )
        met = cxbot.percentile(99) < TARGET_P99_MS
        print(f"  target p99 < {TARGET_P99_MS:.0f} ms to the invoke answer: {'met' if met else 'NOT met'}")
        failed = failed or bool(cxbot.not_ok or cxbot.dropped or bare.not_ok or bare.dropped)
    print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if failed:
        print(f"PROBLEMS: {problems}")
        return 1
    print(
        "database checked: every take, acknowledgement and note is recorded; "
        "every answer was the refreshed card"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")], default=[10.0, 25.0],
                        help="invokes per second, comma-separated (default 10,25)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds at each rate (default 10)")
    parser.add_argument("--database-url", help="a PostgreSQL server URL; a database is created and dropped")
    parser.add_argument("--quick", action="store_true", help="12 invokes/s for 1 s (a smoke test)")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare()
        return 0
    if args.quick:
        args.rates, args.seconds = [12.0], 1.0
    if args.database_url and not args.database_url.startswith(("postgresql", "postgres")):
        parser.error("--database-url must be a PostgreSQL URL (SQLite is the default)")
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"{backend}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    with (
        FakeIdentity.running() as identity,
        FakeConnector.running() as connector,
        tempfile.TemporaryDirectory(prefix="cxbench-teams-") as tmp,
    ):
        return run(args, Path(tmp), identity, connector)


if __name__ == "__main__":
    sys.exit(main())
