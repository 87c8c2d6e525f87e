"""Case KPIs (design.md §2): first contact resolution and time to resolve, over cases resolved in a window.

- First contact resolution (FCR) = cases resolved after exactly one contact attempt (one row in
  `contacts` created at or before the resolution) / cases resolved in the window, in percent.
  Cases resolved without any contact ("could not contact", "no action needed") count in the
  denominator: they were not resolved at first contact.
- Time to resolve = `resolved_at − created_at`: median and p90 (the tail a median hides).

A reopened case loses its `resolved_at` and counts again when it is resolved again. :func:`kpis_from`
is pure; :func:`case_kpis` reads one row per resolved case of the window (cases are the negative
few, not the feedback stream).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.models import Case, Contact
from cxbot.scores.stats import duration_stats


@dataclass(frozen=True, slots=True)
class CaseKpis:
    """KPIs of the cases resolved in [since, until); `None` reads "n/a" (nothing resolved), never 0."""

    since: datetime
    until: datetime
    resolved: int
    first_contact_resolved: int
    first_contact_resolution: float | None  # percent
    median_seconds_to_resolve: float | None
    p90_seconds_to_resolve: float | None


def kpis_from(
    rows: Iterable[tuple[datetime, datetime, int]], *, since: datetime, until: datetime
) -> CaseKpis:
    """KPIs from (created_at, resolved_at, contact attempts before resolving) per resolved case."""
    data = list(rows)
    once = sum(1 for _, _, attempts in data if attempts == 1)
    median, p90 = duration_stats(resolved - created for created, resolved, _ in data)
    return CaseKpis(
        since=since,
        until=until,
        resolved=len(data),
        first_contact_resolved=once,
        first_contact_resolution=100.0 * once / len(data) if data else None,
        median_seconds_to_resolve=median,
        p90_seconds_to_resolve=p90,
    )


async def case_kpis(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    team: str | None = None,
    touchpoint: str | None = None,
) -> CaseKpis:
    """FCR and time to resolve of the cases of a team or touchpoint (or all) resolved in the window."""
    attempts = (
        select(func.count())
        .where(Contact.case_id == Case.id, Contact.created_at <= Case.resolved_at)
        .scalar_subquery()
    )
    query = select(Case.created_at, Case.resolved_at, attempts).where(
        Case.resolved_at >= since, Case.resolved_at < until
    )
    if team is not None:
        query = query.where(Case.team_key == team)
    if touchpoint is not None:
        query = query.where(Case.touchpoint_key == touchpoint)
    rows = (await session.execute(query)).all()
    return kpis_from(((c, r, int(a)) for c, r, a in rows), since=since, until=until)
