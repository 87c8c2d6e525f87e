"""Read-side queries for scores and cases, aggregated in the database and bounded by the window.

Scores are computed from one `GROUP BY metric, score` over an index on (team or touchpoint,
received_at), so the work grows with the window, not with the history.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.models import OPEN_CASE_STATES, Case, Feedback
from cxbot.scores.stats import METRICS, Score, score_from_distribution

WINDOWS: dict[str, timedelta] = {
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "28d": timedelta(days=28),
    "90d": timedelta(days=90),
}


def parse_window(text: str) -> timedelta:
    """`1d|7d|28d|90d` (design.md §5); raises ValueError naming the accepted values."""
    try:
        return WINDOWS[text]
    except KeyError:
        raise ValueError(f"window: {text!r} is not one of {', '.join(WINDOWS)}") from None


async def window_scores(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    team: str | None = None,
    touchpoint: str | None = None,
    metrics: tuple[str, ...] = METRICS,
    min_n: int = 30,
) -> dict[str, Score]:
    """NPS, CSAT and CES for feedback received in [since, until), filtered by team or touchpoint."""
    query: Select = (
        select(Feedback.metric, Feedback.score, func.count())
        .where(Feedback.received_at >= since, Feedback.received_at < until, Feedback.metric.in_(metrics))
        .group_by(Feedback.metric, Feedback.score)
    )
    if team is not None:
        query = query.where(Feedback.team_key == team)
    if touchpoint is not None:
        query = query.where(Feedback.touchpoint_key == touchpoint)
    counts: dict[str, dict[float, int]] = defaultdict(dict)
    for metric, score, count in (await session.execute(query)).all():
        if score is not None:
            counts[metric][float(score)] = int(count)
    return {
        metric: score_from_distribution(metric, counts.get(metric, {}), min_n=min_n) for metric in metrics
    }


async def list_cases(
    session: AsyncSession,
    *,
    team: str | None = None,
    state: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Case]:
    """Cases newest first; `state='open'` means any state before resolved."""
    query = select(Case).order_by(Case.id.desc()).limit(limit)
    if team is not None:
        query = query.where(Case.team_key == team)
    if state == "open":
        query = query.where(Case.state.in_(OPEN_CASE_STATES))
    elif state is not None:
        query = query.where(Case.state == state)
    if before_id is not None:
        query = query.where(Case.id < before_id)
    return list((await session.execute(query)).scalars())
