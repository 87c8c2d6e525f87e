#!/usr/bin/env python3
"""Reliability under faults: two `serve` replicas on one PostgreSQL database, a Slack that misbehaves
(issue #15).

    python bench/soak.py                          # its own PostgreSQL (initdb in a temp dir), ~7 min
    python bench/soak.py --quick                  # under 2 min: 30 s load, 10 s outage
    python bench/soak.py --database-url postgresql://postgres@127.0.0.1:5432/postgres   # no PG restart

Two replicas of the real server (`python bot.py serve`, subprocesses) share one database, behind a
round-robin "load balancer" in this process, and get the latency bench's open-loop load at `--rate`
(40 commands/s and 50 feedback items/s by default, the issue's target): signed `/cx` commands (`note`,
`take`, `list mine`) and `POST /feedback` items (one in five negative, spread over the latency bench's
100 teams, each with its own channel, so that Slack's pace of about a message a second per channel is
not what the run measures: every note or take also posts a card refresh and a thread line). The
fake Slack (tests/support/fake_slack.py, in its own process) answers a share of posts 429 with
Retry-After (and keeps answering 429 to that channel until it has passed, as Slack does), a share
500, and `channel_not_found` for one team's channel. While the load runs:

- one replica is killed with SIGKILL and started again a few seconds later;
- Slack has an outage (every Web API call answers 503 for `--outage-seconds`);
- the PostgreSQL server is restarted (`pg_ctl restart -m fast`): the soak starts its own server with
  `initdb` on a free port for this, never the machine's shared one; with `--database-url` this
  step is left out.

A digest falls due during the run (every team's digest time is set to a minute in the run) and a few
teams have an SLA policy short enough that escalation steps fire during it. The load generator
resends a feedback item that got a 5xx or a transport error, as a real client would (the server
dedupes on the external id). Afterwards it checks, from the database and from the fake's records:

- every feedback item that got a 2xx answer is stored exactly once, and none twice;
- one case per negative item;
- each case card posted once in its channel (a duplicate allowed per kill: at-least-once delivery);
- one digest per team and local day (and one leadership digest), posted once;
- each escalation step once per person (and channel) it names, and none due left unfired;
- no 5xx from the server except while PostgreSQL was restarting (counted apart), no connection
  dropped except by the killed replica or during the restart;
- Retry-After never undercut: no call to a channel sooner than a 429's Retry-After after that 429
  was answered (calls already in flight then, `--in-flight-grace`, are not counted unless they are
  the same message's retry);
- nothing left in the outbox, and nothing dead except what went to the missing channel.

The replicas run traced (`serve_traced`): each call carries its id and send time, and each replica
logs when its answers came back, so the report says of every call inside a Retry-After whether it
was sent after its replica knew of the 429, was in flight, or came from the other replica.

It prints one summary line (and the details above it) and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import glob
import itertools
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the fake Slack, the server runner and the other benches' helpers
    sys.path.insert(0, str(ROOT))

from bench.latency import DEFAULT_TEAMS, FEEDBACK_PER_COMMAND, NEGATIVE_EVERY  # noqa: E402
from bench.slack_ack import (  # noqa: E402
    API_KEY,
    RemoteFakeSlack,
    command_body,
    open_cases,
    server_env,
    signed_headers,
)
from tests.support.databases import postgres_admin, postgres_connect  # noqa: E402
from tests.support.fake_slack import BOT_TOKEN, Answer, Call, FakeSlack  # noqa: E402
from tests.support.server import ServerProcess, free_port  # noqa: E402

AGENTS = ("U0SUPAGT1", "U0SUPAGT2")
ADMIN = "U0ADMIN01"
BROKEN_CHANNEL = "C0SOAKGONE"
LEADERSHIP_CHANNEL = "C0SOAKLEAD"
LEADERSHIP_SCOPE = "leadership:all"
#: The issue's target load (40 commands/s beside 50 feedback items/s, as bench/latency.py sends it).
TARGET_COMMANDS_PER_S = 40.0
CHAT_METHODS = ("chat.postMessage", "chat.update")
#: After PostgreSQL is back, requests that were waiting on it may still fail for this long.
PG_SETTLE_SECONDS = 5.0
ESCALATION_TEXT = re.compile(r"CX-(\d+) \(.*?Escalation level (\d+)", re.DOTALL)


# --------------------------------------------------------------------------- the teams


def team_channel(index: int, teams: int) -> str:
    """The last team's channel does not exist (Slack answers channel_not_found)."""
    return BROKEN_CHANNEL if index == teams - 1 else f"C0SOAK{index:03d}"


def manager_id(index: int) -> str:
    return f"U0SKMGR{index:03d}"


def contact_id(index: int) -> str:
    return f"U0SKESC{index:03d}"


def escalation_channel(index: int) -> str:
    return f"C0SKESC{index:03d}"


def fast_teams(teams: int, fast: int) -> range:
    """Teams with the short SLA policy: 1..fast (team 0 and the broken last team keep the long one)."""
    return range(1, 1 + min(fast, teams - 2))


def soak_config(*, teams: int, fast: int, digest_at: datetime) -> dict[str, Any]:
    """A configuration of `teams` teams, each with its channel, manager, escalation contact and
    channel; every digest due at `digest_at` (UTC); the fast teams escalate a second after a case opens."""
    clock = f"{digest_at:%H:%M}"
    quick = set(fast_teams(teams, fast))
    people: dict[str, Any] = {
        "admin": {"name": "Soak Admin", "slack": ADMIN},
        "agent-1": {"name": "Agent One", "slack": AGENTS[0]},
        "agent-2": {"name": "Agent Two", "slack": AGENTS[1]},
    }
    team_list = []
    for k in range(teams):
        people[f"manager-{k}"] = {"name": f"Manager {k}", "slack": manager_id(k)}
        people[f"contact-{k}"] = {"name": f"Contact {k}", "slack": contact_id(k)}
        team_list.append(
            {
                "key": f"team-{k}",
                "name": f"Soak team {k}",
                "timezone": "UTC",
                "digest": {"time": clock, "quiet_days": "post", "cutoff": "3h"},
                "sla_policy": "soak-fast" if k in quick else "relaxed",
                "slack": {"channel": team_channel(k, teams)},
                "managers": [f"manager-{k}"],
                "members": ["agent-1", "agent-2"],
                "escalation": {"channel": escalation_channel(k), "contacts": [f"contact-{k}"]},
            }
        )
    return {
        "thresholds": {"nps": 6, "csat": 2, "ces": 3},
        "sentiment": {"enabled": False},
        "sla_policies": {
            "relaxed": {"acknowledge": "2h", "resolve": "3d", "warn_before": "15m", "repeat": 3},
            # Step 1 at the first scheduler tick after the case opens, step 2 at the next one.
            "soak-fast": {
                "acknowledge": "1s",
                "resolve": "3d",
                "warn_before": "0s",
                "repeat": 1,
                "repeat_every": "1s",
            },
        },
        "people": people,
        "admins": ["admin"],
        "teams": team_list,
        "leadership": {"channel": LEADERSHIP_CHANNEL, "time": clock, "timezone": "UTC", "cutoff": "3h"},
        "touchpoints": [
            {"key": f"tp-{k}", "name": f"Touchpoint {k}", "team": f"team-{k}"} for k in range(teams)
        ],
        "routing": {"rules": [], "fallback_team": "team-0"},
    }


# --------------------------------------------------------------------------- the fake Slack


@dataclass(frozen=True, slots=True)
class Faults:
    """What the fake Slack does wrong: shares of 429s and 500s, and which channel does not exist."""

    rate_limited: float = 0.03
    server_errors: float = 0.02
    retry_after: tuple[int, ...] = (1, 2, 3)
    broken_channel: str = BROKEN_CHANNEL
    seed: int = 15


@dataclass(frozen=True, slots=True)
class Record:
    """One Web API call as the fake answered it (`at`: monotonic seconds, `wall`: time.time())."""

    at: float
    wall: float
    method: str
    channel: str
    status: int
    ok: bool
    kind: str  # card | update | thread | digest | escalation | other
    ref: str | None = None  # the case (CX-n) the call is about, when it is about one
    level: int | None = None  # an escalation message's level
    retry_after: float | None = None
    error: str | None = None
    replica: str | None = None  # which replica called (each has its own bot token)
    call_id: str | None = None  # the replica's id for the call (X-Cxbot-Call, see `serve_traced`)
    sent_at: float | None = None  # the replica's wall clock as it made the call (X-Cxbot-Sent-At)


class MisbehavingSlack:
    """The answers of the soak's fake Slack, chosen per call (FakeSlack.answer_with), and their log."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.records: list[Record] = []
        self.outage = False
        self._random = random.Random(faults.seed)
        self._lock = threading.Lock()
        self._holds: dict[str, float] = {}  # channel → monotonic end of its Retry-After
        self._refs: dict[str, str] = {}  # ts of a posted card → CX-n
        self._ts = itertools.count(1)

    def snapshot(self) -> list[tuple[Any, ...]]:
        """The records so far as plain tuples (they cross a process boundary)."""
        with self._lock:
            return [tuple(getattr(r, f) for f in Record.__slots__) for r in self.records]

    def choose(self, call: Call) -> Answer | None:
        if call.method in ("respond", "auth.test"):  # replies and the token check are never faulted
            return None
        channel = str(call.body.get("channel") or "")
        if call.method.startswith("conversations.") and not self.outage:
            # A look for a post a stopped replica made: the fake reads its kept messages.
            with self._lock:
                self.records.append(
                    Record(time.monotonic(), time.time(), call.method, channel, 200, True, "lookup")
                )
            return None
        with self._lock:
            now = time.monotonic()
            answer, retry_after = self._answer(call.method, channel, now)
            ok = answer.status == 200 and isinstance(answer.body, dict) and bool(answer.body.get("ok"))
            kind, ref, level = self._describe(call)
            if ok and call.method == "chat.postMessage" and kind == "card" and ref:
                self._refs[str(answer.body["ts"])] = ref  # type: ignore[index]
            error = answer.body.get("error") if isinstance(answer.body, dict) else str(answer.status)
            replica = call.headers.get("authorization", "").rsplit("-", 1)[-1]
            sent_at = call.headers.get("x-cxbot-sent-at")
            self.records.append(
                Record(
                    now,
                    time.time(),
                    call.method,
                    channel,
                    answer.status,
                    ok,
                    kind,
                    ref,
                    level,
                    retry_after,
                    error,
                    replica,
                    call.headers.get("x-cxbot-call"),
                    float(sent_at) if sent_at else None,
                )
            )
        return answer

    def _answer(self, method: str, channel: str, now: float) -> tuple[Answer, float | None]:
        if self.outage:
            return Answer(503, {"ok": False, "error": "service_unavailable"}), None
        if method not in CHAT_METHODS:
            return _ok(method, channel, ""), None
        if channel == self.faults.broken_channel:
            return Answer(200, {"ok": False, "error": "channel_not_found"}), None
        held = self._holds.get(channel, 0.0)
        if held > now:  # Slack keeps refusing until the Retry-After it gave has passed
            seconds = max(1, math.ceil(held - now))
            return self._limit(channel, now, seconds), float(seconds)
        draw = self._random.random()
        if draw < self.faults.rate_limited:
            seconds = self._random.choice(self.faults.retry_after)
            return self._limit(channel, now, seconds), float(seconds)
        if draw < self.faults.rate_limited + self.faults.server_errors:
            return Answer(500, "<html>upstream connect error</html>", {"Content-Type": "text/html"}), None
        return _ok(method, channel, f"1700000000.{next(self._ts):06d}"), None

    def _limit(self, channel: str, now: float, seconds: int) -> Answer:
        self._holds[channel] = max(self._holds.get(channel, 0.0), now + seconds)
        return Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(seconds)})

    def _describe(self, call: Call) -> tuple[str, str | None, int | None]:
        """What a chat call is (card, refresh, thread line, digest, escalation) and which case it is about."""
        text = str(call.body.get("text") or "")
        if call.method == "chat.update":
            return "update", _leading_ref(text) or self._refs.get(str(call.body.get("ts"))), None
        if call.method != "chat.postMessage":
            return "other", None, None
        if call.body.get("thread_ts"):
            return "thread", self._refs.get(str(call.body.get("thread_ts"))), None
        if text.startswith(("CX digest", "CX leadership digest")):
            return "digest", None, None
        if ref := _leading_ref(text):
            return "card", ref, None
        if found := ESCALATION_TEXT.search(text):
            return "escalation", f"CX-{found.group(1)}", int(found.group(2))
        return "other", None, None


def _leading_ref(text: str) -> str | None:
    found = re.match(r"CX-\d+\b", text)
    return found.group(0) if found else None


def _ok(method: str, channel: str, ts: str) -> Answer:
    if method == "chat.postMessage":
        return Answer(body={"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}})
    if method == "chat.update":
        return Answer(body={"ok": True, "channel": channel})
    return Answer(body={"ok": True})


def _soak_fake(pipe: Any, faults: Faults) -> None:
    """The fake Slack in a child process; answers `outage on|off`, `replies`, `records`, `pauses`, `stop`."""
    slack = MisbehavingSlack(faults)
    replies: set[str] = set()
    pauses = watch_collections()
    with FakeSlack.running() as fake:
        fake.answer_with(slack.choose)
        fake.on_call("respond", lambda call, _: replies.add(call.path.rsplit("/", 1)[-1]))
        pipe.send(fake.api_url)
        while True:
            question = pipe.recv()
            if question == "stop":
                return
            if question.startswith("outage "):
                slack.outage = question == "outage on"
                pipe.send(slack.outage)
            elif question == "replies":
                pipe.send(set(replies))
            elif question == "records":
                pipe.send(slack.snapshot())
            elif question == "pauses":
                pipe.send(list(pauses))
            else:
                pipe.send(None)


# --------------------------------------------------------------------------- tracing (evidence)

TRACE = "cxbot-trace"
#: A collection or an event-loop stall at least this long is reported.
PAUSE_SECONDS = 0.05
#: Calls inside a Retry-After explained one by one in the report, at most.
MAX_EXPLAINED = 60


def watch_collections(report: Any = None) -> list[tuple[float, float, str]]:
    """Record garbage collections of at least PAUSE_SECONDS: (wall start, seconds, what); a process
    stopped for a collection answers nothing meanwhile, and its calls arrive late."""
    pauses: list[tuple[float, float, str]] = []
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.time()]
        elif started and (seconds := time.time() - started[0]) >= PAUSE_SECONDS:
            pause = (started[0], seconds, f"gc{info.get('generation')}")
            pauses.append(pause)
            if report is not None:
                report(pause)

    gc.callbacks.append(callback)
    return pauses


def watch_loop(loop: asyncio.AbstractEventLoop, report: Any) -> None:
    """Report each time the event loop took at least PAUSE_SECONDS to run a callback (a thread)."""

    def watch() -> None:
        while True:
            asked = time.time()
            ran = threading.Event()
            try:
                loop.call_soon_threadsafe(ran.set)
            except RuntimeError:  # the loop is closed: the server is stopping
                return
            while not ran.wait(1.0):
                if loop.is_closed():
                    return
            if (seconds := time.time() - asked) >= PAUSE_SECONDS:
                report((asked, seconds, "loop"))
            time.sleep(0.02)

    threading.Thread(target=watch, name="loop-watch", daemon=True).start()


def serve_traced() -> None:
    """`bot.py serve` whose every Web API call carries its id and send time (headers the fake records),
    and which logs when each answer came back, and its collections and event-loop stalls: the
    evidence to attribute a call inside a Retry-After (the soak's replicas run this way)."""
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    from cxbot.cli import main as cli_main
    from handlers import load_platforms

    replica = os.environ.get("SLACK_BOT_TOKEN", "").rsplit("-", 1)[-1]
    ids = itertools.count(1)
    watched: list[asyncio.AbstractEventLoop] = []

    def say(line: str) -> None:
        print(f"{TRACE} {replica} {line}", file=sys.stderr, flush=True)

    def pause(what: tuple[float, float, str]) -> None:
        say(f"pause {what[0]:.6f} {what[1]:.6f} {what[2]}")

    watch_collections(pause)
    original = AsyncWebClient.api_call

    async def traced(self: AsyncWebClient, api_method: str, **options: Any) -> Any:
        if not watched:
            watched.append(asyncio.get_running_loop())
            watch_loop(watched[0], pause)
        call = f"{replica}.{os.getpid()}-{next(ids)}"
        sent = time.time()
        options["headers"] = {
            **(options.get("headers") or {}),
            "X-Cxbot-Call": call,
            "X-Cxbot-Sent-At": f"{sent:.6f}",
        }
        status: int | str = "error"
        try:
            response = await original(self, api_method, **options)
            status = response.status_code
            return response
        except SlackApiError as error:
            status = error.response.status_code
            raise
        finally:
            say(f"answer {call} {api_method} {sent:.6f} {time.time():.6f} {status}")

    AsyncWebClient.api_call = traced  # type: ignore[method-assign]

    # The other replica's side: when a hold was committed, and when each read of it before a post was.
    from cxbot.outbox import worker as outbox_worker

    share, read = outbox_worker.OutboxWorker._share_hold, outbox_worker.hold_ends

    async def traced_share(self: Any, key: tuple[str, str | None], until: Any) -> None:
        began = time.time()
        await share(self, key, until)
        say(f"shared {key[1] or '*'} {began:.6f} {time.time():.6f}")

    async def traced_read(session: Any, platform: str, destination: str | None, now: Any) -> Any:
        began = time.time()
        ends = await read(session, platform, destination, now)
        say(f"read {destination or '*'} {began:.6f} {time.time():.6f} {'held' if ends else 'free'}")
        return ends

    outbox_worker.OutboxWorker._share_hold = traced_share  # type: ignore[method-assign]
    outbox_worker.hold_ends = traced_read  # type: ignore[assignment]
    sys.exit(cli_main(["serve"], platforms=load_platforms))


@dataclass
class Traces:
    """What the replicas logged (`serve_traced`): each call's answer time, and the pauses."""

    answered: dict[str, float] = field(default_factory=dict)  # call id → wall time its answer came back
    pauses: list[tuple[str, float, float, str]] = field(default_factory=list)  # (who, start, s, what)
    #: (who, destination, start, end): a hold's transaction, and (with what it saw) a read of holds.
    shared: list[tuple[str, str, float, float]] = field(default_factory=list)
    reads: list[tuple[str, str, float, float, str]] = field(default_factory=list)


def read_traces(logs: Iterable[Iterable[str]]) -> Traces:
    traces = Traces()
    for log in logs:
        for line in log:
            if not line.startswith(TRACE):
                continue
            parts = line.split()
            if parts[2] == "answer":
                traces.answered[parts[3]] = float(parts[6])
            elif parts[2] == "pause":
                traces.pauses.append((parts[1], float(parts[3]), float(parts[4]), parts[5]))
            elif parts[2] == "shared":
                traces.shared.append((parts[1], parts[3], float(parts[4]), float(parts[5])))
            elif parts[2] == "read":
                traces.reads.append((parts[1], parts[3], float(parts[4]), float(parts[5]), parts[6]))
    return traces


def explain_undercut(
    undercut: Undercut, traces: Traces, fake_pauses: Iterable[tuple[float, float, str]]
) -> str:
    """Where the time went for one call inside a Retry-After (wall clock, the same machine; each
    record's own, not one offset for the run: the fake may pause between its two clock readings)."""
    refused, call = undercut.refused, undercut.call
    if refused is None or call is None or call.sent_at is None:
        return "  (no trace: the replicas did not run serve_traced)"
    refused_at = refused.wall  # the fake's wall clock as it answered the 429
    known = traces.answered.get(str(refused.call_id))  # when the 429 reached the replica that got it
    parts = [
        f"  {call.call_id} {call.method} {call.kind} {call.ref}: sent {call.sent_at - refused_at:+.3f} s "
        f"after the 429 was answered",
        f"arrived {call.wall - call.sent_at:.3f} s after it was sent",
    ]
    if known is not None:
        parts.append(
            f"the 429 ({refused.call_id}) reached its replica {known - refused_at:+.3f} s after it was "
            f"answered, so this call was sent {call.sent_at - known:+.3f} s after that"
        )
    if not undercut.same_replica and known is not None:
        committed = [e for who, d, b, e in traces.shared if who == refused.replica and d == refused.channel]
        after = [e for e in committed if e >= known]
        if after:
            parts.append(f"its hold was committed {min(after) - known:+.3f} s after it came back")
        seen = [
            (b, e, what)
            for who, d, b, e, what in traces.reads
            if who == call.replica and d == call.channel and e <= call.sent_at
        ]
        if seen:
            _, e, what = max(seen)
            parts.append(f"this replica last read the holds {call.sent_at - e:.3f} s before it sent ({what})")
    start, end = min(refused_at, call.sent_at), call.wall
    overlapping = [
        f"{who} {what} {seconds:.2f} s at {begun - refused_at:+.2f}"
        for who, begun, seconds, what in [*traces.pauses, *(("fake", b, s, w) for b, s, w in fake_pauses)]
        if begun < end and begun + seconds > start
    ]
    parts.append(f"pauses meanwhile: {', '.join(overlapping) or 'none'}")
    return "; ".join(parts)


def trace_lines(
    records: list[Record], traces: Traces, fake_pauses: list[tuple[float, float, str]], *, grace: float
) -> list[str]:
    """Every call inside a Retry-After (no grace), by whether its replica could have known of the 429:
    sent after the 429 came back to that replica is cxbot's fault; sent before it, it was in flight."""
    inside = retry_after_undercuts(records, grace=-math.inf)  # every call inside, even sent before
    after_known = []
    in_flight = other = untraced = 0
    for undercut in inside:
        refused, call = undercut.refused, undercut.call
        assert refused is not None and call is not None
        known = traces.answered.get(str(refused.call_id))
        if call.sent_at is None or known is None:
            untraced += 1
        elif not undercut.same_replica:
            other += 1
        elif call.sent_at >= known:
            after_known.append(undercut)
        else:
            in_flight += 1
    counted = retry_after_undercuts(records, grace=grace)
    longest = sorted(traces.pauses + [("fake", *p) for p in fake_pauses], key=lambda p: -p[2])[:5]
    lines = [
        f"trace: {len(inside)} calls inside a Retry-After: {len(after_known)} sent by the replica that got "
        f"the 429 after it came back, {in_flight} sent before it came back (in flight), {other} from the "
        f"other replica, {untraced} untraced; longest pauses: "
        + ", ".join(f"{who} {what} {seconds:.2f} s" for who, _, seconds, what in longest),
    ]
    counted_keys = {(id(u.refused), id(u.call)) for u in counted}
    for undercut in inside[:MAX_EXPLAINED]:
        mark = "COUNTED" if (id(undercut.refused), id(undercut.call)) in counted_keys else "in grace"
        who = "same replica" if undercut.same_replica else "other replica"
        lines.append(
            f"  {mark}, {who}, {undercut.refused.channel if undercut.refused else '?'} "
            f"{undercut.after:.2f} s into {undercut.retry_after:g} s:"
            + explain_undercut(undercut, traces, fake_pauses)[1:]
        )
    return lines


# --------------------------------------------------------------------------- the checks (pure)


@dataclass
class Sent:
    """One request of the load: its answers in order (status, or the transport error's name)."""

    kind: str  # feedback | note | take | list
    key: str  # the item's external id, or the reply's name
    negative: bool = False
    answers: list[tuple[float, float, int | str]] = field(default_factory=list)  # (sent, answered, outcome)

    @property
    def accepted(self) -> bool:
        return any(isinstance(o, int) and 200 <= o < 300 for _, _, o in self.answers)


@dataclass(frozen=True, slots=True)
class Window:
    """A span of wall-clock time when failures are expected (the PG restart, a killed replica)."""

    start: float
    end: float

    def overlaps(self, start: float, end: float) -> bool:
        return start <= self.end and end >= self.start


@dataclass
class FeedbackCheck:
    accepted: int
    lost: list[str]
    doubled: list[str]


def check_feedback(sent: Iterable[Sent], stored: Counter[str]) -> FeedbackCheck:
    """Every item that got a 2xx is stored once; no item (accepted or not) is stored twice."""
    items = [s for s in sent if s.kind == "feedback"]
    accepted = [s for s in items if s.accepted]
    lost = sorted(s.key for s in accepted if stored.get(s.key, 0) == 0)
    doubled = sorted(key for key, count in stored.items() if count > 1)
    return FeedbackCheck(len(accepted), lost, doubled)


@dataclass
class CaseCheck:
    negatives: int
    cases: int
    without_case: list[str]
    extra_cases: list[str]


def check_cases(cases_per_negative: dict[str, int]) -> CaseCheck:
    """`cases_per_negative`: stored negative item's external id → cases opened for it (must be 1)."""
    return CaseCheck(
        negatives=len(cases_per_negative),
        cases=sum(min(n, 1) for n in cases_per_negative.values()),
        without_case=sorted(k for k, n in cases_per_negative.items() if n == 0),
        extra_cases=sorted(k for k, n in cases_per_negative.items() if n > 1),
    )


@dataclass
class PostCheck:
    """Posts of one kind: expected (destination, subject) pairs against the fake's successful posts."""

    expected: int
    posted: int
    missing: list[tuple[str, str]]
    duplicates: int
    unexpected: list[tuple[str, str]]


def check_posts(expected: Iterable[tuple[str, str]], delivered: Iterable[tuple[str, str]]) -> PostCheck:
    """Each expected (destination, subject) posted once: what is missing, doubled, or never asked for."""
    wanted = set(expected)
    counts = Counter(delivered)
    return PostCheck(
        expected=len(wanted),
        posted=sum(1 for key in wanted if counts[key]),
        missing=sorted(wanted - counts.keys()),
        duplicates=sum(n - 1 for key, n in counts.items() if n > 1),
        unexpected=sorted(counts.keys() - wanted),
    )


def check_digests(
    scopes: Iterable[str], runs: Iterable[tuple[str, date, str]], day: date
) -> tuple[int, list[str]]:
    """One `sent` run per scope for `day`: (how many scopes have one, the problems)."""
    found: dict[str, list[str]] = {}
    for scope, local_date, status in runs:
        if local_date == day:
            found.setdefault(scope, []).append(status)
    good, problems = 0, []
    for scope in scopes:
        statuses = found.get(scope, [])
        if statuses == ["sent"]:
            good += 1
        else:
            problems.append(f"{scope}: {statuses or 'no run'}")
    return good, problems


def doubled_firings(steps: Iterable[tuple[int, str, int]]) -> list[tuple[int, str, int]]:
    """(case, clock, step) recorded more than once: a step fired twice."""
    return sorted(key for key, n in Counter(steps).items() if n > 1)


@dataclass(frozen=True, slots=True)
class Clocked:
    """A fast team's case as the database has it at the end, for the missed-step check."""

    case: str
    ack_due_at: datetime
    escalations: int
    next_escalation_at: datetime | None
    waiting: bool  # still new and not snoozed: the acknowledge clock runs


def missed_steps(cases: Iterable[Clocked], *, last_tick: datetime, steps: int) -> list[str]:
    """Steps that were due before the last scheduler tick that surely ran, and did not fire."""
    missed = []
    for case in cases:
        if not case.waiting or case.escalations >= steps:
            continue
        if case.escalations == 0 and case.ack_due_at < last_tick:
            missed.append(f"{case.case} step 1")
        elif case.escalations and case.next_escalation_at and case.next_escalation_at < last_tick:
            missed.append(f"{case.case} step {case.escalations + 1}")
    return missed


def last_sure_tick(now: datetime, *, settle: float = 10.0) -> datetime:
    """The latest minute boundary at least `settle` seconds ago (the scheduler ticks at :00)."""
    before = now - timedelta(seconds=settle)
    return before.replace(second=0, microsecond=0)


@dataclass
class Undercut:
    channel: str
    limited_at: float
    retry_after: float
    early_by: float
    same_case: bool
    same_replica: bool
    after: float  # seconds after the 429 was answered
    refused: Record | None = None  # the 429
    call: Record | None = None  # the call inside its Retry-After


def retry_after_undercuts(records: Iterable[Record], *, grace: float) -> list[Undercut]:
    """Calls to a channel sooner than a 429's Retry-After after that 429 was answered.

    A call about the same case is a retry of what was refused (a card and its thread are delivered
    in order, one at a time), so it counts from the first instant; a call about another case counts
    once `grace` seconds have passed (before that it may have been in flight already). A call that
    says when it was sent (`sent_at`, traced replicas) is placed by that, not by when the fake got
    to it: one sent before the 429 was answered was in flight whenever it arrived (the fake stops
    for collections of up to half a second, and records what waited as arriving after them).
    """
    by_channel: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: r.at):
        if record.method in CHAT_METHODS:
            by_channel.setdefault(record.channel, []).append(record)
    found = []
    for channel, calls in by_channel.items():
        for i, limited in enumerate(calls):
            if limited.status != 429 or limited.retry_after is None:
                continue
            until = limited.at + limited.retry_after
            for later in calls[i + 1 :]:
                if later.at >= until:
                    break
                same = later.ref is not None and later.ref == limited.ref
                sent = later.at - limited.at  # seconds after the 429, as the fake saw the call
                if later.sent_at is not None:
                    sent = later.sent_at - limited.wall
                if (same and sent > 0) or sent >= grace:
                    found.append(
                        Undercut(
                            channel,
                            limited.at,
                            limited.retry_after,
                            until - later.at,
                            same,
                            later.replica == limited.replica,
                            later.at - limited.at,
                            limited,
                            later,
                        )
                    )
    return found


def clock_offset(records: list[Record]) -> float:
    """Wall clock minus monotonic clock in the fake's process (to place its records on the timeline)."""
    return records[0].wall - records[0].at if records else 0.0


def doubled_card_lines(ok: Iterable[Record], load_started: float) -> list[str]:
    """Each card posted more than once: when (seconds into the load) and by which replica."""
    posts: dict[tuple[str, str], list[Record]] = {}
    for record in ok:
        if record.kind == "card":
            posts.setdefault((record.channel, str(record.ref)), []).append(record)
    return [
        f"card posted {len(calls)} times: {ref} in {channel} at "
        + ", ".join(f"{r.wall - load_started:.1f} s ({r.replica})" for r in calls)
        for (channel, ref), calls in sorted(posts.items())
        if len(calls) > 1
    ]


def spread(values: Iterable[float]) -> str:
    """min / median / max of some seconds, for a report line."""
    ordered = sorted(values)
    if not ordered:
        return "none"
    return f"min {ordered[0]:.2f}, median {ordered[len(ordered) // 2]:.2f}, max {ordered[-1]:.2f}"


def classify_failures(
    sent: Iterable[Sent], *, pg_windows: list[Window], kill_windows: list[Window]
) -> dict[str, int]:
    """Answers that were not 2xx/4xx: 5xx and dropped connections, inside and outside the windows
    when they are expected (PostgreSQL down; a replica killed)."""
    counts = Counter({"5xx": 0, "5xx during PG restart": 0, "dropped": 0, "dropped at kill or PG": 0})
    for request in sent:
        for started, answered, outcome in request.answers:
            in_pg = any(w.overlaps(started, answered) for w in pg_windows)
            if isinstance(outcome, int):
                if outcome >= 500:
                    counts["5xx during PG restart" if in_pg else "5xx"] += 1
                continue
            in_kill = any(w.overlaps(started, answered) for w in kill_windows)
            counts["dropped at kill or PG" if in_pg or in_kill else "dropped"] += 1
    return dict(counts)


def summary_line(
    *,
    feedback: FeedbackCheck,
    sent_items: int,
    cases: CaseCheck,
    cards: PostCheck,
    kills: int,
    digests: tuple[int, int],
    escalations: PostCheck,
    escalation_doubled: int,
    failures: dict[str, int],
    undercuts: int,
    passed: bool,
) -> str:
    plural = "" if cards.duplicates == 1 else "s"
    return (
        f"soak: {sent_items} feedback {len(feedback.lost)} lost {len(feedback.doubled)} doubled | "
        f"{cases.cases} cases/{cases.negatives} negatives | "
        f"cards {cards.posted}/{cards.expected} posted, "
        f"{cards.duplicates} duplicate{plural} ({kills} kill) | "
        f"digests {digests[0]}/{digests[1]} | "
        f"escalations {escalations.posted}/{escalations.expected} messages, "
        f"{escalation_doubled + escalations.duplicates} doubled | "
        f"5xx {failures['5xx']} ({failures['5xx during PG restart']} during PG restart) | "
        f"retry-after undercut {undercuts} | {'PASS' if passed else 'FAIL'}"
    )


# --------------------------------------------------------------------------- PostgreSQL of its own


def postgres_bin() -> Path:
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not versions:
        raise SystemExit("no PostgreSQL binaries under /usr/lib/postgresql/*/bin (or pass --database-url)")
    return Path(versions[-1])


class LocalPostgres:
    """A PostgreSQL server of the soak's own (initdb in a temp dir, a free port), so it can restart it."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        # Its own directory at the top of the temp dir: the server's user must be able to reach it.
        self.directory = Path(tempfile.mkdtemp(prefix="cxsoak-pg-"))
        self.data = self.directory / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # initdb refuses root: run the server as the postgres user, owning its directory.
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr.strip()}")

    def start(self) -> None:
        if self.user:
            shutil.chown(self.directory, self.user, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"), "-w", "start"
        )

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        with suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


# --------------------------------------------------------------------------- the load


class Replicas:
    """The two servers behind a round-robin balancer that skips a replica known to be down."""

    def __init__(self, env: dict[str, str], count: int = 2) -> None:
        self.env = env
        self.servers: list[ServerProcess | None] = []
        for index in range(count):  # one after the other: each runs the migrations as it starts
            self.servers.append(self._start(index))
        self._turn = itertools.count()
        self.logs: list[list[str]] = []

    def env_of(self, index: int) -> dict[str, str]:
        """Each replica posts with its own bot token, so the fake's records say who called."""
        return {**self.env, "SLACK_BOT_TOKEN": f"{BOT_TOKEN}-replica{index + 1}"}

    def pick(self) -> str:
        live = [s for s in self.servers if s is not None]
        return live[next(self._turn) % len(live)].url

    def kill(self, index: int) -> None:
        server = self.servers[index]
        assert server is not None
        self.servers[index] = None
        server.process.kill()  # SIGKILL: no shutdown, no lease released, nothing recorded
        server.process.wait()
        self.logs.append(server.log)

    def restart(self, index: int) -> None:
        self.servers[index] = self._start(index)

    def _start(self, index: int) -> ServerProcess:
        """`bot.py serve`, traced (`serve_traced`): the fake then knows when each call was sent."""
        traced = [sys.executable, str(Path(__file__).resolve()), "--serve-traced"]
        return ServerProcess(self.env_of(index), command=traced, timeout=120)

    def stop(self) -> None:
        for server in self.servers:
            if server is not None:
                server.stop()
                self.logs.append(server.log)


@dataclass
class Plan:
    """When each fault happens, in seconds from the start of the load."""

    load_seconds: float
    kill_at: float
    restart_after: float
    outage_at: float
    outage_seconds: float
    pg_restart_at: float | None


class Load:
    """The open-loop requests: commands on seeded cases, feedback spread over the teams."""

    def __init__(self, fake_base: str, case_ids: list[int], teams: int) -> None:
        self.fake_base = fake_base
        self.case_ids = case_ids
        self.untaken = iter(case_ids)
        self.teams = teams
        self.commands = itertools.count()
        self.items = itertools.count()

    def command(self) -> tuple[str, str, str]:
        n = next(self.commands)
        name = f"soak-{n}"
        kind = ("note", "take", "list")[n % 3]
        if kind == "note":
            text = f"note CX-{self.case_ids[(n * 7) % len(self.case_ids)]} called the customer back, soak {n}"
        elif kind == "take":
            taken = next(self.untaken, None)
            text = f"take CX-{taken}" if taken is not None else "list mine"
        else:
            text = "list mine"
        url = f"{self.fake_base}/respond/{name}"
        return kind, command_body(text, user=AGENTS[n % 2], response_url=url), name

    def feedback(self) -> tuple[dict[str, Any], bool]:
        n = next(self.items)
        negative = n % NEGATIVE_EVERY == 0
        team = (n // NEGATIVE_EVERY) % self.teams if negative else n % self.teams
        return {
            "external_id": f"soak-{n}",
            "source": "soak",
            "metric": "csat",
            "score": 1 if negative else 5,
            "comment": "Waited an hour on the phone" if negative else "Quick and friendly",
            "touchpoint": f"tp-{team}",
            "customer": {"id": f"cust-{n % 300}"},
        }, negative


class Clients:
    """Several HTTP clients taken in turn, each with a small pool.

    httpcore's pool does work quadratic in its connections on every request and answer. At 90
    requests/s, the PostgreSQL restart leaves hundreds of connections open at once, and a single
    client with 1,000 of them kept this process busy for minutes after the load should have ended:
    the arrivals fell behind their schedule. Sixteen pools of 64 keep the same total.
    """

    def __init__(self, count: int = 16, connections: int = 64) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections // 4)
        self.clients = [httpx.AsyncClient(timeout=30, limits=limits) for _ in range(count)]
        self._turn = itertools.count()

    def next(self) -> httpx.AsyncClient:
        return self.clients[next(self._turn) % len(self.clients)]

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))


async def send_command(http: Clients, replicas: Replicas, load: Load, sent: list[Sent]) -> None:
    """A command goes once: Slack does not resend a slash command."""
    kind, body, name = load.command()
    request = Sent(kind, name)
    sent.append(request)
    started = time.time()
    url = replicas.pick()
    try:
        answer = await http.next().post(
            f"{url}/slack/events", content=body.encode(), headers=signed_headers(body)
        )
    except httpx.TransportError as error:
        request.answers.append((started, time.time(), type(error).__name__))
        return
    request.answers.append((started, time.time(), answer.status_code))


async def send_feedback(
    http: Clients, replicas: Replicas, load: Load, sent: list[Sent], *, give_up_after: float
) -> None:
    """An item is sent again after a 5xx or a dropped connection (to whichever replica is next), as a
    survey tool's webhook would, until it is answered or `give_up_after` seconds have passed."""
    item, negative = load.feedback()
    request = Sent("feedback", item["external_id"], negative)
    sent.append(request)
    deadline = time.monotonic() + give_up_after
    for attempt in itertools.count():
        started = time.time()
        try:
            answer = await http.next().post(
                f"{replicas.pick()}/feedback", json=item, headers={"Authorization": f"Bearer {API_KEY}"}
            )
            outcome: int | str = answer.status_code
        except httpx.TransportError as error:
            outcome = type(error).__name__
        request.answers.append((started, time.time(), outcome))
        if isinstance(outcome, int) and outcome < 500:
            return
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(min(2.0, 0.25 * 2**attempt))  # a client's backoff, not a synchronisation


async def open_loop(
    replicas: Replicas, load: Load, sent: list[Sent], *, commands_per_s: float, seconds: float
) -> float:
    """Send on schedule, each request in its own task; the most any arrival fell behind its time (s)."""
    feedback_per_s = commands_per_s * FEEDBACK_PER_COMMAND
    arrivals: list[tuple[float, str]] = [
        (i / commands_per_s, "command") for i in range(int(commands_per_s * seconds))
    ]
    arrivals += [(i / feedback_per_s, "feedback") for i in range(int(feedback_per_s * seconds))]
    arrivals.sort()
    http = Clients()
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        behind = 0.0
        for at, what in arrivals:
            delay = start + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule itself
            behind = max(behind, -delay)
            if what == "command":
                tasks.append(asyncio.create_task(send_command(http, replicas, load, sent)))
            else:
                tasks.append(
                    asyncio.create_task(send_feedback(http, replicas, load, sent, give_up_after=60.0))
                )
        await asyncio.gather(*tasks)
    finally:
        await http.aclose()
    return behind


@dataclass
class Timeline:
    """What happened when (wall clock), for the report and for classifying failures."""

    load_started: float = 0.0
    kills: list[Window] = field(default_factory=list)
    outage: Window | None = None
    pg_restarts: list[Window] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.events.append(f"{time.time() - self.load_started:6.1f} s  {what}")


async def faults(
    plan: Plan, replicas: Replicas, fake: RemoteFakeSlack, postgres: LocalPostgres | None, timeline: Timeline
) -> None:
    """The kill, the outage and the PostgreSQL restart, each at its time (blocking steps in threads)."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def at(seconds: float) -> None:
        await asyncio.sleep(max(0.0, start + seconds - loop.time()))

    async def kill_and_restart() -> None:
        await at(plan.kill_at)
        killed = time.time()
        await asyncio.to_thread(replicas.kill, 1)
        timeline.note("replica 2 killed (SIGKILL)")
        await asyncio.sleep(plan.restart_after)
        await asyncio.to_thread(replicas.restart, 1)
        timeline.kills.append(Window(killed, time.time()))
        timeline.note("replica 2 started again")

    async def outage() -> None:
        await at(plan.outage_at)
        began = time.time()
        await asyncio.to_thread(fake.ask, "outage on")
        timeline.note(f"Slack outage begins ({plan.outage_seconds:g} s)")
        await asyncio.sleep(plan.outage_seconds)
        await asyncio.to_thread(fake.ask, "outage off")
        timeline.outage = Window(began, time.time())
        timeline.note("Slack outage ends")

    async def restart_postgres() -> None:
        if postgres is None or plan.pg_restart_at is None:
            return
        await at(plan.pg_restart_at)
        began = time.time()
        timeline.note("PostgreSQL restart (pg_ctl restart -m fast)")
        await asyncio.to_thread(postgres.restart)
        timeline.pg_restarts.append(Window(began, time.time() + PG_SETTLE_SECONDS))
        timeline.note(f"PostgreSQL back after {time.time() - began:.1f} s")

    await asyncio.gather(kill_and_restart(), outage(), restart_postgres())


async def run_load(
    args: argparse.Namespace,
    plan: Plan,
    replicas: Replicas,
    fake: RemoteFakeSlack,
    postgres: LocalPostgres | None,
    load: Load,
) -> tuple[list[Sent], Timeline]:
    sent: list[Sent] = []
    timeline = Timeline(load_started=time.time())
    behind, _ = await asyncio.gather(
        open_loop(replicas, load, sent, commands_per_s=args.rate, seconds=plan.load_seconds),
        faults(plan, replicas, fake, postgres, timeline),
    )
    timeline.note(f"load done (arrivals at most {behind:.2f} s behind their schedule)")
    return sent, timeline


# --------------------------------------------------------------------------- seeding and draining


async def seed_cases(url: str, teams: Iterable[int], count: int) -> list[int]:
    """`count` negative items on the given teams (round robin), each opening a case for the commands."""
    chosen = list(teams)
    items = [
        {
            "external_id": f"seed-{i}",
            "source": "soak-seed",
            "metric": "csat",
            "score": 1,
            "comment": "Waited an hour on the phone",
            "touchpoint": f"tp-{chosen[i % len(chosen)]}",
            "customer": {"id": f"cust-{i % 300}"},
        }
        for i in range(count)
    ]
    return await open_cases(url, items)


async def open_outbox_rows(database_url: str) -> int:
    connection = await postgres_connect(database_url)
    try:
        return int(
            await connection.fetchval("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
        )
    finally:
        await connection.close()


def wait_until(condition: Any, *, timeout: float, every: float = 1.0) -> bool:
    """Poll `condition()` (a database count, the fake's records) until true or `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every)


# --------------------------------------------------------------------------- reading the results


@dataclass
class Stored:
    """What the database holds at the end."""

    feedback: Counter[str]
    cases_per_negative: dict[str, int]
    cases: list[tuple[int, str]]  # (case id, team key)
    digest_runs: list[tuple[str, date, str]]
    firings: list[tuple[int, str, int, int]]  # (case, clock, step, level)
    clocked: list[Clocked]
    outbox: list[tuple[str, str | None, str, str | None, int]]  # kind, destination, status, error, count
    found: int  # rows whose post a stopped replica had made, found in Slack instead of posted again


async def read_database(database_url: str, *, fast_keys: list[str]) -> Stored:
    connection = await postgres_connect(database_url)
    try:
        feedback = Counter(
            {
                r["external_id"]: r["n"]
                for r in await connection.fetch(
                    "SELECT external_id, count(*) AS n FROM feedback WHERE source = 'soak'"
                    " GROUP BY external_id"
                )
            }
        )
        negatives = {
            r["external_id"]: r["n"]
            for r in await connection.fetch(
                "SELECT f.external_id, count(c.id) AS n FROM feedback f"
                " LEFT JOIN cases c ON c.feedback_id = f.id"
                " WHERE f.source = 'soak' AND f.is_negative GROUP BY f.external_id"
            )
        }
        cases = [(r["id"], r["team_key"]) for r in await connection.fetch("SELECT id, team_key FROM cases")]
        runs = [
            (r["scope"], r["local_date"], r["status"])
            for r in await connection.fetch("SELECT scope, local_date, status FROM digest_runs")
        ]
        firings = []
        for r in await connection.fetch("SELECT case_id, data FROM case_events WHERE kind = 'escalated'"):
            data = r["data"] if isinstance(r["data"], dict) else json.loads(r["data"])
            firings.append((r["case_id"], str(data["clock"]), int(data["step"]), int(data["level"])))
        clocked = [
            Clocked(
                f"CX-{r['id']}",
                r["ack_due_at"],
                r["ack_escalations"],
                r["ack_next_escalation_at"],
                r["state"] == "new" and (r["snoozed_until"] is None),
            )
            for r in await connection.fetch(
                "SELECT id, ack_due_at, ack_escalations, ack_next_escalation_at, state, snoozed_until"
                " FROM cases WHERE team_key = ANY($1::text[])",
                fast_keys,
            )
        ]
        outbox = [
            (r["kind"], r["destination"], r["status"], r["error"], r["n"])
            for r in await connection.fetch(
                "SELECT kind, destination, status, split_part(coalesce(last_error, ''), ':', 1) AS error,"
                " count(*) AS n FROM outbox GROUP BY 1, 2, 3, 4"
            )
        ]
        found = await connection.fetchval(
            "SELECT count(*) FROM outbox WHERE result->>'action' = 'found' OR result->>'found' = 'true'"
        )
    finally:
        await connection.close()
    return Stored(feedback, negatives, cases, runs, firings, clocked, outbox, int(found))


# --------------------------------------------------------------------------- the verdict


@dataclass
class Verdict:
    line: str
    details: list[str]
    passed: bool


def judge(
    args: argparse.Namespace,
    *,
    sent: list[Sent],
    stored: Stored,
    records: list[Record],
    replies: set[str],
    timeline: Timeline,
    digest_day: date,
    checked_at: datetime,
) -> Verdict:
    """Every check, from what was sent, what the database holds and what the fake Slack answered."""
    teams = args.teams
    feedback = check_feedback(sent, stored.feedback)
    cases = check_cases(stored.cases_per_negative)
    team_index = {f"team-{k}": k for k in range(teams)}

    def channel_of(team_key: str) -> str:
        return team_channel(team_index[team_key], teams)

    ok = [r for r in records if r.ok]
    cards = check_posts(
        (
            (channel_of(team), f"CX-{case}")
            for case, team in stored.cases
            if channel_of(team) != BROKEN_CHANNEL
        ),
        ((r.channel, str(r.ref)) for r in ok if r.kind == "card"),
    )
    digest_channels = [
        team_channel(k, teams) for k in range(teams) if team_channel(k, teams) != BROKEN_CHANNEL
    ]
    digest_posts = check_posts(
        ((c, "digest") for c in [*digest_channels, LEADERSHIP_CHANNEL]),
        ((r.channel, "digest") for r in ok if r.kind == "digest"),
    )
    scopes = [*team_index, LEADERSHIP_SCOPE]
    digest_runs, digest_problems = check_digests(scopes, stored.digest_runs, digest_day)
    digests_good = digest_runs if not (digest_posts.missing or digest_posts.duplicates) else 0

    expected_escalations = []
    for case, _clock, _step, level in stored.firings:
        k = team_index[next(team for c, team in stored.cases if c == case)]
        targets = [manager_id(k)] if level <= 1 else [contact_id(k), escalation_channel(k)]
        expected_escalations += [(target, f"CX-{case}#L{level}") for target in targets]
    escalations = check_posts(
        expected_escalations, ((r.channel, f"{r.ref}#L{r.level}") for r in ok if r.kind == "escalation")
    )
    doubled_steps = doubled_firings((case, clock, step) for case, clock, step, _ in stored.firings)
    missed = missed_steps(stored.clocked, last_tick=last_sure_tick(checked_at), steps=2)

    failures = classify_failures(sent, pg_windows=timeline.pg_restarts, kill_windows=timeline.kills)
    undercuts = retry_after_undercuts(records, grace=args.in_flight_grace)
    same_case = sum(1 for u in undercuts if u.same_case)
    same_replica = sum(1 for u in undercuts if u.same_replica)

    open_rows = sum(n for _, _, status, _, n in stored.outbox if status in ("pending", "sending"))
    dead_elsewhere = [
        (kind, destination, error, n)
        for kind, destination, status, error, n in stored.outbox
        if status == "dead" and destination != BROKEN_CHANNEL
    ]
    dead_broken = sum(n for _, d, status, _, n in stored.outbox if status == "dead" and d == BROKEN_CHANNEL)
    kills = len(timeline.kills)

    problems = []
    if feedback.lost or feedback.doubled:
        problems.append(f"feedback lost {feedback.lost[:5]} doubled {feedback.doubled[:5]}")
    if cases.without_case or cases.extra_cases:
        problems.append(
            f"negatives without a case {cases.without_case[:5]}, with two {cases.extra_cases[:5]}"
        )
    if cards.missing or cards.duplicates > kills or cards.unexpected:
        problems.append(
            f"cards missing {cards.missing[:5]}, {cards.duplicates} duplicates, "
            f"unexpected {cards.unexpected[:5]}"
        )
    if digest_problems or digest_posts.missing or digest_posts.duplicates or digest_posts.unexpected:
        problems.append(
            f"digests: {digest_problems[:5]}; posts missing {digest_posts.missing[:5]}, "
            f"{digest_posts.duplicates} duplicates, unexpected {digest_posts.unexpected[:5]}"
        )
    if escalations.missing or escalations.duplicates or doubled_steps or missed or escalations.unexpected:
        problems.append(
            f"escalations: messages missing {escalations.missing[:5]}, {escalations.duplicates} duplicates, "
            f"unexpected {escalations.unexpected[:5]}, steps fired twice {doubled_steps[:5]}, "
            f"missed {missed[:5]}"
        )
    if failures["5xx"] or failures["dropped"]:
        problems.append(
            f"{failures['5xx']} 5xx and {failures['dropped']} dropped connections outside the faults"
        )
    if undercuts:
        problems.append(
            f"{len(undercuts)} calls inside a Retry-After ({same_case} retries of the same case), earliest "
            f"{max(u.early_by for u in undercuts):.2f} s early"
        )
    if open_rows or dead_elsewhere:
        problems.append(f"outbox: {open_rows} rows never delivered; dead elsewhere: {dead_elsewhere[:5]}")
    if not stored.firings:
        problems.append("no escalation step fired during the run")

    commands = [s for s in sent if s.kind != "feedback"]
    acked = [s for s in commands if s.accepted]
    replied = sum(1 for s in acked if s.key in replies)
    statuses = Counter(
        "2xx" if isinstance(o, int) and o < 300 else str(o) for s in sent for _, _, o in s.answers
    )
    resent = sum(len(s.answers) - 1 for s in sent if s.kind == "feedback")
    faults = Counter((r.status, r.error) for r in records if not r.ok)
    details = [
        *sorted(timeline.events, key=lambda line: float(line.split(" s  ", 1)[0])),
        f"requests: {len(commands)} commands, {len(sent) - len(commands)} feedback items "
        f"({resent} resends); answers {dict(statuses)}",
        f"failures: {failures}",
        f"replies: {replied}/{len(acked)} acknowledged commands got their response_url reply",
        f"fake Slack: {len(records)} Web API calls, {len(ok)} answered ok; faults {dict(faults)}",
        f"outbox at the end: {open_rows} open, {dead_broken} dead for the missing channel "
        f"{BROKEN_CHANNEL}, {len(dead_elsewhere)} dead elsewhere",
        f"escalations: {len(stored.firings)} steps fired "
        f"({dict(Counter(step for _, _, step, _ in stored.firings))} by step), "
        f"{escalations.posted}/{escalations.expected} messages delivered, missed {len(missed)}",
        f"digests: {digest_runs}/{len(scopes)} runs sent for {digest_day}, "
        f"{digest_posts.posted}/{digest_posts.expected} posted",
        f"cards: {cards.posted}/{cards.expected} posted, {cards.duplicates} duplicates",
        f"in doubt: {stored.found} posts a stopped replica had made were found in Slack, not posted "
        f"again ({sum(1 for r in records if r.kind == 'lookup')} conversations.* lookups)",
        f"retry-after: {sum(1 for r in records if r.status == 429)} 429s; {len(undercuts)} undercuts "
        f"({same_case} same case, {same_replica} from the replica that got the 429; seconds after it: "
        f"{spread(u.after for u in undercuts)}; grace {args.in_flight_grace:g} s for calls in flight)",
        *doubled_card_lines(ok, timeline.load_started),
        *(
            f"undercut: {u.channel} 429 (Retry-After {u.retry_after:g} s) at "
            f"{u.limited_at + clock_offset(records) - timeline.load_started:.1f} s, "
            f"called again {u.after:.2f} s later by {'the same' if u.same_replica else 'the other'} replica"
            for u in undercuts
        ),
        *(f"PROBLEM: {p}" for p in problems),
    ]
    line = summary_line(
        feedback=feedback,
        sent_items=len(sent) - len(commands),
        cases=cases,
        cards=cards,
        kills=kills,
        digests=(digests_good, len(scopes)),
        escalations=escalations,
        escalation_doubled=len(doubled_steps),
        failures=failures,
        undercuts=len(undercuts),
        passed=not problems,
    )
    return Verdict(line, details, not problems)


# --------------------------------------------------------------------------- main


def next_minute(after: datetime) -> datetime:
    return (after + timedelta(minutes=1)).replace(second=0, microsecond=0)


def first_tick_after(timeline: Timeline, digest_at: datetime, *, after_load: bool) -> datetime:
    """The scheduler tick the checks wait for: after the digests fall due, after PostgreSQL is back
    (a tick it failed is only made up a minute later), and (`after_load`) after the load."""
    wanted = [digest_at, *(next_minute(datetime.fromtimestamp(w.end, UTC)) for w in timeline.pg_restarts)]
    if after_load:
        wanted.append(next_minute(datetime.now(UTC)))
    return max(wanted)


@contextmanager
def database(args: argparse.Namespace) -> Iterator[tuple[str, LocalPostgres | None]]:
    """A fresh database: on the soak's own server (restartable), or on `--database-url`'s."""
    postgres = None
    admin_url = args.database_url
    if admin_url is None:
        postgres = LocalPostgres()
        admin_url = postgres.url
    name = f"cxsoak_{os.getpid()}"
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        if postgres is not None:
            postgres.start()
        asyncio.run(postgres_admin(admin_url, f'CREATE DATABASE "{name}"'))
        yield url, postgres
    finally:
        if postgres is not None:
            postgres.stop()
        else:
            asyncio.run(postgres_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run(args: argparse.Namespace, directory: Path, fake: RemoteFakeSlack) -> int:
    began = time.monotonic()
    seconds = args.seconds
    plan = Plan(
        load_seconds=seconds,
        kill_at=0.15 * seconds,
        restart_after=args.restart_after,
        outage_at=0.3 * seconds,
        outage_seconds=args.outage_seconds,
        pg_restart_at=None if args.database_url else 0.75 * seconds,
    )
    fast_keys = [f"team-{k}" for k in fast_teams(args.teams, args.fast_teams)]
    relaxed = [k for k in range(args.teams - 1) if f"team-{k}" not in fast_keys]
    with database(args) as (database_url, postgres):
        digest_at = next_minute(datetime.now(UTC) + timedelta(seconds=args.digest_lead))
        config = directory / "soak.yaml"
        config.write_text(
            yaml.safe_dump(soak_config(teams=args.teams, fast=args.fast_teams, digest_at=digest_at))
        )
        env = {**server_env(database_url, fake.api_url), "CXBOT_CONFIG": str(config)}
        replicas = Replicas(env)
        try:
            takes = int(args.rate * seconds) // 3 + 10
            case_ids = asyncio.run(seed_cases(replicas.pick(), relaxed, takes))
            settled = wait_until(lambda: asyncio.run(open_outbox_rows(database_url)) == 0, timeout=180)
            print(
                f"{len(case_ids)} cases seeded; their cards {'delivered' if settled else 'NOT all delivered'}"
            )
            load = Load(fake.base, case_ids, args.teams)
            sent, timeline = asyncio.run(run_load(args, plan, replicas, fake, postgres, load))
            digest_second = digest_at.timestamp() - timeline.load_started
            timeline.events.append(
                f"{digest_second:6.1f} s  digests and leadership digest due ({digest_at:%H:%M} UTC)"
            )
            # A scheduler tick after the load (and after the digests) before checking; then an empty outbox.
            ready_at = first_tick_after(timeline, digest_at, after_load=args.tick_after_load)
            ready_at += timedelta(seconds=args.settle)
            drained = wait_until(
                lambda: datetime.now(UTC) >= ready_at and asyncio.run(open_outbox_rows(database_url)) == 0,
                timeout=args.drain,
            )
            timeline.note("outbox drained" if drained else f"outbox NOT drained after {args.drain:g} s")
            checked_at = datetime.now(UTC)
        finally:
            replicas.stop()
        stored = asyncio.run(read_database(database_url, fast_keys=fast_keys))
    records = [Record(*r) for r in fake.ask("records")]
    replies = fake.ask("replies")
    fake_pauses = fake.ask("pauses")
    traces = read_traces(replicas.logs)
    verdict = judge(
        args,
        sent=sent,
        stored=stored,
        records=records,
        replies=replies,
        timeline=timeline,
        digest_day=digest_at.date(),
        checked_at=checked_at,
    )
    tracebacks = sum(1 for log in replicas.logs for line in log if line.startswith("Traceback"))
    if args.keep_logs:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
        for number, log in enumerate(replicas.logs, 1):
            (args.keep_logs / f"server-{number}.log").write_text("".join(log))
        (args.keep_logs / "records.json").write_text(json.dumps([list(r) for r in fake.ask("records")]))
        (args.keep_logs / "fake-pauses.json").write_text(json.dumps(fake_pauses))
    print("\n".join(verdict.details))
    print("\n".join(trace_lines(records, traces, fake_pauses, grace=args.in_flight_grace)))
    print(f"server logs: {tracebacks} tracebacks across the replicas")
    print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"soak took {time.monotonic() - began:.0f} s")
    print(verdict.line)
    return 0 if verdict.passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=180.0, help="how long the load runs (default 180)")
    parser.add_argument(
        "--rate",
        type=float,
        default=TARGET_COMMANDS_PER_S,
        help=f"commands/s; feedback is {FEEDBACK_PER_COMMAND:g}x (default {TARGET_COMMANDS_PER_S:g})",
    )
    parser.add_argument("--outage-seconds", type=float, default=60.0, help="the Slack outage (default 60)")
    parser.add_argument(
        "--restart-after", type=float, default=5.0, help="seconds the killed replica stays down"
    )
    parser.add_argument(
        "--teams",
        type=int,
        default=DEFAULT_TEAMS,
        help=f"teams, each with its own channel (default {DEFAULT_TEAMS}, as bench/latency.py)",
    )
    parser.add_argument("--fast-teams", type=int, default=4, help="teams whose cases escalate at once")
    parser.add_argument("--rate-limited", type=float, default=0.03, help="share of chat calls answered 429")
    parser.add_argument("--server-errors", type=float, default=0.02, help="share of chat calls answered 500")
    parser.add_argument(
        "--in-flight-grace",
        type=float,
        default=0.25,
        help="a call about another case within this many seconds of a 429 may have been in flight already",
    )
    parser.add_argument("--digest-lead", type=float, default=40.0, help="digests fall due at least this late")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds after the last tick before checking"
    )
    parser.add_argument("--drain", type=float, default=300.0, help="how long to wait for the outbox to empty")
    parser.add_argument(
        "--database-url", help="an existing PostgreSQL server (no restart step); a database is created"
    )
    parser.add_argument(
        "--no-tick-after-load",
        dest="tick_after_load",
        action="store_false",
        help="check without waiting for the scheduler's first tick after the load (--quick does this)",
    )
    parser.add_argument("--keep-logs", type=Path, help="write the replicas' logs into this directory")
    parser.add_argument("--serve-traced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--quick", action="store_true", help="under 2 minutes: 30 s load, 10 s outage (same rate and teams)"
    )
    args = parser.parse_args(argv)
    if args.serve_traced:
        serve_traced()
        return 0
    if args.quick:
        args.seconds, args.outage_seconds, args.restart_after = 30.0, 10.0, 3.0
        args.fast_teams, args.digest_lead = 3, 20.0
        args.tick_after_load = False
    print(
        f"soak: 2 replicas on PostgreSQL, {args.rate:g} commands/s + {args.rate * FEEDBACK_PER_COMMAND:g} "
        f"feedback/s for {args.seconds:g} s, {args.teams} teams, outage {args.outage_seconds:g} s; "
        f"{os.cpu_count()} CPUs, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    faults = Faults(rate_limited=args.rate_limited, server_errors=args.server_errors)
    fake = RemoteFakeSlack(functools.partial(_soak_fake, faults=faults))
    try:
        with tempfile.TemporaryDirectory(prefix="cxbench-soak-") as tmp:
            return run(args, Path(tmp), fake)
    finally:
        fake.close()


if __name__ == "__main__":
    sys.exit(main())
