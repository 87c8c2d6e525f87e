"""Posting digests on time and exactly once (design.md §8, §9).

`tick(runtime, now=...)` is the whole job; the APScheduler wiring in `Scheduler` only calls it every
minute. For each team (and the leadership digest) it looks at the local dates from a few days back
to today whose send instant has passed:

- not yet in `digest_runs` and before the cut-off: build the digest, then in one transaction claim
  the (scope, local_date) row with INSERT ... ON CONFLICT DO NOTHING and, only if this replica won,
  queue the digest in the outbox (`deliver_digest`) and record the run `sent` (or `skipped` for a
  quiet day the team skips). Exactly-once comes from the unique key: a second replica's insert waits
  for the first transaction and then inserts nothing; if the first crashes, its claim rolls back with it.
- not in `digest_runs` and past the cut-off: recorded as `skipped`, with the reason, never posted.

Fan-out (issue #15): when hundreds of teams are due in the same minute, the due slots go in batches
of `CLAIM_BATCH`: the batch's digests are built a few at a time (each in its own read session), then
claimed and queued in one transaction (one INSERT of the runs, one SELECT of the destinations, one
INSERT of the outbox rows), so the worker, woken by that commit, posts the first batch while the next
is built. Within a transaction the runs are inserted in (scope, local date) order, so two replicas
claiming overlapping batches wait for each other instead of deadlocking. Each replica starts at a
different batch (by its name) and skips a batch's slots another replica already recorded, so two
replicas share the building rather than both building everything. If a batch's transaction fails,
its slots are claimed one by one, so one bad slot holds back only itself.

`digest_runs.local_date` is the local date the digest is posted on; it reports the day before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.config import Team, parse_duration
from cxbot.db import insert_for, transaction
from cxbot.digest.content import build_team_digest
from cxbot.digest.model import LeadershipDigest, TeamDigest
from cxbot.digest.schedule import Slot, parse_clock, recent_slots
from cxbot.digest.serialize import digest_to_json, slim_for_table
from cxbot.digest.text import render_leadership_digest, render_team_digest
from cxbot.models import DigestRun
from cxbot.outbox.contract import DIGEST
from cxbot.outbox.queue import TeamMessage, enqueue_for_teams, queue_message
from cxbot.runtime import Runtime

log = logging.getLogger(__name__)


#: How many local days back a returning bot looks for digests it has not sent or recorded.
LOOKBACK_DAYS = 3


#: The `digest_runs` scope of the leadership digest; ':' cannot appear in a team key.
LEADERSHIP_SCOPE = "leadership:all"

#: Due digests claimed and queued per transaction: the outbox worker claims 25 rows a round.
CLAIM_BATCH = 25
#: Digests of a batch built at once, each in its own read session, so PostgreSQL overlaps their
#: round trips; never more than the pool has connections beyond one (see `build_concurrency`).
BUILD_CONCURRENCY = 4


def instance_name() -> str:
    """Who claimed a run, for operators reading `digest_runs` across replicas."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one tick did for one slot: `sent`, `skipped`, or `lost` (another replica had it)."""

    scope: str
    local_date: date
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BuiltDigest:
    """A due slot with its digest built, ready to claim; `skip_quiet`: the team skips quiet days."""

    slot: Slot
    digest: TeamDigest | LeadershipDigest
    skip_quiet: bool = False


def _team_message(scope: str, digest: TeamDigest) -> tuple[TeamMessage, str]:
    text = render_team_digest(digest)
    payload = {"text": text, "scope": scope, "digest": digest_to_json(digest)}
    return TeamMessage(digest.team_key, payload, (scope, digest.report_date.isoformat())), text


async def deliver_digest(
    session: AsyncSession,
    *,
    scope: str,
    digest: TeamDigest | LeadershipDigest,
    now: datetime,
    leadership_destinations: Mapping[str, str] | None = None,
) -> str:
    """Queue the digest in the outbox inside the claiming transaction, so it is posted exactly once.

    A team's digest goes to every chat destination of the team; the leadership digest to the
    leadership channel of each platform (`leadership_destinations`: platform → channel). The payload
    carries the text and the digest itself (as JSON), from which each platform renders its own form.
    Returns the text, which the run records in `detail`.
    """
    if isinstance(digest, LeadershipDigest):
        text = render_leadership_digest(digest)
        for platform, channel in (leadership_destinations or {}).items():
            await queue_message(
                session,
                kind=DIGEST,
                platform=platform,
                destination=channel,
                payload={"text": text, "scope": scope, "digest": digest_to_json(slim_for_table(digest))},
                subject=(scope, digest.report_date.isoformat()),
                now=now,
            )
        return text
    message, text = _team_message(scope, digest)
    await enqueue_for_teams(session, [message], kind=DIGEST, now=now)
    return text


async def _recorded(session: AsyncSession, slots: Sequence[Slot]) -> set[tuple[str, date]]:
    if not slots:
        return set()
    rows = await session.execute(
        select(DigestRun.scope, DigestRun.local_date).where(
            DigestRun.scope.in_(sorted({s.scope for s in slots})),
            DigestRun.local_date >= min(s.local_date for s in slots),
        )
    )
    return {(scope, day) for scope, day in rows.all()}


@dataclass(frozen=True, slots=True)
class _Run:
    slot: Slot
    status: str
    detail: str | None


async def _insert_runs(
    session: AsyncSession, runs: Sequence[_Run], *, now: datetime, claimed_by: str
) -> set[tuple[str, date]]:
    """One INSERT ... ON CONFLICT DO NOTHING of finished runs: the (scope, local date) this call created.

    Rows go in (scope, local date) order, so two replicas inserting overlapping sets take the unique
    key's locks in the same order (PostgreSQL): the later one waits for the first, never deadlocks.
    """
    if not runs:
        return set()
    ordered = sorted(runs, key=lambda run: (run.slot.scope, run.slot.local_date))
    inserted = await session.execute(
        insert_for(session, DigestRun)
        .values(
            [
                {
                    "scope": run.slot.scope,
                    "local_date": run.slot.local_date,
                    "scheduled_for": run.slot.due_at,
                    "status": run.status,
                    "claimed_by": claimed_by,
                    "claimed_at": now,
                    "finished_at": now,
                    "detail": run.detail,
                }
                for run in ordered
            ]
        )
        .on_conflict_do_nothing(index_elements=[DigestRun.scope, DigestRun.local_date])
        .returning(DigestRun.scope, DigestRun.local_date)
    )
    return {(scope, day) for scope, day in inserted.all()}


async def claim_and_deliver_many(
    runtime: Runtime, built: Sequence[BuiltDigest], *, now: datetime, claimed_by: str
) -> list[RunOutcome]:
    """Claim the slots and queue the digests this replica won, all in one transaction.

    The runs are written finished (`sent`, or `skipped` for a quiet day the team skips): the claim
    and the delivery commit together, so no other transaction ever sees a claim without its posts.
    A slot another replica already has comes back `lost`.
    """
    runs: list[_Run] = []
    team_messages: dict[tuple[str, date], TeamMessage] = {}
    leadership: list[BuiltDigest] = []
    for item in built:
        slot, digest = item.slot, item.digest
        if item.skip_quiet and isinstance(digest, TeamDigest) and digest.quiet:
            runs.append(_Run(slot, "skipped", f"quiet day: no feedback on {slot.report_date.isoformat()}"))
        elif isinstance(digest, TeamDigest):
            message, text = _team_message(slot.scope, digest)
            team_messages[(slot.scope, slot.local_date)] = message
            runs.append(_Run(slot, "sent", text))
        else:
            leadership.append(item)
            runs.append(_Run(slot, "sent", render_leadership_digest(digest)))
    async with transaction(runtime.sessions) as session:
        won = await _insert_runs(session, runs, now=now, claimed_by=claimed_by)
        await enqueue_for_teams(
            session, [m for key, m in team_messages.items() if key in won], kind=DIGEST, now=now
        )
        destinations = runtime.config.leadership.destinations() if runtime.config.leadership else None
        for item in leadership:
            if (item.slot.scope, item.slot.local_date) in won:
                await deliver_digest(
                    session,
                    scope=item.slot.scope,
                    digest=item.digest,
                    now=now,
                    leadership_destinations=destinations,
                )
    return [
        RunOutcome(run.slot.scope, run.slot.local_date, run.status, run.detail or "")
        if (run.slot.scope, run.slot.local_date) in won
        else RunOutcome(run.slot.scope, run.slot.local_date, "lost")
        for run in runs
    ]


async def claim_and_deliver(
    runtime: Runtime,
    *,
    slot: Slot,
    digest: TeamDigest | LeadershipDigest,
    skip_quiet: bool,
    now: datetime,
    claimed_by: str,
) -> RunOutcome:
    """Claim the slot and deliver in one transaction; `lost` when another replica already has it."""
    (outcome,) = await claim_and_deliver_many(
        runtime, [BuiltDigest(slot, digest, skip_quiet)], now=now, claimed_by=claimed_by
    )
    return outcome


def _missed_detail(slot: Slot) -> str:
    return (
        f"missed: not sent between {slot.due_at:%Y-%m-%d %H:%M} UTC and the cut-off "
        f"{slot.cutoff_at:%Y-%m-%d %H:%M} UTC (the bot was not running)"
    )


async def record_missed(
    runtime: Runtime, slots: Sequence[Slot], *, now: datetime, claimed_by: str
) -> list[RunOutcome]:
    """Slots whose cut-off passed with nobody sending them: recorded as skipped (one INSERT), never
    posted late. Returns the ones this call recorded."""
    runs = [_Run(slot, "skipped", _missed_detail(slot)) for slot in slots]
    async with transaction(runtime.sessions) as session:
        won = await _insert_runs(session, runs, now=now, claimed_by=claimed_by)
    return [
        RunOutcome(run.slot.scope, run.slot.local_date, run.status, run.detail or "")
        for run in runs
        if (run.slot.scope, run.slot.local_date) in won
    ]


def team_slots(team: Team, *, now: datetime) -> list[Slot]:
    return recent_slots(
        scope=team.key,
        now=now,
        send_time=parse_clock(team.digest.time),
        zone=ZoneInfo(team.timezone),
        cutoff=parse_duration(team.digest.cutoff),
        lookback_days=LOOKBACK_DAYS,
    )


async def build_leadership_digest(
    runtime: Runtime,
    *,
    report_date: date,
    now: datetime,
    known: Mapping[tuple[str, date], TeamDigest] | None = None,
) -> LeadershipDigest:
    """Every team's digest of the same local date (each in its own zone), side by side.

    `known` holds team digests this tick already built, by (team, report date): with hundreds of
    teams due at the leadership digest's minute, they are not built a second time."""
    known = known or {}
    async with runtime.sessions() as session:
        teams = [
            known.get((team.key, report_date))
            or await build_team_digest(
                session, team=team, report_date=report_date, now=now, config=runtime.config
            )
            for team in runtime.config.teams
        ]
    return LeadershipDigest(report_date=report_date, generated_at=now, teams=tuple(teams))


async def _build(
    runtime: Runtime,
    slot: Slot,
    team: Team | None,
    now: datetime,
    known: Mapping[tuple[str, date], TeamDigest],
) -> BuiltDigest:
    if team is None:
        digest: TeamDigest | LeadershipDigest = await build_leadership_digest(
            runtime, report_date=slot.report_date, now=now, known=known
        )
        return BuiltDigest(slot, digest)
    async with runtime.sessions() as session:
        digest = await build_team_digest(
            session, team=team, report_date=slot.report_date, now=now, config=runtime.config
        )
    return BuiltDigest(slot, digest, skip_quiet=team.digest.quiet_days == "skip")


def build_concurrency(runtime: Runtime) -> int:
    """Builders at once: on SQLite's single pooled connection, one. Four builders there only queue on
    the connection and crowd out the outbox worker's writes: with 500 teams (tick and worker in one
    process), 172 digests were posted while the tick ran (p50 6.7 s) against 475 with one builder
    (p50 4.3 s), for the same time to the last post (docs/performance.md)."""
    pool_size = getattr(runtime.engine.pool, "size", lambda: BUILD_CONCURRENCY + 1)()
    return max(1, min(BUILD_CONCURRENCY, pool_size - 1))


async def _build_batch(
    runtime: Runtime,
    plans: Sequence[tuple[Slot, Team | None]],
    now: datetime,
    known: dict[tuple[str, date], TeamDigest],
) -> list[BuiltDigest]:
    """The batch's digests, `build_concurrency` at a time, each team's kept in `known`; one that
    fails is logged and left for the next tick, and the others go on."""
    slots = asyncio.Semaphore(build_concurrency(runtime))

    async def one(slot: Slot, team: Team | None) -> BuiltDigest | None:
        async with slots:
            try:
                return await _build(runtime, slot, team, now, known)
            except Exception:  # one team's failure must not hold back the others; retried next tick
                log.exception("digest %s for %s failed", slot.scope, slot.local_date)
                return None

    built = [item for item in await asyncio.gather(*(one(slot, team) for slot, team in plans)) if item]
    for item in built:
        if isinstance(item.digest, TeamDigest):
            known[(item.digest.team_key, item.digest.report_date)] = item.digest
    return built


async def _claim_batch(
    runtime: Runtime, built: Sequence[BuiltDigest], *, now: datetime, claimed_by: str
) -> list[RunOutcome]:
    """One transaction for the batch; if it fails, each slot alone, so a bad one holds back only itself."""
    try:
        return await claim_and_deliver_many(runtime, built, now=now, claimed_by=claimed_by)
    except Exception:
        if len(built) == 1:
            log.exception("digest %s for %s failed", built[0].slot.scope, built[0].slot.local_date)
            return []
        log.exception("digest batch of %d failed; claiming its slots one by one", len(built))
    outcomes: list[RunOutcome] = []
    for item in built:
        outcomes += await _claim_batch(runtime, [item], now=now, claimed_by=claimed_by)
    return outcomes


def _batches(plans: list[tuple[Slot, Team | None]], claimed_by: str) -> list[list[tuple[Slot, Team | None]]]:
    """Team slots in batches of `CLAIM_BATCH`, starting at a batch picked by the replica's name (so two
    replicas mostly build different batches), then the leadership digest (it reads every team)."""
    teams = [plan for plan in plans if plan[1] is not None]
    batches = [teams[i : i + CLAIM_BATCH] for i in range(0, len(teams), CLAIM_BATCH)]
    if batches:
        first = zlib.crc32(claimed_by.encode()) % len(batches)
        batches = batches[first:] + batches[:first]
    batches += [[plan] for plan in plans if plan[1] is None]
    return batches


async def tick(
    runtime: Runtime, *, now: datetime | None = None, claimed_by: str | None = None
) -> list[RunOutcome]:
    """Send every digest that is due and unsent, record missed ones; safe to run on every replica."""
    now = (now or runtime.clock()).astimezone(UTC)
    claimed_by = claimed_by or instance_name()
    plans: list[tuple[Slot, Team | None]] = [
        (slot, team)
        for team in runtime.config.teams
        if team.digest.enabled
        for slot in team_slots(team, now=now)
    ]
    leadership = runtime.config.leadership
    if leadership is not None and leadership.enabled:
        plans += [
            (slot, None)
            for slot in recent_slots(
                scope=LEADERSHIP_SCOPE,
                now=now,
                send_time=parse_clock(leadership.time),
                zone=ZoneInfo(leadership.timezone),
                cutoff=parse_duration(leadership.cutoff),
                lookback_days=LOOKBACK_DAYS,
            )
        ]
    async with runtime.sessions() as session:
        done = await _recorded(session, [slot for slot, _ in plans])
    plans = [(slot, team) for slot, team in plans if (slot.scope, slot.local_date) not in done]
    outcomes: list[RunOutcome] = []
    missed = [slot for slot, _ in plans if now > slot.cutoff_at]
    if missed:
        try:
            outcomes += await record_missed(runtime, missed, now=now, claimed_by=claimed_by)
        except Exception:  # recorded by the next tick; the due digests below go out regardless
            log.exception("recording %d missed digests failed", len(missed))
    due = [(slot, team) for slot, team in plans if now <= slot.cutoff_at]
    known: dict[tuple[str, date], TeamDigest] = {}
    for batch in _batches(due, claimed_by):
        async with runtime.sessions() as session:  # another replica may have got here first
            taken = await _recorded(session, [slot for slot, _ in batch])
        batch = [(slot, team) for slot, team in batch if (slot.scope, slot.local_date) not in taken]
        if batch:
            built = await _build_batch(runtime, batch, now, known)
            outcomes += await _claim_batch(runtime, built, now=now, claimed_by=claimed_by)
    return outcomes
