"""Repeat detractors: customers whose negative responses pile up (design.md §5, `routing.repeat_detractor`).

One negative is an incident; three in a quarter is a relationship going wrong, and the case card, the
customer view and routing should all say so. The rule (how many negatives in what window, and the
priority their cases get) is configured once; this module is the one place it is applied.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.config import Config, RepeatDetractor, parse_duration
from cxbot.models import Case, Feedback

#: Lowest first: a rule only ever raises a case's priority, never lowers one set by hand.
PRIORITY_ORDER = ("low", "normal", "high", "urgent")
#: cases.routing_reason is VARCHAR(500).
MAX_ROUTING_REASON = 500
#: Cases judged per round of three statements: a CSV import's batch of 10,000 rows opens about 2,000
#: cases, so it takes one round, not four. Bound values stay far under both databases' 32,766.
_CHUNK = 5_000
#: The priority a case opens with.
NEW_CASE_PRIORITY: str = Case.__table__.c.priority.default.arg  # type: ignore[attr-defined]


def window_of(rule: RepeatDetractor) -> timedelta:
    return parse_duration(rule.window)


def flag(config: Config, negatives: int) -> str | None:
    """`repeat detractor: 3 negatives in 90 days` when the count reaches the configured threshold."""
    rule = config.routing.repeat_detractor
    if negatives < rule.negatives:
        return None
    return f"repeat detractor: {negatives} negatives in {_window_label(window_of(rule))}"


def _window_label(window: timedelta) -> str:
    if window.days and window == timedelta(days=window.days):
        return f"{window.days} days"
    hours = window.total_seconds() / 3600
    return f"{hours:g} hours"


async def negatives_between(
    session: AsyncSession, *, customer_id: int, since: datetime, until: datetime | None = None
) -> int:
    """Negative responses of one customer received in [since, until]; uses (customer_id, received_at)."""
    query = (
        select(func.count())
        .select_from(Feedback)
        .where(
            Feedback.customer_id == customer_id,
            Feedback.received_at >= since,
            Feedback.is_negative.is_(True),
        )
    )
    if until is not None:
        query = query.where(Feedback.received_at <= until)
    return int((await session.execute(query)).scalar_one())


async def current_flag(
    session: AsyncSession, *, config: Config, customer_id: int, now: datetime
) -> str | None:
    """The flag as of now, for the case card."""
    since = now - window_of(config.routing.repeat_detractor)
    return flag(config, await negatives_between(session, customer_id=customer_id, since=since, until=now))


async def raise_priority(
    session: AsyncSession,
    *,
    config: Config,
    case_ids: Sequence[int],
    now: datetime,
    opened: Sequence[tuple[int, int | None, datetime]] | None = None,
) -> list[int]:
    """Give newly opened cases of repeat detractors the configured priority; returns the cases raised.

    Called where cases open (ingest and by hand), in their transaction, after the feedback is stored.
    Each case is judged at its own feedback's received time, so a bulk import of old surveys flags
    the customers who were repeat detractors then. Three set-based statements per 5,000 cases, and
    nothing at all when no priority is configured.

    `opened` (instead of `case_ids`): (case id, customer id, its feedback's received time) of cases
    the caller has just inserted, at the default priority, with that feedback; they are not read back,
    which saves the first of the three statements.
    """
    rule = config.routing.repeat_detractor
    if rule.priority is None or not (case_ids or opened):
        return []
    window = window_of(rule)
    lower = PRIORITY_ORDER[: PRIORITY_ORDER.index(rule.priority)]
    raised: list[int] = []
    if opened is not None:
        if NEW_CASE_PRIORITY not in lower:
            return []
        given = [(case_id, customer, at) for case_id, customer, at in opened if customer is not None]
        chunks: list[Any] = [given[start : start + _CHUNK] for start in range(0, len(given), _CHUNK)]
    else:
        chunks = [case_ids[start : start + _CHUNK] for start in range(0, len(case_ids), _CHUNK)]
    for chunk in chunks:
        if opened is not None:
            anchors = chunk
        else:
            rows = await session.execute(
                select(Case.id, Case.customer_id, func.coalesce(Feedback.received_at, Case.created_at))
                .outerjoin(Feedback, Feedback.id == Case.feedback_id)
                .where(Case.id.in_(list(chunk)), Case.customer_id.is_not(None), Case.priority.in_(lower))
            )
            # coalesce() takes its type, and so its UTC conversion, from received_at.
            anchors = [(case_id, customer_id, at) for case_id, customer_id, at in rows.all()]
        if not anchors:
            continue
        earliest = min(at for _, _, at in anchors) - window
        latest = max(at for _, _, at in anchors)
        negatives = await session.execute(
            select(Feedback.customer_id, Feedback.received_at).where(
                Feedback.customer_id.in_({customer for _, customer, _ in anchors}),
                Feedback.is_negative.is_(True),
                Feedback.received_at >= earliest,
                Feedback.received_at <= latest,
            )
        )
        times: dict[int, list[datetime]] = defaultdict(list)
        for customer, received_at in negatives.all():
            times[customer].append(received_at)
        hits = [
            case_id
            for case_id, customer, at in anchors
            if sum(1 for t in times[customer] if at - window <= t <= at) >= rule.negatives
        ]
        if hits:
            suffix = (
                f"; repeat detractor (≥{rule.negatives} negatives in {_window_label(window)}): "
                f"{rule.priority} priority"
            )
            await session.execute(
                update(Case)
                .where(Case.id.in_(hits))
                .values(
                    priority=rule.priority,
                    updated_at=now,
                    routing_reason=func.substr(Case.routing_reason + suffix, 1, MAX_ROUTING_REASON),
                )
                .execution_options(synchronize_session=False)
            )
            raised.extend(hits)
    return raised
