"""Recovery: did a re-surveyed customer move up a category? (design.md §2, §7).

The pure part (categories, the verdict of one re-survey, the rate over many) uses the same scales
as :mod:`cxbot.scores.stats`; :func:`recovery_stats` is the one query the API and the digest share.

Categories, lowest first:

- NPS: detractor (0-6), passive (7-8), promoter (9-10) — the standard buckets.
- CSAT (1-5) and CES (1-7, 7 = easiest): *negative* at or below the team's threshold (the one that
  opened the case), *positive* when satisfied (CSAT 4-5) or easy (CES 5-7), *neutral* between.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.models import Case, Resurvey
from cxbot.scores.stats import ces_easy, csat_satisfied, nps_category, wilson_interval

Outcome = Literal["recovered", "unchanged", "worse"]
OUTCOMES: tuple[Outcome, ...] = ("recovered", "unchanged", "worse")

#: The usual negative thresholds (design.md §3), when the caller has none more specific.
DEFAULT_NEGATIVE_AT = {"nps": 6.0, "csat": 2.0, "ces": 3.0}
_NPS_LEVEL = {"detractor": 0, "passive": 1, "promoter": 2}


def category_level(metric: str, score: float, *, negative_at: float | None = None) -> int:
    """0 (negative), 1 (neutral) or 2 (positive), so two answers on one scale can be compared."""
    if metric == "nps":
        return _NPS_LEVEL[nps_category(score)]
    if metric not in ("csat", "ces"):
        raise ValueError(f"{metric!r} has no categories; expected nps, csat or ces")
    positive = csat_satisfied(score) if metric == "csat" else ces_easy(score)
    limit = DEFAULT_NEGATIVE_AT[metric] if negative_at is None else negative_at
    if score <= limit:
        return 0
    return 2 if positive else 1


def recovery_outcome(
    metric: str, before: float, after: float, *, negative_at: float | None = None
) -> Outcome:
    """`recovered` when the new answer is in a higher category, `worse` when lower, else `unchanged`."""
    old = category_level(metric, before, negative_at=negative_at)
    new = category_level(metric, after, negative_at=negative_at)
    if new > old:
        return "recovered"
    return "worse" if new < old else "unchanged"


@dataclass(frozen=True, slots=True)
class RecoveryRate:
    """Re-surveyed customers who answered, and the share of them who moved up a category."""

    n: int
    recovered: int
    unchanged: int
    worse: int
    rate: float | None  # percent, None when nobody answered
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict[str, object]:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "n": self.n,
            "recovered": self.recovered,
            "unchanged": self.unchanged,
            "worse": self.worse,
            "rate": r(self.rate),
            "ci_low": r(self.ci_low),
            "ci_high": r(self.ci_high),
        }


def recovery_rate(outcomes: Iterable[str]) -> RecoveryRate:
    """Rate = recovered / answered re-surveys, in percent, with a Wilson 95% interval."""
    counts = {name: 0 for name in OUTCOMES}
    for outcome in outcomes:
        if outcome not in counts:
            raise ValueError(f"{outcome!r} is not a recovery outcome ({', '.join(OUTCOMES)})")
        counts[outcome] += 1
    n = sum(counts.values())
    if n == 0:
        return RecoveryRate(0, 0, 0, 0, None, None, None)
    low, high = wilson_interval(counts["recovered"], n)
    return RecoveryRate(
        n=n,
        recovered=counts["recovered"],
        unchanged=counts["unchanged"],
        worse=counts["worse"],
        rate=100.0 * counts["recovered"] / n,
        ci_low=low,
        ci_high=high,
    )


async def recovery_stats(
    session: AsyncSession,
    *,
    team: str | None,
    start: datetime,
    end: datetime,
    touchpoint: str | None = None,
) -> RecoveryRate:
    """The recovery rate of re-surveys answered in [start, end), for one team (None: every team).

    Counted from the case's `recovery_outcome`, set once when the customer answers, so the API,
    the digest and a hand count over `resurveys` all agree.
    """
    query = (
        select(Case.recovery_outcome, func.count(func.distinct(Case.id)))
        .join(Resurvey, Resurvey.case_id == Case.id)
        .where(
            Resurvey.answered_at.is_not(None),
            Resurvey.answered_at >= start,
            Resurvey.answered_at < end,
            Case.recovery_outcome.is_not(None),
        )
        .group_by(Case.recovery_outcome)
    )
    if team is not None:
        query = query.where(Case.team_key == team)
    if touchpoint is not None:
        query = query.where(Case.touchpoint_key == touchpoint)
    rows = await session.execute(query)
    outcomes: list[str] = []
    for outcome, count in rows.all():
        if outcome in OUTCOMES:
            outcomes.extend([outcome] * int(count))
    return recovery_rate(outcomes)
