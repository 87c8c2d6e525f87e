"""The single customer view (`/cx customer <id>`, design.md §5): every response and case of one customer.

CX is the sum of all interactions, so this reads one customer across sources and touchpoints, newest
first, a page at a time. Pages are cut with keyset pagination on (received_at, id), which the
(customer_id, received_at) index serves directly, so page 30 costs what page 1 costs. The result is
a platform-neutral :class:`CustomerPage`; Slack renders it as Block Kit with Older/Newer buttons,
the console and Teams as text naming the command for the next page.

PII: contact details are masked unless the caller may reveal them (:func:`cxbot.authz.may_see_customer`:
an admin, or a member of a team owning feedback of theirs that a case was opened from); every reveal
writes an `audit_events` row through :func:`record_pii_reveal`. Comments are always masked with
:func:`cxbot.pii.mask_text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.authz import Actor, may_see_customer
from cxbot.cases.detractors import flag, window_of
from cxbot.cases.view import customer_label, customer_ref
from cxbot.config import Config
from cxbot.ingest.routing import METRIC_LABELS
from cxbot.models import OPEN_CASE_STATES, AuditEvent, Case, Customer, Feedback
from cxbot.pii import mask_text

#: 15 items plus the header and the buttons stay far inside Slack's 50 blocks a message.
PAGE_SIZE = 15
#: A comment longer than this is cut in the view (Slack allows 3000 characters per text).
COMMENT_CHARS = 500
#: Open cases named in the header; more are counted.
HEADER_CASES = 5
RECENT, QUARTER = timedelta(days=30), timedelta(days=90)
PII_REVEAL = "pii_reveal"

#: A customer by the bot's own row id, `cust:17`: what buttons and "next page" lines carry, so an
#: external id that is an email or phone never goes into a button value or a chat line.
CUSTOMER_REF = re.compile(r"^cust:([0-9]{1,9})$")

_CURSOR = re.compile(r"^([0-9]{8}T[0-9]{6})(?:\.([0-9]{1,6}))?Z-([0-9]{1,18})$")


class CustomerNotFound(LookupError):
    """No customer by that id (nor a case by that ref with a customer); the message says which."""


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """A position in one customer's history: the (received_at, id) of an item."""

    received_at: datetime
    id: int

    @property
    def token(self) -> str:
        """`20150128T093000Z-1234` (microseconds only when there are some): short enough to type."""
        at = self.received_at.astimezone(UTC)
        micro = f".{at.microsecond:06d}" if at.microsecond else ""
        return f"{at:%Y%m%dT%H%M%S}{micro}Z-{self.id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """The inverse of :attr:`token`; ValueError for anything else."""
        match = _CURSOR.match(token.strip())
        if not match:
            raise ValueError(f"{token!r} is not a position in a customer's history")
        stamp, micro, ident = match.groups()
        at = datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return cls(at.replace(microsecond=int((micro or "0").ljust(6, "0"))), int(ident))


@dataclass(frozen=True, slots=True)
class CaseLine:
    """A case as the view shows it: ref, state, owning team, priority."""

    id: int
    state: str
    team_key: str
    team_name: str
    priority: str

    @property
    def ref(self) -> str:
        return f"CX-{self.id}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_CASE_STATES

    @property
    def label(self) -> str:
        priority = f", {self.priority} priority" if self.priority != "normal" else ""
        return f"{self.ref} [{self.state.replace('_', ' ')}] {self.team_name}{priority}"


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One response of the customer, with the case it opened (if any); the comment is masked."""

    feedback_id: int
    received_at: datetime
    metric: str
    score: float | None
    touchpoint: str | None
    source: str
    comment: str | None
    negative: bool
    case: CaseLine | None

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.received_at, self.feedback_id)

    @property
    def score_label(self) -> str:
        label = METRIC_LABELS.get(self.metric, self.metric)
        return label if self.score is None else f"{label} {self.score:g}"

    @property
    def summary(self) -> str:
        """`2015-01-28 · NPS 1 (negative) · Seat comfort · skytrax_seat`"""
        negative = " (negative)" if self.negative else ""
        return (
            f"{self.received_at:%Y-%m-%d %H:%M} · {self.score_label}{negative} · "
            f"{self.touchpoint or 'no touchpoint'} · {self.source}"
        )


@dataclass(frozen=True, slots=True)
class CustomerPage:
    """One page of one customer's history, with the header facts; `items` newest first."""

    customer_id: int
    #: The customer as the caller may see them (masked unless revealed); never the raw id otherwise.
    label: str
    revealed: bool
    erased: bool
    total: int
    counts: dict[str, int]
    first_seen: datetime | None
    last_seen: datetime | None
    negatives_30: int
    negatives_90: int
    repeat_detractor: str | None
    open_cases: list[CaseLine]
    open_case_count: int
    items: list[HistoryItem]
    #: 0-based position of the first item in the whole history.
    start: int
    older: Cursor | None = None
    newer: Cursor | None = None
    other_cases: list[CaseLine] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + len(self.items)

    def command(self, direction: str) -> str | None:
        """The `customer` command that shows the older or newer page, or None at that end."""
        cursor = self.older if direction == "older" else self.newer
        if cursor is None:
            return None
        keyword = "before" if direction == "older" else "after"
        return f"customer {customer_ref(self.customer_id)} {keyword}:{cursor.token}"

    @property
    def counts_line(self) -> str:
        parts = [f"{n} {METRIC_LABELS.get(m, m)}" for m, n in sorted(self.counts.items())]
        return ", ".join(parts) or "no responses"

    @property
    def seen_line(self) -> str:
        if self.first_seen is None or self.last_seen is None:
            return "no responses yet"
        return f"first seen {self.first_seen:%Y-%m-%d}, last seen {self.last_seen:%Y-%m-%d}"

    @property
    def negatives_line(self) -> str:
        return f"negatives: {self.negatives_30} in 30 days, {self.negatives_90} in 90 days"

    @property
    def cases_line(self) -> str:
        if not self.open_case_count:
            return "open cases: none"
        named = ", ".join(c.label for c in self.open_cases)
        more = self.open_case_count - len(self.open_cases)
        return f"open cases: {named}" + (f" and {more} more" if more > 0 else "")

    @property
    def position_line(self) -> str:
        if not self.items:
            return f"no responses on this page (of {self.total})"
        return f"responses {self.start + 1}–{self.end} of {self.total}, newest first"

    def text(self, *, command: str = "/cx") -> str:
        """The whole page as plain text, for the console, Teams and Slack's notification text."""
        lines = [f"Customer {self.label}"]
        lines.append(f"{self.seen_line} · {self.counts_line}")
        lines.append(self.negatives_line + (f" · ⚠ {self.repeat_detractor}" if self.repeat_detractor else ""))
        lines.append(self.cases_line)
        if self.other_cases:
            lines.append("cases without a response: " + ", ".join(c.label for c in self.other_cases))
        lines.append(self.position_line + ":")
        for item in self.items:
            lines.append(f"• {item.summary}")
            if item.comment:
                lines.append(f"  “{item.comment}”")
            if item.case:
                lines.append(f"  case {item.case.label}")
        for direction in ("newer", "older"):
            next_command = self.command(direction)
            if next_command:
                lines.append(f"{direction.capitalize()}: {command} {next_command}")
        return "\n".join(lines)


async def case_history_command(session: AsyncSession, case_id: int) -> str:
    """`customer cust:17` for a case's own customer: what a card posted before cards carried the row
    ref means by its "Customer history" (`customer CX-42` would first look for an external id `CX-42`)."""
    customer_id = await session.scalar(select(Case.customer_id).where(Case.id == case_id))
    return f"customer {customer_ref(customer_id)}" if customer_id else f"customer CX-{case_id}"


async def customer_owner_teams(session: AsyncSession, customer_id: int) -> set[str]:
    """The teams whose people may see this customer's PII: those owning feedback a case was opened from.

    The feedback's team, not the case's: a case opened by hand (or re-routed) for another team's
    feedback gives that team no way to unmask the customer (see :func:`cxbot.authz.may_see_customer`).
    """
    rows = await session.execute(
        select(Feedback.team_key)
        .join(Case, Case.feedback_id == Feedback.id)
        .where(Feedback.customer_id == customer_id)
        .distinct()
    )
    return set(rows.scalars())


async def record_pii_reveal(
    session: AsyncSession, *, actor: Actor, customer_id: int, now: datetime, detail: str | None = None
) -> None:
    """Audit one reveal of a customer's PII (design.md §7); the row names the customer, never the PII."""
    session.add(
        AuditEvent(
            at=now,
            actor=actor.ident,
            action=PII_REVEAL,
            subject=f"customer:{customer_id}",
            detail=detail,
        )
    )
    await session.flush()


def revealed_label(customer: Customer) -> str:
    """The customer as an authorised caller sees them: external id, name, email, phone in clear."""
    parts = [customer.external_id, *(v for v in (customer.name, customer.email, customer.phone) if v)]
    return " · ".join(parts)


async def find_customer(session: AsyncSession, *, ident: str, case_id: int | None) -> Customer:
    """The customer by internal ref (`cust:17`, what buttons carry), else by external id; failing that,
    when `ident` is a case ref, that case's customer."""
    internal = CUSTOMER_REF.match(ident.strip())
    if internal is not None:
        by_row = await session.get(Customer, int(internal.group(1)))
        if by_row is None:
            raise CustomerNotFound(f"there is no customer {ident.strip()}")
        return by_row
    found = (
        await session.execute(select(Customer).where(Customer.external_id == ident.strip()))
    ).scalar_one_or_none()
    if found is not None:
        return found
    if case_id is not None:
        customer_id = (
            await session.execute(select(Case.customer_id).where(Case.id == case_id))
        ).one_or_none()
        if customer_id is None:
            raise CustomerNotFound(f"there is no customer {ident!r} and no case CX-{case_id}")
        if customer_id[0] is None:
            raise CustomerNotFound(f"CX-{case_id} has no customer (it was opened from free text)")
        customer = await session.get(Customer, customer_id[0])
        if customer is not None:
            return customer
    raise CustomerNotFound(f"there is no customer {ident!r} (give their external id, or a case like CX-42)")


async def customer_page(
    session: AsyncSession,
    *,
    config: Config,
    actor: Actor,
    ident: str,
    case_id: int | None = None,
    before: Cursor | None = None,
    after: Cursor | None = None,
    now: datetime,
    page_size: int = PAGE_SIZE,
) -> CustomerPage:
    """One page of the customer's history as `actor` may see it; a reveal of PII is audited here."""
    customer = await find_customer(session, ident=ident, case_id=case_id)
    cases = await _cases(session, config=config, customer_id=customer.id)
    erased = customer.forgotten_at is not None
    # Nothing to reveal (no name, email or phone on file) is not a reveal, and is not audited.
    has_pii = any((customer.name, customer.email, customer.phone))
    revealed = (
        not erased
        and has_pii
        and may_see_customer(config, actor, owner_teams=await customer_owner_teams(session, customer.id))
    )
    header = await _header(session, config=config, customer_id=customer.id, now=now)
    items, older, newer, start = await _page(
        session,
        config=config,
        customer_id=customer.id,
        cases=cases,
        before=before,
        after=after,
        show_comments=not erased,
        page_size=page_size,
        total=header["total"],
    )
    if revealed:
        await record_pii_reveal(
            session, actor=actor, customer_id=customer.id, now=now, detail="single customer view"
        )
    open_cases = sorted((c for c in cases.all if c.is_open), key=lambda c: -c.id)
    return CustomerPage(
        customer_id=customer.id,
        label=revealed_label(customer) if revealed else (customer_label(customer) or "unknown customer"),
        revealed=revealed,
        erased=erased,
        total=header["total"],
        counts=header["counts"],
        first_seen=header["first_seen"],
        last_seen=header["last_seen"],
        negatives_30=header["negatives_30"],
        negatives_90=header["negatives_90"],
        repeat_detractor=flag(config, header["negatives_window"]),
        open_cases=open_cases[:HEADER_CASES],
        open_case_count=len(open_cases),
        items=items,
        start=start,
        older=older,
        newer=newer,
        other_cases=cases.orphans[:HEADER_CASES],
    )


@dataclass(slots=True)
class _Cases:
    """The customer's cases: all of them, by the feedback that opened them, and those without one."""

    all: list[CaseLine] = field(default_factory=list)
    by_feedback: dict[int, CaseLine] = field(default_factory=dict)
    orphans: list[CaseLine] = field(default_factory=list)


async def _cases(session: AsyncSession, *, config: Config, customer_id: int) -> _Cases:
    rows = await session.execute(
        select(Case.id, Case.state, Case.team_key, Case.priority, Case.feedback_id).where(
            Case.customer_id == customer_id
        )
    )
    found = _Cases()
    for ident, state, team_key, priority, feedback_id in rows.all():
        team_name = config.team(team_key).name if team_key in config.team_keys else team_key
        line = CaseLine(ident, state, team_key, team_name, priority)
        found.all.append(line)
        if feedback_id is None:
            found.orphans.append(line)
        else:
            found.by_feedback[feedback_id] = line
    return found


async def _header(
    session: AsyncSession, *, config: Config, customer_id: int, now: datetime
) -> dict[str, Any]:
    """Counts by metric, first and last seen, negatives in 30/90 days and in the repeat window: one query."""

    def negatives_since(since: datetime) -> Any:
        hit = and_(Feedback.is_negative.is_(True), Feedback.received_at >= since, Feedback.received_at <= now)
        return func.sum(case((hit, 1), else_=0))

    rows = await session.execute(
        select(
            Feedback.metric,
            func.count(),
            func.min(Feedback.received_at),
            func.max(Feedback.received_at),
            negatives_since(now - RECENT),
            negatives_since(now - QUARTER),
            negatives_since(now - window_of(config.routing.repeat_detractor)),
        )
        .where(Feedback.customer_id == customer_id)
        .group_by(Feedback.metric)
    )
    counts: dict[str, int] = {}
    firsts: list[datetime] = []
    lasts: list[datetime] = []
    n30 = n90 = nwin = 0
    for metric, n, first, last, a, b, c in rows.all():
        counts[metric] = int(n)
        firsts.append(first)
        lasts.append(last)
        n30, n90, nwin = n30 + int(a or 0), n90 + int(b or 0), nwin + int(c or 0)
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "first_seen": min(firsts) if firsts else None,
        "last_seen": max(lasts) if lasts else None,
        "negatives_30": n30,
        "negatives_90": n90,
        "negatives_window": nwin,
    }


def _older_than(cursor: Cursor) -> Any:
    # Spelled out rather than a row-value comparison, so both backends use the index on received_at.
    return and_(
        Feedback.received_at <= cursor.received_at,
        or_(
            Feedback.received_at < cursor.received_at,
            and_(Feedback.received_at == cursor.received_at, Feedback.id < cursor.id),
        ),
    )


def _newer_than(cursor: Cursor) -> Any:
    return and_(
        Feedback.received_at >= cursor.received_at,
        or_(
            Feedback.received_at > cursor.received_at,
            and_(Feedback.received_at == cursor.received_at, Feedback.id > cursor.id),
        ),
    )


async def _page(
    session: AsyncSession,
    *,
    config: Config,
    customer_id: int,
    cases: _Cases,
    before: Cursor | None,
    after: Cursor | None,
    show_comments: bool,
    page_size: int,
    total: int,
) -> tuple[list[HistoryItem], Cursor | None, Cursor | None, int]:
    """(items newest first, cursor for older, cursor for newer, position of the first item)."""
    columns = select(
        Feedback.id,
        Feedback.received_at,
        Feedback.metric,
        Feedback.score,
        Feedback.touchpoint_key,
        Feedback.touchpoint,
        Feedback.source,
        Feedback.comment,
        Feedback.is_negative,
    ).where(Feedback.customer_id == customer_id)
    rows: list[Any] = []
    if after is not None:
        # Newer page: read upwards from the cursor, then turn it round.
        found = await session.execute(
            columns.where(_newer_than(after))
            .order_by(Feedback.received_at.asc(), Feedback.id.asc())
            .limit(page_size)
        )
        rows = list(reversed(found.all()))
        if len(rows) < page_size:  # near the top: show the first page rather than a short one
            rows = []
            after = None
    if after is None:
        query = columns.order_by(Feedback.received_at.desc(), Feedback.id.desc()).limit(page_size)
        if before is not None:
            query = query.where(_older_than(before))
        rows = list((await session.execute(query)).all())
    touchpoints = {tp.key: tp.name or tp.key for tp in config.touchpoints}
    items = [
        HistoryItem(
            feedback_id=ident,
            received_at=received_at,
            metric=metric,
            score=score,
            touchpoint=touchpoints.get(key or "") or (mask_text(raw) if raw else None),
            source=source,
            comment=_comment(comment) if show_comments and comment else None,
            negative=bool(negative),
            case=cases.by_feedback.get(ident),
        )
        for ident, received_at, metric, score, key, raw, source, comment, negative in rows
    ]
    if not items:
        return [], None, None, 0
    start = 0
    if before is not None or after is not None:
        newer_than_page = select(func.count()).select_from(Feedback)
        newer_than_page = newer_than_page.where(
            Feedback.customer_id == customer_id, _newer_than(items[0].cursor)
        )
        start = int((await session.execute(newer_than_page)).scalar_one())
    older = items[-1].cursor if start + len(items) < total else None
    newer = items[0].cursor if start > 0 else None
    return items, older, newer, start


def _comment(text: str) -> str:
    masked = mask_text(text.strip())
    return masked if len(masked) <= COMMENT_CHARS else masked[: COMMENT_CHARS - 1] + "…"
