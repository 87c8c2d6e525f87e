"""The escalation engine (design.md §6): warnings and escalation steps when an SLA clock runs out.

Every case has two clocks: *acknowledge* (`ack_due_at`, runs while the case is `new`) and *resolve*
(`resolve_due_at`, runs while the case is open). For each clock, :func:`tick` fires, in order:

1. a **warning** line in the case thread `warn_before` the deadline ("escalates in 15 min"), at most
   once, and only while the deadline is still ahead;
2. at the deadline, escalation **step 1 = level 1**: a direct message to each team manager, a thread
   line and a card refresh;
3. every `repeat_every` after the previous step (on the SLA clock, so in business hours when the
   policy has them), the next step, up to `repeat` more steps: step 2 is **level 2**, the team's
   escalation contacts by direct message and a notice in its escalation channel; later steps repeat
   level 2. With nobody configured at a level, the other level's people are told instead, so an
   escalation always reaches someone.

`warn_before` is wall-clock time before the deadline (so "escalates in 15 min" is literally true,
business hours or not); deadlines and `repeat_every` run on the SLA clock (:mod:`cxbot.cases.sla`).
Direct messages and channel notices are queued on each platform the team has a chat destination on.

Acknowledging stops the acknowledge clock; resolving (or closing) stops both. A snoozed case fires
nothing until the snooze ends; a snooze is a mute, never an extension: the deadlines stay where they
were, and when the snooze ends an overdue clock escalates at the next tick.

State lives in the case row (`ack_*`, `resolve_*` columns), never in memory, and every firing is a
compare-and-set UPDATE on that state (`WHERE ack_escalations = :seen ...`) in its own transaction,
together with the case event (the audit trail: what fired and why) and the outbox rows (the chat
messages, delivered later by the outbox worker). Two replicas ticking at once fire each step once;
a tick after a long downtime fires the overdue step once, now, and schedules the next one
`repeat_every` later, so a returning bot neither floods people nor skips a level. No network call
happens here.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from cxbot import markup
from cxbot.cases.sla import add_clock, policy_of
from cxbot.config import Config, SlaPolicy, Team, parse_duration
from cxbot.db import transaction
from cxbot.models import OPEN_CASE_STATES, Case, CaseEvent, TeamDestination
from cxbot.outbox.contract import ESCALATION_CHANNEL, ESCALATION_DM
from cxbot.outbox.queue import queue_message
from cxbot.runtime import Runtime

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "cxbot"
#: Outbox kinds: a direct message to one person (destination = user id) and a channel notice.
TOP_LEVEL = 2

ClockName = Literal["acknowledge", "resolve"]


@dataclass(frozen=True, slots=True)
class Clock:
    """One SLA clock and the case columns that hold its escalation state."""

    name: ClockName
    verb: str
    running_in: tuple[str, ...]
    due_at: InstrumentedAttribute[Any]
    clock_due_at: InstrumentedAttribute[Any]
    warned_at: InstrumentedAttribute[Any]
    escalations: InstrumentedAttribute[Any]
    next_escalation_at: InstrumentedAttribute[Any]


ACKNOWLEDGE = Clock(
    "acknowledge",
    "acknowledged",
    ("new",),
    Case.ack_due_at,
    Case.ack_clock_due_at,
    Case.ack_warned_at,
    Case.ack_escalations,
    Case.ack_next_escalation_at,
)
RESOLVE = Clock(
    "resolve",
    "resolved",
    OPEN_CASE_STATES,
    Case.resolve_due_at,
    Case.resolve_clock_due_at,
    Case.resolve_warned_at,
    Case.resolve_escalations,
    Case.resolve_next_escalation_at,
)
CLOCKS = (ACKNOWLEDGE, RESOLVE)


@dataclass(frozen=True, slots=True)
class ClockState:
    """A clock's escalation state as read from the case, before any claim."""

    deadline: datetime
    clock_due_at: datetime | None
    warned_at: datetime | None
    escalations: int
    next_escalation_at: datetime | None

    @classmethod
    def of(cls, row: Case, clock: Clock) -> ClockState | None:
        deadline = getattr(row, clock.due_at.key)
        if deadline is None:
            return None
        return cls(
            deadline=deadline,
            clock_due_at=getattr(row, clock.clock_due_at.key),
            warned_at=getattr(row, clock.warned_at.key),
            escalations=getattr(row, clock.escalations.key) or 0,
            next_escalation_at=getattr(row, clock.next_escalation_at.key),
        )

    @property
    def current(self) -> bool:
        """False when the deadline moved (a reopen): the stored warning and steps are for another one."""
        return self.clock_due_at == self.deadline


@dataclass(frozen=True, slots=True)
class Due:
    """Something a clock should fire now: a warning (step 0) or escalation step `step` at `level`."""

    case_id: int
    clock: ClockName
    step: int
    level: int
    deadline: datetime

    @property
    def is_warning(self) -> bool:
        return self.step == 0


@dataclass(frozen=True, slots=True)
class Fired:
    """A claimed firing, with who was told; one per case event written."""

    due: Due
    event_id: int
    notified: tuple[str, ...]


@dataclass(slots=True)
class TickReport:
    """What one tick did: cases looked at, firings made, and claims another tick won first."""

    examined: int = 0
    fired: list[Fired] = field(default_factory=list)
    lost: int = 0
    failed: int = 0


def plan(clock: Clock, state: ClockState, *, case_id: int, policy: SlaPolicy, now: datetime) -> Due | None:
    """What this clock should fire at `now` (state, snooze and the case's state are checked elsewhere)."""
    steps = state.escalations if state.current else 0
    if steps >= 1 + policy.repeat:
        return None
    if steps == 0:
        if now >= state.deadline:
            return Due(case_id, clock.name, 1, 1, state.deadline)
        warned = state.warned_at if state.current else None
        warn_before = parse_duration(policy.warn_before)
        if warned is None and warn_before > timedelta(0) and now >= state.deadline - warn_before:
            return Due(case_id, clock.name, 0, 0, state.deadline)
        return None
    # No next instant with steps left means the policy gained repeats since the last step: go on now.
    if state.next_escalation_at is None or now >= state.next_escalation_at:
        return Due(case_id, clock.name, steps + 1, min(steps + 1, TOP_LEVEL), state.deadline)
    return None


#: Configurations whose candidate query is kept: a process runs one, a test suite a few at a time.
KEPT_QUERIES = 8
_candidate_queries: OrderedDict[int, tuple[Config, Any]] = OrderedDict()


def _candidates_query(config: Config) -> Any:
    """Open, unsnoozed cases with a clock near or past its deadline and steps left (a prefilter).

    Its shape follows the configuration (teams, their policies' repeats), its instants are bound
    parameters (:func:`_candidates_params`): built once per loaded configuration, since building it
    and its cache key anew cost more than running it, every tick.
    """
    key = id(config)
    kept = _candidate_queries.get(key)
    if kept is not None and kept[0] is config:
        _candidate_queries.move_to_end(key)
        return kept[1]
    now = bindparam("now")
    per_team = []
    for index, team in enumerate(config.teams):
        policy = policy_of(config, team.key)
        horizon = bindparam(f"horizon_{index}")
        for clock in CLOCKS:
            per_team.append(
                and_(
                    Case.team_key == team.key,
                    Case.state.in_(clock.running_in),
                    clock.due_at.is_not(None),
                    clock.due_at <= horizon,
                    or_(
                        clock.clock_due_at.is_(None),
                        clock.clock_due_at != clock.due_at,
                        clock.escalations < 1 + policy.repeat,
                    ),
                )
            )
    query = (
        select(Case)
        .where(or_(*per_team), or_(Case.snoozed_until.is_(None), Case.snoozed_until <= now))
        .order_by(Case.id)
    )
    _candidate_queries[key] = (config, query)
    while len(_candidate_queries) > KEPT_QUERIES:
        _candidate_queries.popitem(last=False)
    return query


def _candidates_params(config: Config, *, now: datetime) -> dict[str, datetime]:
    """The instants of :func:`_candidates_query` at `now`: each team's horizon is `warn_before` ahead."""
    params = {"now": now}
    for index, team in enumerate(config.teams):
        params[f"horizon_{index}"] = now + parse_duration(policy_of(config, team.key).warn_before)
    return params


async def tick(runtime: Runtime, *, now: datetime | None = None) -> TickReport:
    """Fire every warning and escalation step that is due; safe to run every minute on every replica."""
    now = (now or runtime.clock()).astimezone(UTC)
    config = runtime.config
    report = TickReport()
    async with runtime.sessions() as session:
        query, params = _candidates_query(config), _candidates_params(config, now=now)
        rows = list((await session.execute(query, params)).scalars())
    for row in rows:
        report.examined += 1
        policy = policy_of(config, row.team_key)
        for clock in CLOCKS:
            state = ClockState.of(row, clock)
            if state is None or row.state not in clock.running_in:
                continue
            due = plan(clock, state, case_id=row.id, policy=policy, now=now)
            if due is None:
                continue
            try:
                fired = await _claim_and_fire(runtime, row, clock, state, due, now=now)
            except Exception:  # one case's failure must not hold back the others; retried next tick
                log.exception("escalation of CX-%s (%s step %s) failed", row.id, clock.name, due.step)
                report.failed += 1
                continue
            if fired is None:
                report.lost += 1
            else:
                report.fired.append(fired)
                runtime.counters.inc(
                    "cxbot_escalations_total", clock=clock.name, kind="warning" if due.is_warning else "step"
                )
    return report


async def _claim_and_fire(
    runtime: Runtime, row: Case, clock: Clock, state: ClockState, due: Due, *, now: datetime
) -> Fired | None:
    """Claim the firing with a compare-and-set UPDATE, then write its event and messages; None if lost."""
    config = runtime.config
    policy = policy_of(config, row.team_key)
    values: dict[Any, Any] = {clock.clock_due_at: due.deadline, "updated_at": now}
    if due.is_warning:
        values[clock.warned_at] = now
        if not state.current:
            values.update({clock.escalations: 0, clock.next_escalation_at: None})
    else:
        last = due.step >= 1 + policy.repeat
        values[clock.escalations] = due.step
        values[clock.next_escalation_at] = (
            None if last else add_clock(config, team=row.team_key, start=now, duration=policy.repeat_every)
        )
        if not state.current:
            values[clock.warned_at] = None
        values[Case.escalation_level] = case(
            (Case.escalation_level < due.level, due.level), else_=Case.escalation_level
        )
    async with transaction(runtime.sessions) as session:
        # The claim is the transaction's first statement, so SQLite takes its write lock here.
        claimed = await session.execute(
            update(Case)
            .where(
                Case.id == row.id,
                Case.state.in_(clock.running_in),
                clock.due_at == state.deadline,
                clock.clock_due_at.is_not_distinct_from(state.clock_due_at),
                clock.warned_at.is_not_distinct_from(state.warned_at),
                clock.escalations == state.escalations,
                or_(Case.snoozed_until.is_(None), Case.snoozed_until <= now),
            )
            .values({(k if isinstance(k, str) else k.key): v for k, v in values.items()})
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            return None
        return await _fire(session, row, config, clock, due, policy=policy, now=now)


async def _fire(
    session: AsyncSession,
    row: Case,
    config: Config,
    clock: Clock,
    due: Due,
    *,
    policy: SlaPolicy,
    now: datetime,
) -> Fired:
    """Write the audit event, the thread line (and card refresh), and the escalation messages."""
    team = config.team(row.team_key)
    slash = config.slash_command
    zone = ZoneInfo(team.timezone)
    deadline_text = f"{due.deadline.astimezone(zone):%a %H:%M %Z}"
    total = 1 + policy.repeat
    people, channels = _targets(config, team, due.level) if not due.is_warning else ((), {})
    notified = tuple(markup.person(user) for user in people) + tuple(map(markup.channel, channels.values()))
    # A thread line names the channel in words: the people there were told in the channel itself.
    told = tuple(markup.person(user) for user in people) + (("the escalation channel",) if channels else ())
    if due.is_warning:
        kind = "sla_warning"
        detail = (
            f"Not {clock.verb} yet: escalates in {_in_words(due.deadline - now)} "
            f"({clock.name} by {deadline_text})"
        )
    elif due.step == 1:
        kind = "escalated"
        detail = (
            f"Not {clock.verb} in time (due {deadline_text}): escalated to level {due.level}, "
            f"step 1 of {total}; notified {_listing(told)}"
        )
    else:
        kind = "escalated"
        detail = (
            f"Still not {clock.verb}, {_in_words(now - due.deadline)} overdue: escalation level "
            f"{due.level}, step {due.step} of {total}; notified {_listing(told)}"
        )
    reason = f"{clock.name} deadline {due.deadline.isoformat()} " + (
        "is near" if due.is_warning else "passed" if due.step == 1 else "still missed after the last step"
    )
    # People are messaged on each platform the team is reached on, at their id there (none: skipped).
    destinations = await _team_destinations(session, row.team_key)
    platforms = sorted({platform for platform, _ in destinations})
    # An escalation channel is named per platform in the config: it hears even where the team has no
    # channel of its own.
    reached = sorted({*platforms, *channels})
    event = CaseEvent(
        case_id=row.id,
        at=now,
        actor=SYSTEM_ACTOR,
        kind=kind,
        detail=detail,
        data={
            "clock": clock.name,
            "step": due.step,
            "level": due.level,
            "due_at": due.deadline.isoformat(),
            "reason": reason,
            "notified": list(notified),
            "platforms": platforms,
            "manual": False,
        },
    )
    session.add(event)
    await session.flush()
    await _post_to_team(
        session, row, destinations, event_id=event.id, text=detail, refresh_card=not due.is_warning, now=now
    )
    if not due.is_warning:
        message = _escalation_message(
            row, team, clock, due, deadline_text=deadline_text, slash=slash, now=now
        )
        for platform in reached:
            channel = channels.get(platform)
            # People hear on the platforms their team is reached on, at their id there.
            ids = (config.platform_id(person, platform) for person in people) if platform in platforms else ()
            for user in filter(None, ids):
                await _queue(
                    session,
                    row,
                    kind=ESCALATION_DM,
                    platform=platform,
                    destination=user,
                    text=message,
                    event_id=event.id,
                    now=now,
                )
            if channel:
                await _queue(
                    session,
                    row,
                    kind=ESCALATION_CHANNEL,
                    platform=platform,
                    destination=channel,
                    text=message,
                    event_id=event.id,
                    now=now,
                )
    return Fired(due=due, event_id=event.id, notified=notified)


def _targets(config: Config, team: Team, level: int) -> tuple[tuple[str, ...], dict[str, str]]:
    """Who hears at a level (people keys, or ids of people not in `people:`) and the escalation
    channel per platform: managers, then escalation contacts and channels; never nobody if avoidable."""
    managers = tuple(dict.fromkeys(map(config.person_of, team.managers)))
    contacts = tuple(dict.fromkeys(map(config.person_of, team.escalation.contacts)))
    channels = team.escalation.channels()
    if level <= 1:
        return (managers or contacts), {}
    if contacts or channels:
        return contacts, channels
    return managers, {}


async def _team_destinations(session: AsyncSession, team_key: str) -> list[tuple[str, str]]:
    """(platform, address) of each chat destination of the team."""
    rows = await session.execute(
        select(TeamDestination.platform, TeamDestination.address).where(TeamDestination.team_key == team_key)
    )
    return [(platform, address) for platform, address in rows.all()]


async def _post_to_team(
    session: AsyncSession,
    row: Case,
    destinations: list[tuple[str, str]],
    *,
    event_id: int,
    text: str,
    refresh_card: bool,
    now: datetime,
) -> None:
    """Queue the thread line (and the card refresh) in every destination of the team."""
    kinds = ("case.card", "case.thread") if refresh_card else ("case.thread",)
    for platform, address in destinations:
        for kind in kinds:
            await _queue(
                session,
                row,
                kind=kind,
                platform=platform,
                destination=address,
                text=text,
                event_id=event_id,
                now=now,
            )


async def _queue(
    session: AsyncSession,
    row: Case,
    *,
    kind: str,
    platform: str,
    destination: str,
    text: str,
    event_id: int,
    now: datetime,
) -> None:
    """One outbox row; the dedupe key names the event, so the same firing can never queue twice."""
    await queue_message(
        session,
        kind=kind,
        platform=platform,
        destination=destination,
        payload={"case_id": row.id, "event_id": event_id, "text": text},
        subject=(row.id, event_id, destination),
        case_id=row.id,
        now=now,
    )


def _escalation_message(
    row: Case, team: Team, clock: Clock, due: Due, *, deadline_text: str, slash: str, now: datetime
) -> str:
    """What the people at a level read: which case, how late, and how to act."""
    late = _in_words(now - due.deadline)
    verb = "ack" if clock.name == "acknowledge" else "show"
    return (
        f"{markup.alert('urgent')} CX-{row.id} ({markup.plain(team.name)}) is not {clock.verb}: "
        f"due {deadline_text}, {late} overdue. Escalation level {due.level}.\n"
        f"{markup.quote(markup.shown(row.title))}\n"
        f"Act on it: {markup.command(f'{slash} {verb} CX-{row.id}')}"
    )


def _in_words(delta: timedelta) -> str:
    """`15 min`, `2 h 5 min`, `3 d 4 h`: how long, to the minute, for people."""
    minutes = max(0, round(delta.total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def _listing(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "nobody (no managers or escalation contacts configured)"
