"""When the scheduler next has something to do: a digest falling due, an SLA warning or escalation step.

`serve` simply ticks every minute. A clock that jumps (the console demo's `:advance 1d`) instead
wakes the ticks at exactly these instants, so a day passes in a few dozen ticks rather than 1440,
and no warning is skipped because a step jumped over its window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cxbot.cases.sla import policy_of
from cxbot.config import parse_duration
from cxbot.digest.schedule import local_date, parse_clock, slot_for
from cxbot.models import OPEN_CASE_STATES, Case
from cxbot.runtime import Runtime


def digest_instants(runtime: Runtime, *, after: datetime, until: datetime) -> list[datetime]:
    """Send instants of every team's (and the leadership) digest in (after, until]."""
    plans = [(team.key, team.digest.time, team.timezone, team.digest.cutoff) for team in runtime.config.teams]
    leadership = runtime.config.leadership
    if leadership is not None and leadership.enabled:
        plans.append(("leadership", leadership.time, leadership.timezone, leadership.cutoff))
    instants = []
    for scope, at, timezone, cutoff in plans:
        zone = ZoneInfo(timezone)
        day = local_date(moment=after, zone=zone)
        while True:
            slot = slot_for(
                scope=scope,
                posted_on=day,
                send_time=parse_clock(at),
                zone=zone,
                cutoff=parse_duration(cutoff),
            )
            if slot.due_at > until:
                break
            if slot.due_at > after:
                instants.append(slot.due_at)
            day += timedelta(days=1)
    return instants


async def sla_instants(runtime: Runtime, *, after: datetime) -> list[datetime]:
    """Instants after `after` at which an open case's warning or escalation step may fall due."""
    config = runtime.config
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(
                    Case.team_key,
                    Case.state,
                    Case.ack_due_at,
                    Case.resolve_due_at,
                    Case.ack_next_escalation_at,
                    Case.resolve_next_escalation_at,
                    Case.snoozed_until,
                ).where(Case.state.in_(OPEN_CASE_STATES))
            )
        ).all()
    instants: list[datetime] = []
    for team, state, ack_due, resolve_due, ack_next, resolve_next, snoozed in rows:
        warn = (
            parse_duration(policy_of(config, team).warn_before) if team in config.team_keys else timedelta(0)
        )
        deadlines = [resolve_due, resolve_next, snoozed]
        if state == "new":
            deadlines += [ack_due, ack_next]
        for deadline in deadlines:
            if deadline is None:
                continue
            instants += [moment for moment in (deadline - warn, deadline) if moment > after]
    return instants


async def next_wakeup(runtime: Runtime, *, after: datetime, until: datetime) -> datetime:
    """The first instant in (after, until] at which a tick may have work, or `until` if none."""
    after, until = after.astimezone(UTC), until.astimezone(UTC)
    candidates = [
        *digest_instants(runtime, after=after, until=until),
        *(moment for moment in await sla_instants(runtime, after=after) if moment <= until),
    ]
    return min([until, *candidates])
