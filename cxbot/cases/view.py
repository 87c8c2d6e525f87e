"""What a case card shows (design.md §5): the case read once, with PII masked, for every platform.

:class:`CaseView` is the one reader platforms share for a case card; the outbox hands it to a
notifier inside a :class:`cxbot.outbox.contract.Delivery`, so a notifier never touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.cases.detractors import current_flag
from cxbot.config import Config
from cxbot.ingest.routing import METRIC_LABELS
from cxbot.models import OPEN_CASE_STATES, Case, Contact, Customer, Feedback, Touchpoint
from cxbot.pii import mask_email, mask_identifier, mask_name, mask_phone, mask_text

HISTORY_WINDOW = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    """The customer's recent experience, because CX is the sum of all interactions."""

    negatives_in_window: int
    open_cases_elsewhere: int
    recent_scores: list[str] = field(default_factory=list)
    #: `repeat detractor: 3 negatives in 90 days` (cxbot.cases.detractors), when the customer is one.
    repeat_detractor: str | None = None
    #: The newest of those other open cases, named: `CX-12 with Billing & Payments`.
    open_case_names: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str | None:
        parts = [f"⚠ {self.repeat_detractor}"] if self.repeat_detractor else []
        if self.negatives_in_window > 1:
            parts.append(f"{_ordinal(self.negatives_in_window)} negative in {HISTORY_WINDOW.days} days")
        if self.open_cases_elsewhere and self.open_case_names:
            more = self.open_cases_elsewhere - len(self.open_case_names)
            plural = "s" if self.open_cases_elsewhere > 1 else ""
            named = ", ".join(self.open_case_names) + (f" and {more} more" if more > 0 else "")
            parts.append(f"open case{plural} {named}")
        elif self.open_cases_elsewhere:
            plural = "s" if self.open_cases_elsewhere > 1 else ""
            parts.append(f"{self.open_cases_elsewhere} other open case{plural}")
        if self.recent_scores:
            parts.append("earlier: " + ", ".join(self.recent_scores))
        return "; ".join(parts) or None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True, slots=True)
class CaseView:
    """Everything a case card shows, read in one short transaction; PII is masked here, once."""

    id: int
    title: str
    state: str
    team_key: str
    team_name: str
    assignee: str | None
    acknowledged_by: str | None
    escalation_level: int
    routing_reason: str
    metric: str | None
    score: float | None
    comment: str | None
    touchpoint: str | None
    customer: str | None
    history: CustomerHistory | None
    created_at: datetime
    ack_due_at: datetime | None
    resolve_due_at: datetime | None
    snoozed_until: datetime | None
    snooze_reason: str | None
    outcome: str | None
    now: datetime
    priority: str = "normal"
    #: The last attempt to reach the customer, as the card says it (`email failed: 400 invalid email`).
    last_contact: str | None = None
    contact_failed: bool = False
    #: Our row id of the case's customer: what a card's "Customer history" button names.
    customer_id: int | None = None

    @property
    def ref(self) -> str:
        return f"CX-{self.id}"

    @property
    def history_command(self) -> str:
        """The command behind "Customer history": the customer by our row ref (`customer cust:17`), so
        an external id that happens to read `CX-42` never stands in for the case's own customer."""
        return f"customer {customer_ref(self.customer_id)}" if self.customer_id else f"customer {self.ref}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_CASE_STATES

    @property
    def escalated_label(self) -> str | None:
        return f"escalated (level {self.escalation_level})" if self.escalation_level > 0 else None

    @property
    def score_label(self) -> str | None:
        if self.metric is None:
            return None
        label = METRIC_LABELS.get(self.metric, self.metric)
        return label if self.score is None else f"{label} {self.score:g}"

    @property
    def sla_clock(self) -> str:
        """The clock that matters now: acknowledgement while new, resolution while open."""
        if not self.is_open:
            return f"{self.state}" + (f" ({self.outcome})" if self.outcome else "")
        if self.snoozed_until and self.snoozed_until > self.now:
            return f"snoozed for {_span(self.snoozed_until - self.now)}"
        due, what = (
            (self.ack_due_at, "acknowledge") if self.state == "new" else (self.resolve_due_at, "resolve")
        )
        if due is None:
            return "no SLA"
        if due <= self.now:
            return f"{what} overdue by {_span(self.now - due)}"
        return f"{what} within {_span(due - self.now)}"


def _span(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins:02d}m"
    return f"{mins}m"


def customer_label(customer: Customer | None) -> str | None:
    """A customer as a channel may see them: external id (masked when it is an email or phone) plus
    masked name and contact details."""
    if customer is None:
        return None
    if customer.forgotten_at is not None:
        return "(erased customer)"
    parts = [mask_identifier(customer.external_id)]
    if customer.name:
        parts.append(mask_name(customer.name))
    if customer.email:
        parts.append(mask_email(customer.email))
    if customer.phone:
        parts.append(mask_phone(customer.phone))
    return " · ".join(parts)


def customer_ref(customer_id: int) -> str:
    """The internal reference `customer` resolves server-side: `cust:17`."""
    return f"cust:{customer_id}"


async def load_case_view(
    session: AsyncSession, case_id: int, *, config: Config, now: datetime, brief: bool = False
) -> CaseView | None:
    """Read a case with its feedback, customer and history; None when the case is gone.

    The case and what it points at come in one joined select: the outbox worker calls this for every
    card refresh, on the same database as the requests. `brief` leaves out the customer's history and
    the last contact (five more statements): a thread line under a card already posted shows neither.
    """
    found = (
        await session.execute(
            select(Case, Feedback, Customer, Touchpoint)
            .outerjoin(Feedback, Feedback.id == Case.feedback_id)
            .outerjoin(Customer, Customer.id == Case.customer_id)
            .outerjoin(Touchpoint, Touchpoint.key == Case.touchpoint_key)
            .where(Case.id == case_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if found is None:
        return None
    case, feedback, customer, touchpoint = found
    wants_history = case.customer_id is not None and not brief
    history = await _history(session, case, config=config, now=now) if wants_history else None
    team_name = config.team(case.team_key).name if case.team_key in config.team_keys else case.team_key
    comment = feedback.comment if feedback and feedback.comment and customer_visible(customer) else None
    return CaseView(
        id=case.id,
        title=mask_text(case.title),
        state=case.state,
        team_key=case.team_key,
        team_name=team_name,
        assignee=case.assignee,
        acknowledged_by=case.acknowledged_by,
        escalation_level=case.escalation_level,
        routing_reason=mask_text(case.routing_reason),
        metric=feedback.metric if feedback else None,
        score=feedback.score if feedback else None,
        comment=mask_text(comment) if comment else None,
        touchpoint=touchpoint.name if touchpoint else _raw_touchpoint(feedback),
        customer=customer_label(customer),
        history=history,
        created_at=case.created_at,
        ack_due_at=case.ack_due_at,
        resolve_due_at=case.resolve_due_at,
        snoozed_until=case.snoozed_until,
        snooze_reason=mask_text(case.snooze_reason) if case.snooze_reason else None,
        outcome=case.outcome,
        now=now,
        priority=case.priority,
        customer_id=case.customer_id,
        **({} if brief else await _last_contact(session, case.id)),
    )


async def _last_contact(session: AsyncSession, case_id: int) -> dict[str, Any]:
    """The newest contact attempt in words: a failure must be seen on the card (design.md §7)."""
    last = await session.scalar(
        select(Contact).where(Contact.case_id == case_id).order_by(Contact.id.desc()).limit(1)
    )
    if last is None:
        return {}
    when = last.finished_at or last.created_at
    if last.status == "failed":
        text = f"{last.channel} failed: {last.result or 'unknown error'}"
    elif last.status == "sent":
        text = f"{last.channel} sent {when:%d %b %H:%M} UTC"
    else:
        text = f"{last.channel} pending" + (f" ({last.result})" if last.attempts and last.result else "")
    return {"last_contact": mask_text(text), "contact_failed": last.status == "failed"}


def _raw_touchpoint(feedback: Feedback | None) -> str | None:
    """An unknown touchpoint is whatever the survey tool sent (a respondent-controlled field): masked."""
    return mask_text(feedback.touchpoint) if feedback and feedback.touchpoint else None


def customer_visible(customer: Customer | None) -> bool:
    """An erased customer's words are not shown again."""
    return customer is None or customer.forgotten_at is None


async def _history(session: AsyncSession, case: Case, *, config: Config, now: datetime) -> CustomerHistory:
    since = now - HISTORY_WINDOW
    negatives = (
        select(func.count())
        .select_from(Feedback)
        .where(
            Feedback.customer_id == case.customer_id,
            Feedback.is_negative.is_(True),
            Feedback.received_at >= since,
        )
    )
    open_elsewhere = (
        select(func.count())
        .select_from(Case)
        .where(Case.customer_id == case.customer_id, Case.id != case.id, Case.state.in_(OPEN_CASE_STATES))
    )
    # Both counts in one round trip.
    negatives_in_window, open_cases_elsewhere = (
        await session.execute(select(negatives.scalar_subquery(), open_elsewhere.scalar_subquery()))
    ).one()
    earlier = await session.execute(
        select(Feedback.metric, Feedback.score)
        .where(
            Feedback.customer_id == case.customer_id,
            Feedback.score.is_not(None),
            Feedback.id != case.feedback_id,
        )
        .order_by(Feedback.received_at.desc())
        .limit(3)
    )
    return CustomerHistory(
        negatives_in_window=int(negatives_in_window),
        open_cases_elsewhere=int(open_cases_elsewhere),
        recent_scores=[f"{METRIC_LABELS.get(m, m)} {s:g}" for m, s in earlier.all()],
        repeat_detractor=await current_flag(session, config=config, customer_id=case.customer_id, now=now),
        open_case_names=await _open_case_names(session, case, config=config),
    )


async def _open_case_names(session: AsyncSession, case: Case, *, config: Config, limit: int = 2) -> list[str]:
    """The customer's newest other open cases with their teams, so the card can say where they are."""
    rows = await session.execute(
        select(Case.id, Case.team_key)
        .where(Case.customer_id == case.customer_id, Case.id != case.id, Case.state.in_(OPEN_CASE_STATES))
        .order_by(Case.id.desc())
        .limit(limit)
    )
    names = {team.key: team.name for team in config.teams}
    return [f"CX-{ident} with {names.get(team, team)}" for ident, team in rows.all()]
