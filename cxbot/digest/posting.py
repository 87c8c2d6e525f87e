"""Posting digests on time and exactly once (design.md §8, §9).

`tick(runtime, now=...)` is the whole job; the APScheduler wiring in `Scheduler` only calls it every
minute. For each team (and the leadership digest) it looks at the local dates from a few days back
to today whose send instant has passed:

- not yet in `digest_runs` and before the cut-off: build the digest, then in one transaction claim
  the (scope, local_date) row with INSERT ... ON CONFLICT DO NOTHING and, only if this replica won,
  hand the digest to `deliver_digest` and mark the run `sent` (or `skipped` for a quiet day the team
  skips). Exactly-once comes from the unique key: a second replica's insert waits for the first
  transaction and then inserts nothing; if the first crashes, its claim rolls back with it.
- not in `digest_runs` and past the cut-off: recorded as `skipped`, with the reason, never posted.

`digest_runs.local_date` is the local date the digest is posted on; it reports the day before.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
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
from cxbot.outbox.queue import enqueue_for_team, queue_message
from cxbot.runtime import Runtime

log = logging.getLogger(__name__)


#: How many local days back a returning bot looks for digests it has not sent or recorded.
LOOKBACK_DAYS = 3


#: The `digest_runs` scope of the leadership digest; ':' cannot appear in a team key.
LEADERSHIP_SCOPE = "leadership:all"


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
    text = render_team_digest(digest)
    await enqueue_for_team(
        session,
        team_key=digest.team_key,
        kind=DIGEST,
        payload={"text": text, "scope": scope, "digest": digest_to_json(digest)},
        subject=(scope, digest.report_date.isoformat()),
        now=now,
    )
    return text


async def _recorded(session: AsyncSession, slots: list[Slot]) -> set[tuple[str, date]]:
    if not slots:
        return set()
    rows = await session.execute(
        select(DigestRun.scope, DigestRun.local_date).where(
            DigestRun.scope.in_(sorted({s.scope for s in slots})),
            DigestRun.local_date >= min(s.local_date for s in slots),
        )
    )
    return {(scope, day) for scope, day in rows.all()}


async def _insert_run(
    session: AsyncSession, *, slot: Slot, status: str, now: datetime, claimed_by: str, detail: str | None
) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING: the run's id if this call created it, else None."""
    inserted = await session.execute(
        insert_for(session, DigestRun)
        .values(
            scope=slot.scope,
            local_date=slot.local_date,
            scheduled_for=slot.due_at,
            status=status,
            claimed_by=claimed_by,
            claimed_at=now,
            finished_at=None if status == "claimed" else now,
            detail=detail,
        )
        .on_conflict_do_nothing(index_elements=[DigestRun.scope, DigestRun.local_date])
        .returning(DigestRun.id)
    )
    return inserted.scalar_one_or_none()


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
    async with transaction(runtime.sessions) as session:
        run_id = await _insert_run(
            session, slot=slot, status="claimed", now=now, claimed_by=claimed_by, detail=None
        )
        if run_id is None:
            return RunOutcome(slot.scope, slot.local_date, "lost")
        if skip_quiet and isinstance(digest, TeamDigest) and digest.quiet:
            status, detail = "skipped", f"quiet day: no feedback on {slot.report_date.isoformat()}"
        else:
            leadership = runtime.config.leadership
            detail = await deliver_digest(
                session,
                scope=slot.scope,
                digest=digest,
                now=now,
                leadership_destinations=leadership.destinations() if leadership else None,
            )
            status = "sent"
        await session.execute(
            update(DigestRun)
            .where(DigestRun.id == run_id)
            .values(status=status, finished_at=now, detail=detail)
        )
    return RunOutcome(slot.scope, slot.local_date, status, detail)


async def record_missed(runtime: Runtime, *, slot: Slot, now: datetime, claimed_by: str) -> RunOutcome | None:
    """A slot whose cut-off passed with nobody sending it: recorded as skipped, never posted late."""
    detail = (
        f"missed: not sent between {slot.due_at:%Y-%m-%d %H:%M} UTC and the cut-off "
        f"{slot.cutoff_at:%Y-%m-%d %H:%M} UTC (the bot was not running)"
    )
    async with transaction(runtime.sessions) as session:
        run_id = await _insert_run(
            session, slot=slot, status="skipped", now=now, claimed_by=claimed_by, detail=detail
        )
    return None if run_id is None else RunOutcome(slot.scope, slot.local_date, "skipped", detail)


def team_slots(team: Team, *, now: datetime) -> list[Slot]:
    return recent_slots(
        scope=team.key,
        now=now,
        send_time=parse_clock(team.digest.time),
        zone=ZoneInfo(team.timezone),
        cutoff=parse_duration(team.digest.cutoff),
        lookback_days=LOOKBACK_DAYS,
    )


async def build_leadership_digest(runtime: Runtime, *, report_date: date, now: datetime) -> LeadershipDigest:
    """Every team's digest of the same local date (each in its own zone), side by side."""
    async with runtime.sessions() as session:
        teams = [
            await build_team_digest(
                session, team=team, report_date=report_date, now=now, config=runtime.config
            )
            for team in runtime.config.teams
        ]
    return LeadershipDigest(report_date=report_date, generated_at=now, teams=tuple(teams))


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
    outcomes: list[RunOutcome] = []
    for slot, team in plans:
        if (slot.scope, slot.local_date) in done:
            continue
        try:
            if now > slot.cutoff_at:
                missed = await record_missed(runtime, slot=slot, now=now, claimed_by=claimed_by)
                if missed is not None:
                    outcomes.append(missed)
                continue
            digest: TeamDigest | LeadershipDigest
            if team is None:
                digest = await build_leadership_digest(runtime, report_date=slot.report_date, now=now)
            else:
                async with runtime.sessions() as session:
                    digest = await build_team_digest(
                        session, team=team, report_date=slot.report_date, now=now, config=runtime.config
                    )
            outcomes.append(
                await claim_and_deliver(
                    runtime,
                    slot=slot,
                    digest=digest,
                    skip_quiet=team is not None and team.digest.quiet_days == "skip",
                    now=now,
                    claimed_by=claimed_by,
                )
            )
        except Exception:  # one team's failure must not hold back the others; retried next tick
            log.exception("digest %s for %s failed", slot.scope, slot.local_date)
    return outcomes
