"""Case lifecycle flows (design.md §1, §6): every action a person takes on a case.

Each flow runs inside the caller's transaction (one per interaction), checks authorization, changes
state with a compare-and-set UPDATE (`WHERE state IN (...)`), appends a case event, and writes the
resulting chat updates to the outbox in the same transaction. A double click, a platform retry or a
replayed request therefore changes state once and notifies once, on SQLite as on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot import markup
from cxbot.authz import (
    Actor,
    Denied,
    assignable,
    mine,
    require_feedback_owner,
    require_manager,
    require_member,
)
from cxbot.cases.detractors import raise_priority
from cxbot.cases.sla import deadlines
from cxbot.config import Config
from cxbot.db import insert_for
from cxbot.ingest.routing import METRIC_LABELS
from cxbot.models import OPEN_CASE_STATES, Case, CaseEvent, Contact, Feedback
from cxbot.outbox.queue import queue_case_cards, queue_case_update

__all__ = [
    "ActionResult",
    "CaseNotFound",
    "Denied",
    "FieldRejected",
    "InvalidTransition",
    "NewCaseRejected",
    "acknowledge",
    "assign",
    "escalate",
    "get_case",
    "note",
    "open_case",
    "reopen",
    "resolve",
    "route",
    "snooze",
    "take",
    "timeline",
]


#: People named in a refused `assign`; more are counted.
MAX_NAMED = 10
#: The one outcome that needs no contact attempt, only the reason (design.md §7).
COULD_NOT_CONTACT = "could-not-contact"


class CaseNotFound(LookupError):
    """No case with that id."""


class InvalidTransition(ValueError):
    """The case is in a state where this action makes no sense; the message says which."""


NO_CONTACT_EXAMPLE = "no phone or email on file"


class FieldRejected(InvalidTransition):
    """Refused because of one input; `field` names it, so a form can point at it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NewCaseRejected(FieldRejected):
    """A new case cannot be opened as asked; `field` names the input to fix."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action did: the case as it now is, whether anything changed, and a sentence for the user."""

    case: Case
    changed: bool
    message: str


async def get_case(session: AsyncSession, case_id: int) -> Case:
    """The case, or CaseNotFound naming it."""
    case = await session.get(Case, case_id, populate_existing=True)
    if case is None:
        raise CaseNotFound(f"CX-{case_id} does not exist")
    return case


async def timeline(session: AsyncSession, case_id: int) -> list[CaseEvent]:
    """The case's events, oldest first."""
    rows = await session.execute(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id))
    return list(rows.scalars())


#: Compare-and-set UPDATEs by (states allowed from, columns set): the flows use a dozen such shapes.
_transitions: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}


def _transition_statement(allowed_from: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """The compare-and-set UPDATE … RETURNING of one shape, its values bound: built once per shape, since
    building a statement and its cache key anew cost about as much as running it."""
    key = (allowed_from, columns)
    statement = _transitions.get(key)
    if statement is None:
        statement = _transitions[key] = (
            update(Case)
            .where(Case.id == bindparam("cas_case_id"), Case.state.in_(allowed_from))
            .values({column: bindparam(f"cas_{column}") for column in columns})
            .returning(Case)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
    return statement


async def transition(
    session: AsyncSession, case: Case, *, allowed_from: tuple[str, ...], values: dict[str, Any]
) -> bool:
    """Compare-and-set: apply `values` only if the case is still in one of `allowed_from`.

    `UPDATE … RETURNING` refreshes `case` in the same round trip when it changed; only a lost race
    reads it again, to say who won. Values that are SQL expressions (a counter + 1) go into the
    statement; plain values are bound parameters of a statement kept per shape.
    """
    if any(isinstance(value, ColumnElement) for value in values.values()):
        statement = (
            update(Case)
            .where(Case.id == case.id, Case.state.in_(allowed_from))
            .values(**values)
            .returning(Case)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        changed = await session.execute(statement)
    else:
        statement = _transition_statement(allowed_from, tuple(values))
        params = {f"cas_{column}": value for column, value in values.items()}
        changed = await session.execute(statement, {"cas_case_id": case.id, **params})
    if changed.scalar_one_or_none() is None:
        await session.refresh(case)
        return False
    return True


async def record_event(
    session: AsyncSession,
    case: Case,
    *,
    actor: Actor,
    kind: str,
    detail: str,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> CaseEvent:
    """Append the event and queue the card refresh and thread line for every destination of the team."""
    event = CaseEvent(case_id=case.id, at=now, actor=actor.ident, kind=kind, detail=detail, data=data)
    session.add(event)
    await session.flush()  # the event's id names its outbox rows
    await queue_case_update(
        session, case_id=case.id, team_key=case.team_key, event_id=event.id, text=detail, now=now
    )
    return event


async def acknowledge(
    session: AsyncSession, *, config: Config, case_id: int, actor: Actor, now: datetime
) -> ActionResult:
    """Stop the acknowledgement clock. Managers (and escalation contacts, admins) acknowledge."""
    case = await get_case(session, case_id)
    require_manager(config, actor, case.team_key, doing="acknowledge its cases")
    if case.state != "new":
        who = f" by {markup.person(case.acknowledged_by)}" if case.acknowledged_by else ""
        return ActionResult(case, False, f"{case.ref} was already acknowledged{who}")
    changed = await transition(
        session,
        case,
        allowed_from=("new",),
        values={
            "state": "acknowledged",
            "acknowledged_at": now,
            "acknowledged_by": actor.ident,
            "updated_at": now,
        },
    )
    if not changed:
        return ActionResult(
            case, False, f"{case.ref} was already acknowledged by {markup.person(case.acknowledged_by)}"
        )
    await record_event(
        session,
        case,
        actor=actor,
        kind="acknowledged",
        detail=f"Acknowledged by {markup.person(actor.ident)}",
        now=now,
    )
    return ActionResult(case, True, f"{case.ref} acknowledged")


async def take(
    session: AsyncSession, *, config: Config, case_id: int, actor: Actor, now: datetime
) -> ActionResult:
    """Assign the case to yourself and start work; taking a new case also acknowledges it."""
    case = await get_case(session, case_id)
    require_member(config, actor, case.team_key, doing="take its cases")
    if case.state == "in_progress" and case.assignee in mine(config, actor):
        return ActionResult(case, False, f"{case.ref} is already yours")
    values: dict[str, Any] = {
        "state": "in_progress",
        "assignee": actor.ident,
        "updated_at": now,
        "snoozed_until": None,
        "snooze_reason": None,
    }
    if case.state == "new":
        values.update(acknowledged_at=now, acknowledged_by=actor.ident)
    if case.in_progress_at is None:
        values["in_progress_at"] = now
    changed = await transition(
        session, case, allowed_from=("new", "acknowledged", "in_progress"), values=values
    )
    if not changed:
        raise InvalidTransition(f"{case.ref} is {case.state}; reopen it first")
    await record_event(
        session, case, actor=actor, kind="taken", detail=f"Taken by {markup.person(actor.ident)}", now=now
    )
    return ActionResult(case, True, f"{case.ref} is now yours")


async def assign(
    session: AsyncSession, *, config: Config, case_id: int, actor: Actor, user: str, now: datetime
) -> ActionResult:
    """Give the case to someone of its team; reassigning clears a snooze (design.md §6).

    The assignee is checked against the team's people (:func:`cxbot.authz.assignable`) before it is
    stored or shown anywhere, and a refusal names who may be assigned, never what was typed.
    """
    case = await get_case(session, case_id)
    require_member(config, actor, case.team_key, doing="assign its cases")
    user = config.person_of(user)  # a platform id (a Slack mention, a picked user) becomes the person
    people = assignable(config, case.team_key)
    if user not in people:
        who = ", ".join(markup.person(p) for p in people[:MAX_NAMED]) or "nobody is listed in the config"
        if len(people) > MAX_NAMED:
            who += f" and {len(people) - MAX_NAMED} more"
        raise FieldRejected(
            "assignee",
            f"{case.ref} can be assigned only to a member, manager or escalation contact of "
            f"{case.team_key}, or an admin: {who}. Usage: {config.slash_command} assign {case.ref} @person",
        )
    if case.assignee in config.aliases(user):
        return ActionResult(case, False, f"{case.ref} is already assigned to {markup.person(user)}")
    values: dict[str, Any] = {
        "assignee": user,
        "updated_at": now,
        "snoozed_until": None,
        "snooze_reason": None,
    }
    changed = await transition(session, case, allowed_from=OPEN_CASE_STATES, values=values)
    if not changed:
        raise InvalidTransition(f"{case.ref} is {case.state}; reopen it before assigning")
    await record_event(
        session,
        case,
        actor=actor,
        kind="assigned",
        detail=f"Assigned to {markup.person(user)} by {markup.person(actor.ident)}",
        now=now,
    )
    return ActionResult(case, True, f"{case.ref} assigned to {markup.person(user)}")


async def route(
    session: AsyncSession, *, config: Config, case_id: int, actor: Actor, team: str, now: datetime
) -> ActionResult:
    """Move the case to another team: the owning team's members or an admin may do it."""
    case = await get_case(session, case_id)
    if team not in config.team_keys:
        raise InvalidTransition(f"{team!r} is not a team (teams are: {', '.join(config.team_keys)})")
    require_member(config, actor, case.team_key, doing="re-route its cases")
    if case.team_key == team:
        return ActionResult(case, False, f"{case.ref} is already with {team}")
    previous = case.team_key
    values = {
        "team_key": team,
        "assignee": None,
        "snoozed_until": None,
        "snooze_reason": None,
        "routing_rule": "manual",
        "routing_reason": f"re-routed from {previous} by {actor.ident}",
        "updated_at": now,
    }
    changed = await transition(session, case, allowed_from=OPEN_CASE_STATES, values=values)
    if not changed:
        raise InvalidTransition(f"{case.ref} is {case.state}; reopen it before re-routing")
    await record_event(
        session,
        case,
        actor=actor,
        kind="routed",
        detail=f"Re-routed from {previous} to {team} by {markup.person(actor.ident)}",
        now=now,
        data={"from": previous, "to": team},
    )
    return ActionResult(case, True, f"{case.ref} moved from {previous} to {team}")


async def note(
    session: AsyncSession, *, config: Config, case_id: int, actor: Actor, text: str, now: datetime
) -> ActionResult:
    """Add a line to the case's timeline."""
    case = await get_case(session, case_id)
    require_member(config, actor, case.team_key, doing="add notes to its cases")
    await record_event(
        session,
        case,
        actor=actor,
        kind="note",
        detail=f"{markup.person(actor.ident)}: {markup.plain(text)}",
        now=now,
    )
    return ActionResult(case, True, f"Note added to {case.ref}")


async def snooze(
    session: AsyncSession,
    *,
    config: Config,
    case_id: int,
    actor: Actor,
    duration: timedelta,
    reason: str,
    now: datetime,
) -> ActionResult:
    """Pause escalation for a while; needs an acknowledged case and a reason (design.md §6)."""
    case = await get_case(session, case_id)
    require_member(config, actor, case.team_key, doing="snooze its cases")
    if not reason.strip():
        raise InvalidTransition("a snooze needs a reason")
    if case.state == "new":
        raise InvalidTransition(f"{case.ref} must be acknowledged before it can be snoozed")
    until = now + duration
    changed = await transition(
        session,
        case,
        allowed_from=("acknowledged", "in_progress", "contacted"),
        values={"snoozed_until": until, "snooze_reason": reason.strip(), "updated_at": now},
    )
    if not changed:
        raise InvalidTransition(f"{case.ref} is {case.state}; only open cases can be snoozed")
    await record_event(
        session,
        case,
        actor=actor,
        kind="snoozed",
        detail=f"Snoozed until {until:%Y-%m-%d %H:%M} UTC by {markup.person(actor.ident)}: "
        + markup.plain(reason.strip()),
        now=now,
    )
    return ActionResult(case, True, f"{case.ref} snoozed until {until:%Y-%m-%d %H:%M} UTC")


async def escalate(
    session: AsyncSession, *, config: Config, case_id: int, actor: Actor, now: datetime
) -> ActionResult:
    """Raise the case to the next escalation level now."""
    case = await get_case(session, case_id)
    require_member(config, actor, case.team_key, doing="escalate its cases")
    level = case.escalation_level + 1
    changed = await transition(
        session,
        case,
        allowed_from=OPEN_CASE_STATES,
        values={"escalation_level": Case.escalation_level + 1, "snoozed_until": None, "updated_at": now},
    )
    if not changed:
        raise InvalidTransition(f"{case.ref} is {case.state}; only open cases escalate")
    await record_event(
        session,
        case,
        actor=actor,
        kind="escalated",
        detail=f"Escalated to level {case.escalation_level} by {markup.person(actor.ident)}",
        now=now,
        data={"level": level, "manual": True},
    )
    return ActionResult(case, True, f"{case.ref} escalated to level {case.escalation_level}")


async def resolve(
    session: AsyncSession,
    *,
    config: Config,
    case_id: int,
    actor: Actor,
    outcome: str,
    root_cause: str | None,
    note_text: str | None = None,
    no_contact_reason: str | None = None,
    now: datetime,
) -> ActionResult:
    """Resolve with an outcome and, if given, a root cause from the configured list.

    The loop must be closed or explicitly not (design.md §7): a case resolves only after a contact
    attempt, or as `could-not-contact` with the reason.
    """
    case = await get_case(session, case_id)
    require_member(config, actor, case.team_key, doing="resolve its cases")
    if root_cause is not None:
        known = {c.lower(): c for c in config.root_causes}
        if root_cause.lower() not in known:
            raise InvalidTransition(f"{root_cause!r} is not a root cause: {', '.join(config.root_causes)}")
        root_cause = known[root_cause.lower()]
    if case.state in ("resolved", "closed"):
        return ActionResult(case, False, f"{case.ref} is already {case.state}")
    reason = (no_contact_reason or "").strip() or None
    if outcome == COULD_NOT_CONTACT:
        if reason is None:
            raise FieldRejected(
                "reason",
                f"{COULD_NOT_CONTACT} needs the reason the customer could not be contacted, e.g. "
                + markup.command(
                    f"{config.slash_command} resolve {case.ref} {COULD_NOT_CONTACT} {NO_CONTACT_EXAMPLE}"
                ),
            )
    else:
        reason = None
        attempted = await session.scalar(select(Contact.id).where(Contact.case_id == case.id).limit(1))
        if attempted is None:
            raise FieldRejected(
                "outcome",
                f"{case.ref} cannot be resolved as {outcome} before the customer was contacted: "
                f"contact them first ({markup.command(f'{config.slash_command} contact {case.ref}')}), "
                f"or resolve as {COULD_NOT_CONTACT} with the reason",
            )
    changed = await transition(
        session,
        case,
        allowed_from=OPEN_CASE_STATES,
        values={
            "state": "resolved",
            "resolved_at": now,
            "outcome": outcome,
            "root_cause": root_cause,
            "resolution_note": note_text,
            "no_contact_reason": reason,
            "snoozed_until": None,
            "updated_at": now,
        },
    )
    if not changed:
        return ActionResult(case, False, f"{case.ref} is already {case.state}")
    cause = f", root cause: {root_cause}" if root_cause else ""
    cause += f" ({markup.plain(reason)})" if reason else ""
    await record_event(
        session,
        case,
        actor=actor,
        kind="resolved",
        detail=f"Resolved as {outcome}{cause} by {markup.person(actor.ident)}"
        + (f": {markup.plain(note_text)}" if note_text else ""),
        now=now,
        data={"outcome": outcome, "root_cause": root_cause, "no_contact_reason": reason},
    )
    return ActionResult(case, True, f"{case.ref} resolved as {outcome}")


async def reopen(
    session: AsyncSession, *, config: Config, case_id: int, actor: Actor, now: datetime
) -> ActionResult:
    """Bring a resolved case back; its clocks restart from now."""
    case = await get_case(session, case_id)
    require_member(config, actor, case.team_key, doing="reopen its cases")
    if case.state in OPEN_CASE_STATES:
        return ActionResult(case, False, f"{case.ref} is open already ({case.state})")
    ack_due, resolve_due = deadlines(config, team=case.team_key, start=now)
    changed = await transition(
        session,
        case,
        allowed_from=("resolved", "closed"),
        values={
            "state": "acknowledged",
            "reopened_count": Case.reopened_count + 1,
            "resolved_at": None,
            "closed_at": None,
            "outcome": None,
            "ack_due_at": ack_due,
            "resolve_due_at": resolve_due,
            "escalation_level": 0,
            "updated_at": now,
        },
    )
    if not changed:
        return ActionResult(case, False, f"{case.ref} is open already ({case.state})")
    await record_event(
        session,
        case,
        actor=actor,
        kind="reopened",
        detail=f"Reopened by {markup.person(actor.ident)}",
        now=now,
    )
    return ActionResult(case, True, f"{case.ref} reopened")


async def count_open(session: AsyncSession, *, team: str) -> int:
    rows = await session.execute(
        select(func.count()).select_from(Case).where(Case.team_key == team, Case.state.in_(OPEN_CASE_STATES))
    )
    return int(rows.scalar_one())


MANUAL_RULE = "manual"
MAX_TITLE = 300
MAX_REASON = 500


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _feedback_title(feedback: Feedback) -> str:
    """The same title ingest gives a case, so a case opened by hand reads like any other."""
    where = feedback.touchpoint_key or feedback.touchpoint or "no touchpoint"
    if feedback.score is not None:
        return f"{METRIC_LABELS.get(feedback.metric, feedback.metric)} {feedback.score:g} at {where}"
    return f"Negative comment at {where}"


async def open_case(
    session: AsyncSession,
    *,
    config: Config,
    actor: Actor,
    team: str,
    feedback_id: int | None = None,
    text: str | None = None,
    touchpoint: str | None = None,
    now: datetime,
) -> ActionResult:
    """Open a case by hand, from existing feedback or free text (first line the title, the rest kept).

    Same deadlines and opening card as ingest, so a manual case escalates and shows like any other;
    the `created` event says who opened it and why. Members of the chosen team or admins may do it;
    from feedback, only if they are also members of the team owning that feedback (or admins).
    """
    if team not in config.team_keys:
        raise NewCaseRejected("team", f"{team!r} is not a team (teams are: {', '.join(config.team_keys)})")
    require_member(config, actor, team, doing="open cases for it")
    text = (text or "").strip() or None
    if (feedback_id is None) == (text is None):
        raise NewCaseRejected("feedback", "give either a feedback id or a text for the new case, not both")
    touchpoint_key: str | None = None
    if touchpoint:
        known = config.touchpoint_index().get(touchpoint.strip().lower())
        if known is None:
            raise NewCaseRejected("touchpoint", f"{touchpoint!r} is not a configured touchpoint")
        touchpoint_key = known.key
    customer_id: int | None = None
    description: str | None = None
    if feedback_id is not None:
        feedback = await session.get(Feedback, feedback_id)
        if feedback is None:
            raise NewCaseRejected("feedback", f"there is no feedback with id {feedback_id}")
        # The feedback's owner decides, whatever team the case is for: else any member could open a
        # case on another team's feedback and so unmask its customer (issue #11).
        try:
            require_feedback_owner(config, actor, feedback_team=feedback.team_key, feedback_id=feedback_id)
        except Denied as denied:  # a form points at the feedback field
            raise NewCaseRejected("feedback", f"Not allowed: {denied}") from None
        await _no_case_yet(session, feedback_id)
        title = _feedback_title(feedback)
        customer_id = feedback.customer_id
        touchpoint_key = touchpoint_key or feedback.touchpoint_key
        why = f"opened by hand by {actor.ident} from feedback {feedback_id}"
    else:
        assert text is not None
        first, _, rest = text.partition("\n")
        title = _clip(first.strip() or text, MAX_TITLE)
        description = rest.strip() or (text if len(first.strip()) > MAX_TITLE else None)
        why = f"opened by hand by {actor.ident}"
    ack_due, resolve_due = deadlines(config, team=team, start=now)
    inserted = await session.execute(
        insert_for(session, Case.__table__)
        .values(
            feedback_id=feedback_id,
            customer_id=customer_id,
            team_key=team,
            touchpoint_key=touchpoint_key,
            title=title,
            state="new",
            priority="normal",
            routing_rule=MANUAL_RULE,
            routing_reason=_clip(why, MAX_REASON),
            created_by=actor.ident,
            escalation_level=0,
            reopened_count=0,
            created_at=now,
            updated_at=now,
            ack_due_at=ack_due,
            resolve_due_at=resolve_due,
        )
        .on_conflict_do_nothing(index_elements=[Case.feedback_id])
        .returning(Case.id)
    )
    case_id = inserted.scalar_one_or_none()
    if case_id is None:  # another request opened a case for this feedback between the check and here
        assert feedback_id is not None
        await _no_case_yet(session, feedback_id)
        raise NewCaseRejected("feedback", f"feedback {feedback_id} already has a case")
    await raise_priority(session, config=config, case_ids=[case_id], now=now)
    detail = f"Opened by hand by {markup.person(actor.ident)}" + (
        f": {markup.plain(description)}" if description else ""
    )
    session.add(
        CaseEvent(
            case_id=case_id,
            at=now,
            actor=actor.ident,
            kind="created",
            detail=detail,
            data={"rule": MANUAL_RULE, "feedback_id": feedback_id, "touchpoint": touchpoint_key},
        )
    )
    await queue_case_cards(session, [(case_id, team)], now=now)
    case = await get_case(session, case_id)
    return ActionResult(case, True, f"{case.ref} opened for {team}: {markup.shown(title)}")


async def _no_case_yet(session: AsyncSession, feedback_id: int) -> None:
    """One case per feedback (the unique key): name the existing case so the user can go to it."""
    existing = await session.execute(select(Case.id).where(Case.feedback_id == feedback_id))
    found = existing.scalar_one_or_none()
    if found is not None:
        raise NewCaseRejected("feedback", f"feedback {feedback_id} already has a case: CX-{found}")
