#!/usr/bin/env python3
"""What a user waits for under sustained load: open-loop arrivals at fixed rates (issue #15).

    python bench/latency.py                                  # SQLite, rates 10, 20, 40, 60 commands/s
    python bench/latency.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/latency.py --rates 40 --seconds 60          # the issue's target load
    python bench/latency.py --quick                          # a few seconds (tests/test_bench_smoke.py)
    python bench/latency.py --plot docs/latency.png          # also draw p99 against rate (per database)

The real server (`python bot.py serve`, a subprocess) gets, at each rate, signed `/cx` commands at
that rate (a third each `note CX-n …`, `take CX-n`, `list mine`) and `POST /feedback` items at 1.25×
that rate (one in five negative: each opens a case whose card goes to the team's channel), sent on
schedule whether or not earlier requests were answered (open loop: a server that falls behind
builds a queue, as with real users).

Its configuration is the example's people and settings with `--teams` teams (100 by default), each
with its own channel and touchpoint; negatives go to the touchpoints in turn, as a CX organisation's
feedback reaches many teams. Slack takes about one message a second per channel (the outbox keeps
to that pace, cxbot/outbox/pacing.py), and every note or take also posts a card refresh and a thread
line to its case's channel: sent to one channel, cards would wait for that channel's pace, not for
the server. The seed's cards are delivered (the outbox empty) before the first rate starts.

The fake Slack (tests/support/fake_slack.py) runs in its own process and notes when each
`response_url` reply and each new card arrives. Per rate it prints:

- **ack**: time to the HTTP answer of a command (what Slack waits for, 3 s at most);
- **reply**: time from sending the command to its `response_url` post reaching the fake Slack (what
  the user waits for);
- **card**: time from sending a negative item to its case card reaching the channel;
- p50 / p99 / max of each, connections dropped (transport errors), answers other than 200, and
  replies or cards that never came (waited for up to `--drain` seconds after the rate's last send).

Then the **capacity**: the highest rate tried at which reply p99 < 1 s and card p99 < 3 s with
nothing dropped or missing. Each rate starts only once the previous one's work has arrived and the
outbox is empty. Times are wall-clock (`time.time()`, the same machine on both sides).

`--plot FILE.png` keeps each database's figures in FILE.json beside it and draws reply and card p99
against the rate for every database recorded there (run once per database).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the fake Slack and the other bench's helpers
    sys.path.insert(0, str(ROOT))

from bench.slack_ack import (  # noqa: E402
    AGENTS,
    API_KEY,
    RemoteFakeSlack,
    bench_config,
    command_body,
    fresh_database,
    outbox_open,
    seed,
    server_env,
    signed_headers,
    touchpoint_key,
)
from cxbot.outbox.pacing import CHANNEL_PACE  # noqa: E402
from handlers.slack.commands import QUEUED  # noqa: E402
from tests.support.databases import postgres_admin  # noqa: E402
from tests.support.fake_slack import Answer, Call, FakeSlack  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

REPLY_P99_S = 1.0
CARD_P99_S = 3.0
FEEDBACK_PER_COMMAND = 1.25  # the 50 feedback/s beside 40 commands/s
NEGATIVE_EVERY = 5
DEFAULT_TEAMS = 100
BUSY_PREFIX = QUEUED.split(":", 1)[0]
SLICE_SECONDS = 10.0
GC_SAMPLE = re.compile(
    r'cxbot_gc_pause_seconds_(?P<what>count|sum)\{generation="(?P<generation>\d)"\} (?P<value>\S+)'
)
DEFAULT_RATES = [10.0, 20.0, 30.0, 40.0, 50.0]


def wait_for_empty_outbox(database_url: str, *, timeout: float) -> int:
    """Poll the database until nothing is pending or being sent; the rows still open at the end."""
    deadline = time.monotonic() + timeout
    while (left := asyncio.run(outbox_open(database_url))) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


# --------------------------------------------------------------------------- the fake Slack, timing


def _timing_fake(pipe: Any) -> None:
    """The fake Slack in a child process, noting when each reply and each new card arrived."""
    arrived: dict[str, float] = {}

    def reply(call: Call, _: Answer | None) -> None:
        # "Busy, your command is queued" comes before the answer: the answer is what is timed.
        told_busy = str(call.body.get("text", "")).startswith(BUSY_PREFIX)
        arrived.setdefault(("busy " if told_busy else "reply ") + call.path.rsplit("/", 1)[-1], time.time())

    def post(call: Call, _: Answer | None) -> None:
        if "thread_ts" not in call.body:  # a card (its text starts with the case reference)
            arrived.setdefault("card " + str(call.body.get("text", "")).split(" ", 1)[0], time.time())

    with FakeSlack.running() as fake:
        fake.on_call("respond", reply)
        fake.on_call("chat.postMessage", post)
        pipe.send(fake.api_url)
        while True:
            question = pipe.recv()
            if question == "stop":
                return
            if question == "arrived":
                pipe.send(dict(arrived))
            else:
                pipe.send(len(fake.calls(question.removeprefix("count "))))


# --------------------------------------------------------------------------- one rate


@dataclass
class Sent:
    """One request: what it was, when it left, its answer, and what the user should then see."""

    kind: str  # note | take | list | feedback
    sent: float
    answered: float | None = None
    status: int | None = None
    dropped: str | None = None
    expects: str | None = None  # the fake's key: "reply <name>" or "card CX-n"


@dataclass
class Step:
    commands_per_s: float
    feedback_per_s: float
    seconds: float
    sent: list[Sent] = field(default_factory=list)
    arrived: dict[str, float] = field(default_factory=dict)
    #: CPU seconds the server process used from the rate's first send until its work had arrived.
    server_cpu: float | None = None
    elapsed: float = 0.0
    #: The server's garbage collections over the rate, from /metrics: {generation: (count, seconds)}.
    collections: dict[str, tuple[int, float]] = field(default_factory=dict)

    def waits(self, prefix: str) -> tuple[list[float], int]:
        """Seconds from send to arrival of each `prefix` arrival expected, and how many never came."""
        times, missing = [], 0
        for request in self.sent:
            if request.expects and request.expects.startswith(prefix):
                at = self.arrived.get(request.expects)
                if at is None:
                    missing += 1
                else:
                    times.append(at - request.sent)
        return times, missing

    @property
    def told_busy(self) -> int:
        """Commands whose user was told "busy, queued" before the answer."""
        return sum(1 for key in self.arrived if key.startswith("busy "))

    def slices(self) -> str:
        """Reply and card p99 of the requests sent in each slice of the run: when a queue built up."""
        if not self.sent:
            return "(none)"
        start = min(r.sent for r in self.sent)
        parts = []
        for first in range(0, max(1, int(self.seconds)), int(SLICE_SECONDS)):
            inside = [r for r in self.sent if first <= r.sent - start < first + SLICE_SECONDS and r.expects]
            waits = {
                prefix: [
                    self.arrived[r.expects] - r.sent
                    for r in inside
                    if r.expects.startswith(prefix) and r.expects in self.arrived
                ]
                for prefix in ("reply ", "card ")
            }
            parts.append("/".join(f"{1000 * percentile(w, 99):.0f}" if w else "-" for w in waits.values()))
        return "  ".join(parts)

    def acks(self) -> list[float]:
        return [r.answered - r.sent for r in self.sent if r.kind != "feedback" and r.answered is not None]

    @property
    def dropped(self) -> int:
        return sum(1 for r in self.sent if r.dropped)

    @property
    def not_200(self) -> int:
        return sum(1 for r in self.sent if r.status is not None and r.status != 200)

    def meets_targets(self) -> bool:
        replies, lost_replies = self.waits("reply ")
        cards, lost_cards = self.waits("card ")
        return (
            bool(replies and cards)
            and not (lost_replies or lost_cards or self.dropped or self.not_200)
            and percentile(replies, 99) < REPLY_P99_S
            and percentile(cards, 99) < CARD_P99_S
        )

    def lines(self) -> list[str]:
        replies, lost_replies = self.waits("reply ")
        cards, lost_cards = self.waits("card ")
        verdict = "meets" if self.meets_targets() else "MISSES"
        return [
            f"rate {self.commands_per_s:g} commands/s + {self.feedback_per_s:g} feedback/s for "
            f"{self.seconds:g} s: {len(self.sent)} requests, {self.dropped} dropped connections, "
            f"{self.not_200} not 200, {lost_replies} replies and {lost_cards} cards missing; {verdict} "
            f"reply p99 < {REPLY_P99_S:g} s and card p99 < {CARD_P99_S:g} s",
            f"  ack    {summary(self.acks())}",
            f"  reply  {summary(replies)}   ({self.told_busy} told busy first)",
            f"  card   {summary(cards)}",
            f"  p99 by {SLICE_SECONDS:g} s of sending, reply / card ms: {self.slices()}",
            f"  server CPU {self.server_cpu:.1f} s in {self.elapsed:.1f} s "
            f"({self.server_cpu / max(self.elapsed, 1e-9):.0%} of one core; "
            f"{1000 * self.server_cpu / max(len(self.sent), 1):.1f} ms per request)"
            if self.server_cpu is not None
            else "  server CPU (not measured: no /proc)",
            "  server GC: "
            + (
                ", ".join(
                    f"gen{g} {n} in {1000 * t:.0f} ms" for g, (n, t) in sorted(self.collections.items())
                )
                or "(not reported)"
            ),
        ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def summary(seconds: list[float]) -> str:
    if not seconds:
        return "(none)"
    ms = [s * 1000 for s in seconds]
    return (
        f"p50 {percentile(ms, 50):8.1f} ms   p99 {percentile(ms, 99):8.1f} ms   max {max(ms):8.1f} ms"
        f"   ({len(ms)})"
    )


class Load:
    """The requests of the whole run: cases to take, numbering of replies and feedback."""

    def __init__(self, fake_base: str, case_ids: list[int], *, teams: int) -> None:
        self.fake_base = fake_base
        self.untaken = iter(case_ids)
        self.case_ids = case_ids
        self.teams = teams
        self.commands = itertools.count()  # apart, so a third of the commands are takes whatever the mix
        self.items = itertools.count()

    def command(self) -> tuple[str, str, str]:
        """(kind, form body, reply name) of the next command: note, take, list mine in turn."""
        n = next(self.commands)
        name = f"lat-{n}"
        url = f"{self.fake_base}/respond/{name}"
        user = AGENTS[n % 2]
        kind = ("note", "take", "list")[n % 3]
        if kind == "note":
            case_id = self.case_ids[(n * 7) % len(self.case_ids)]
            text = f"note CX-{case_id} called the customer back, bench {n}"
        elif kind == "take":
            text = f"take CX-{next(self.untaken)}"
        else:
            text = "list mine"
        return kind, command_body(text, user=user, response_url=url), name

    def feedback(self) -> dict[str, Any]:
        n = next(self.items)
        negative = n % NEGATIVE_EVERY == 0
        # Negatives go to the teams in turn (the n-th negative to team n mod teams), positives anywhere.
        team = (n // NEGATIVE_EVERY if negative else n) % self.teams
        return {
            "external_id": f"lat-{n}",
            "source": "bench",
            "metric": "csat",
            "score": 1 if negative else 5,
            "comment": "Waited an hour on the phone" if negative else "Quick and friendly",
            "touchpoint": touchpoint_key(team),
            "customer": {"id": f"cust-{n % 300}"},
        }


async def send_command(http: httpx.AsyncClient, load: Load, sent: list[Sent]) -> None:
    kind, body, name = load.command()
    request = Sent(kind, time.time(), expects=f"reply {name}")
    sent.append(request)
    try:
        answer = await http.post("/slack/events", content=body.encode(), headers=signed_headers(body))
    except httpx.TransportError as error:
        request.dropped = type(error).__name__
        return
    request.answered, request.status = time.time(), answer.status_code


async def send_feedback(http: httpx.AsyncClient, load: Load, sent: list[Sent]) -> None:
    request = Sent("feedback", time.time())
    sent.append(request)
    try:
        answer = await http.post(
            "/feedback", json=load.feedback(), headers={"Authorization": f"Bearer {API_KEY}"}
        )
    except httpx.TransportError as error:
        request.dropped = type(error).__name__
        return
    request.answered, request.status = time.time(), answer.status_code
    if answer.status_code == 200:
        case = answer.json()["results"][0].get("case")
        request.expects = f"card {case}" if case else None


async def open_loop(url: str, load: Load, step: Step) -> None:
    """Send on schedule (i / rate from the start), each request in its own task, never waiting for one."""
    arrivals: list[tuple[float, Callable[[httpx.AsyncClient, Load, list[Sent]], Awaitable[None]]]] = []
    arrivals += [
        (i / step.commands_per_s, send_command) for i in range(int(step.commands_per_s * step.seconds))
    ]
    arrivals += [
        (i / step.feedback_per_s, send_feedback) for i in range(int(step.feedback_per_s * step.seconds))
    ]
    arrivals.sort(key=lambda arrival: arrival[0])
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for at, send in arrivals:
            delay = start + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule itself, not a wait for the server
            tasks.append(asyncio.create_task(send(http, load, step.sent)))
        await asyncio.gather(*tasks)


def collect(fake: RemoteFakeSlack, step: Step, *, drain: float) -> None:
    """Wait (up to `drain` s) until every reply and card the step expects has reached the fake Slack."""
    wanted = {r.expects for r in step.sent if r.expects}
    deadline = time.monotonic() + drain
    while True:
        step.arrived = fake.ask("arrived")
        if wanted <= step.arrived.keys() or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def collections(url: str) -> dict[str, tuple[int, float]]:
    """The server's garbage collections so far, by generation (`cxbot_gc_pause_seconds` at /metrics)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = GC_SAMPLE.match(line)
        if match:
            totals = found.setdefault(match["generation"], [0.0, 0.0])
            totals[0 if match["what"] == "count" else 1] = float(match["value"])
    return {g: (int(n), t) for g, (n, t) in found.items()}


def since(
    before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]]
) -> dict[str, tuple[int, float]]:
    return {
        g: (n - before.get(g, (0, 0.0))[0], t - before.get(g, (0, 0.0))[1]) for g, (n, t) in after.items()
    }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), to say how busy the server was."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, directory: Path, fake: RemoteFakeSlack) -> tuple[int, list[Step]]:
    database_url, created = fresh_database(args.database_url, directory)
    takes = sum(int(rate * args.seconds) // 3 + 1 for rate in args.rates)
    serve = None
    if args.profile:
        serve = [sys.executable, str(ROOT / "bench" / "slack_ack.py"), "--serve-profiled", str(args.profile)]
    env = server_env(database_url, fake.api_url) | {"CXBOT_CONFIG": str(bench_config(directory, args.teams))}
    steps: list[Step] = []
    try:
        with ServerProcess(env, command=serve) as server:
            case_ids = asyncio.run(seed(server.url, takes + 10, teams=args.teams))
            posted = fake.wait_for("chat.postMessage", len(case_ids), timeout=300)
            left = wait_for_empty_outbox(database_url, timeout=300)
            if len(case_ids) > args.teams:
                # The seed's cards filled channels' pace windows (10 in 10 s); let them empty, so the
                # first rate's cards wait for the server, not for the seed's posts.
                time.sleep(CHANNEL_PACE.longest[1])
            print(
                f"{len(case_ids)} cases seeded over {args.teams} teams' channels, {posted} opening cards "
                f"delivered and {left} outbox rows open before the first rate"
            )
            load = Load(fake.base, case_ids, teams=args.teams)
            for rate in args.rates:
                step = Step(rate, rate * FEEDBACK_PER_COMMAND, args.seconds)
                gc_before = collections(server.url)
                cpu, started = cpu_seconds(server.process.pid), time.monotonic()
                asyncio.run(open_loop(server.url, load, step))
                collect(fake, step, drain=args.drain)
                after = cpu_seconds(server.process.pid)
                step.collections = since(gc_before, collections(server.url))
                step.elapsed = time.monotonic() - started
                step.server_cpu = after - cpu if after is not None and cpu is not None else None
                steps.append(step)
                print("\n".join(step.lines()), flush=True)
                # The refreshes and thread lines of this rate are not the next rate's load.
                waited = time.monotonic()
                left = wait_for_empty_outbox(database_url, timeout=args.drain)
                print(f"  outbox: {left} rows open after {time.monotonic() - waited:.1f} s more", flush=True)
    finally:
        if created and args.database_url:
            asyncio.run(
                postgres_admin(args.database_url, f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
            )
    met = [step.commands_per_s for step in steps if step.meets_targets()]
    if met:
        best = max(met)
        print(
            f"capacity: {best:g} commands/s + {best * FEEDBACK_PER_COMMAND:g} feedback/s (the highest rate "
            f"tried with reply p99 < {REPLY_P99_S:g} s, card p99 < {CARD_P99_S:g} s, nothing dropped or lost)"
        )
    else:
        print(f"capacity: below {min(args.rates):g} commands/s (no rate tried met the targets)")
    print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    problems = sum(
        step.dropped + step.not_200 + step.waits("reply ")[1] + step.waits("card ")[1] for step in steps
    )
    if problems:
        print(
            f"PROBLEMS: {problems} requests dropped, refused, or without the reply or card they should have"
        )
        return 1, steps
    return 0, steps


# --------------------------------------------------------------------------- the plot


def record_and_plot(plot: Path, backend: str, steps: list[Step]) -> None:
    """Keep this database's p99 per rate in `plot`.json (beside earlier runs on other databases), then
    draw reply and card p99 against the rate for every database recorded."""
    import matplotlib  # only --plot needs it (the `charts` extra)

    matplotlib.use("Agg")
    from matplotlib import pyplot

    record = plot.with_suffix(".json")
    figures: dict[str, Any] = json.loads(record.read_text()) if record.exists() else {}
    figures[backend] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": steps[0].seconds if steps else None,
        "load_average": round(os.getloadavg()[0], 2),
        "rates": [
            {
                "commands_per_s": step.commands_per_s,
                "feedback_per_s": step.feedback_per_s,
                "reply_p99_s": round(percentile(step.waits("reply ")[0], 99), 3),
                "card_p99_s": round(percentile(step.waits("card ")[0], 99), 3),
                "ack_p99_s": round(percentile(step.acks(), 99), 3),
                "meets_targets": step.meets_targets(),
            }
            for step in steps
        ],
    }
    record.write_text(json.dumps(figures, indent=2) + "\n")
    figure, axes = pyplot.subplots(figsize=(7, 4.2))
    for (name, data), colour in zip(
        sorted(figures.items()), ("tab:blue", "tab:orange", "tab:green"), strict=False
    ):
        rates = [r["commands_per_s"] for r in data["rates"]]
        axes.plot(
            rates, [r["reply_p99_s"] for r in data["rates"]], "o-", color=colour, label=f"{name}: reply p99"
        )
        axes.plot(
            rates, [r["card_p99_s"] for r in data["rates"]], "s--", color=colour, label=f"{name}: card p99"
        )
    axes.axhline(REPLY_P99_S, color="grey", linewidth=0.8, linestyle=":")
    axes.axhline(CARD_P99_S, color="grey", linewidth=0.8, linestyle=":")
    axes.text(axes.get_xlim()[0], REPLY_P99_S, " reply target", va="bottom", fontsize=8, color="grey")
    axes.text(axes.get_xlim()[0], CARD_P99_S, " card target", va="bottom", fontsize=8, color="grey")
    axes.set_yscale("log")
    axes.set_xlabel(f"commands/s (+ {FEEDBACK_PER_COMMAND:g}× as many feedback items/s)")
    axes.set_ylabel("p99 seconds (log)")
    axes.set_title("What users wait for under load (bench/latency.py, 2 cores)")
    axes.legend(fontsize=8)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(plot, dpi=110)
    pyplot.close(figure)
    print(f"plot: {plot} (figures in {record})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=DEFAULT_RATES)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each rate is sustained")
    parser.add_argument(
        "--drain", type=float, default=60.0, help="how long to wait for late replies and cards"
    )
    parser.add_argument("--teams", type=int, default=DEFAULT_TEAMS, help="teams, each with its own channel")
    parser.add_argument("--quick", action="store_true", help="rates 4 and 8 for 2 s each (a smoke test)")
    parser.add_argument("--database-url", help="a PostgreSQL server URL; a database is created and dropped")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the server to this file")
    parser.add_argument("--plot", type=Path, help="draw p99 against rate to this PNG (figures kept in .json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rates, args.seconds, args.drain = [4.0, 8.0], 2.0, 30.0
    if args.database_url and not args.database_url.startswith(("postgresql", "postgres")):
        parser.error("--database-url must be a PostgreSQL URL (SQLite is the default)")
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"{backend}, open loop, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    fake = RemoteFakeSlack(_timing_fake)
    try:
        with tempfile.TemporaryDirectory(prefix="cxbench-latency-") as tmp:
            status, steps = run(args, Path(tmp), fake)
    finally:
        fake.close()
    if args.plot:
        record_and_plot(args.plot, backend, steps)
    return status


if __name__ == "__main__":
    sys.exit(main())
