"""Improvement annotations: a dated change at a touchpoint, and whether the scores moved after it.

`/cx annotate <touchpoint> <text>` records the change (design.md §5, §8). `/cx score <touchpoint>`
and the team's digest then show, for each annotation of the last 90 days, the score in two equal
windows that meet at the annotation: `window = min(time since the annotation, 28 days)`, before =
[effective − window, effective), after = [effective, effective + window). The difference is judged
with :func:`cxbot.scores.stats.compare` (significant only when the CIs say so). An annotation whose after
window holds fewer responses than the team's floor is "too recent": it says how many more responses
after it are still needed to reach the floor.

:func:`judge` is the pure verdict; :func:`annotation_effects` reads the annotations and one
`GROUP BY` per annotation over the (touchpoint_key, received_at) index, bounded by the two windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.authz import Actor, require_member
from cxbot.config import Config
from cxbot.models import Annotation, Feedback
from cxbot.scores.stats import (
    METRICS,
    VERDICT_LOW_SAMPLE,
    VERDICT_NO_CHANGE,
    VERDICT_SIGNIFICANT,
    Change,
    Score,
    compare,
    score_from_distribution,
)

#: Annotations older than this are not shown (design.md §8: "the last 90 days").
LOOKBACK = timedelta(days=90)
#: The longest before/after window; a younger annotation gets windows as long as its age.
MAX_WINDOW = timedelta(days=28)
#: At most this many annotations per touchpoint or team, newest first, to keep messages short.
MAX_SHOWN = 5
MAX_TEXT = 500

VERDICT_TOO_RECENT = "too recent"
VERDICT_FEW_BEFORE = "too few before"


class AnnotationRejected(ValueError):
    """An annotation that cannot be recorded as typed; the message says why."""


@dataclass(frozen=True, slots=True)
class MetricEffect:
    """One metric before and after an annotation, with the verdict.

    `verdict` is "significant" or "no real change" (from `compare`), "too recent" (fewer than the
    floor after it; `needs` more responses after it would reach the floor) or "too few before"
    (the window before it holds fewer than the floor, which waiting will not fix for long).
    """

    metric: str
    before: Score
    after: Score
    change: Change
    verdict: str
    needs: int

    @property
    def judged(self) -> bool:
        return self.verdict in (VERDICT_SIGNIFICANT, VERDICT_NO_CHANGE)


@dataclass(frozen=True, slots=True)
class AnnotationEffect:
    """An annotation and the scores in the equal windows before and after it."""

    id: int
    touchpoint: str
    team: str
    text: str
    created_by: str
    effective_at: datetime
    window: timedelta  # length of each of the two windows
    metrics: tuple[MetricEffect, ...]  # only metrics with responses in either window
    needs: int  # responses after it still needed before any metric can be judged (0: judged)
    min_n: int


def window_for(*, effective_at: datetime, now: datetime) -> timedelta:
    """Each side's length: the time since the annotation, at most 28 days, never negative."""
    return max(timedelta(0), min(now - effective_at, MAX_WINDOW))


def judge(
    *, metric: str, before: Mapping[float, int], after: Mapping[float, int], min_n: int
) -> MetricEffect:
    """The before/after verdict of one metric from its two `score -> count` distributions."""
    before_score = score_from_distribution(metric, before, min_n=min_n)
    after_score = score_from_distribution(metric, after, min_n=min_n)
    change = compare(before_score, after_score, min_n=min_n)
    needs = max(0, min_n - after_score.n)
    if needs:
        verdict = VERDICT_TOO_RECENT
    elif before_score.n < min_n or change.verdict == VERDICT_LOW_SAMPLE:  # (no CI: CES with n < 2)
        verdict = VERDICT_FEW_BEFORE
    else:
        verdict = change.verdict
    return MetricEffect(
        metric=metric, before=before_score, after=after_score, change=change, verdict=verdict, needs=needs
    )


def effect_of(
    *,
    annotation: Annotation,
    now: datetime,
    counts: Mapping[tuple[str, str], Mapping[float, int]],
    min_n: int,
) -> AnnotationEffect:
    """Assemble an annotation's effect from `(side, metric) -> distribution`, side "before"/"after"."""
    metrics = tuple(
        judge(
            metric=metric,
            before=counts.get(("before", metric), {}),
            after=counts.get(("after", metric), {}),
            min_n=min_n,
        )
        for metric in METRICS
        if counts.get(("before", metric)) or counts.get(("after", metric))
    )
    judged = [m for m in metrics if m.needs == 0]
    needs = 0 if judged else min((m.needs for m in metrics), default=min_n)
    return AnnotationEffect(
        id=annotation.id,
        touchpoint=annotation.touchpoint_key,
        team=annotation.team_key,
        text=annotation.text,
        created_by=annotation.created_by,
        effective_at=annotation.effective_at,
        window=window_for(effective_at=annotation.effective_at, now=now),
        metrics=metrics,
        needs=needs,
        min_n=min_n,
    )


async def window_counts(
    session: AsyncSession, *, touchpoint: str, effective_at: datetime, window: timedelta
) -> dict[tuple[str, str], dict[float, int]]:
    """Score distributions per side and metric, counted in the database over the two windows only."""
    after = case((Feedback.received_at >= effective_at, 1), else_=0).label("after")
    rows = (
        select(after, Feedback.metric, Feedback.score)
        .where(
            Feedback.touchpoint_key == touchpoint,
            Feedback.received_at >= effective_at - window,
            Feedback.received_at < effective_at + window,
            Feedback.metric.in_(METRICS),
            Feedback.score.is_not(None),
        )
        .subquery()
    )
    query = select(rows.c.after, rows.c.metric, rows.c.score, func.count()).group_by(
        rows.c.after, rows.c.metric, rows.c.score
    )
    counts: dict[tuple[str, str], dict[float, int]] = {}
    for side, metric, score, count in (await session.execute(query)).all():
        key = ("after" if side else "before", metric)
        counts.setdefault(key, {})[float(score)] = int(count)
    return counts


async def annotation_effects(
    session: AsyncSession,
    *,
    config: Config,
    now: datetime,
    touchpoint: str | None = None,
    team: str | None = None,
    limit: int = MAX_SHOWN,
) -> list[AnnotationEffect]:
    """Effects of the annotations of the last 90 days at a touchpoint or of a team, newest first."""
    if (touchpoint is None) == (team is None):
        raise ValueError("give exactly one of touchpoint or team")
    query = select(Annotation).where(
        Annotation.effective_at >= now - LOOKBACK, Annotation.effective_at <= now
    )
    query = (
        query.where(Annotation.touchpoint_key == touchpoint)
        if touchpoint is not None
        else query.where(Annotation.team_key == team)
    )
    found = list(
        (await session.execute(query.order_by(Annotation.effective_at.desc()).limit(limit))).scalars()
    )
    effects = []
    for annotation in found:
        owner = annotation.team_key
        min_n = config.team(owner).min_n if owner in config.team_keys else 30
        window = window_for(effective_at=annotation.effective_at, now=now)
        counts = (
            await window_counts(
                session,
                touchpoint=annotation.touchpoint_key,
                effective_at=annotation.effective_at,
                window=window,
            )
            if window > timedelta(0)
            else {}
        )
        effects.append(effect_of(annotation=annotation, now=now, counts=counts, min_n=min_n))
    return effects


async def record_annotation(
    session: AsyncSession, *, config: Config, actor: Actor, touchpoint: str, text: str, now: datetime
) -> Annotation:
    """Record a change at a touchpoint, effective now; only the owning team (or an admin) may."""
    found = config.touchpoint_index().get(touchpoint.strip().lower())
    if found is None:
        known = ", ".join(tp.key for tp in config.touchpoints) or "none configured"
        raise AnnotationRejected(f"{touchpoint!r} is not a touchpoint (touchpoints are: {known})")
    text = " ".join(text.split())
    if not text:
        raise AnnotationRejected("say what changed, e.g. `annotate returns new returns policy live`")
    if len(text) > MAX_TEXT:
        raise AnnotationRejected(f"keep it under {MAX_TEXT} characters ({len(text)} given)")
    require_member(config, actor, found.team, doing=f"annotate {found.key}")
    annotation = Annotation(
        touchpoint_key=found.key,
        team_key=found.team,
        text=text,
        created_by=actor.ident,
        created_at=now,
        effective_at=now,
    )
    session.add(annotation)
    await session.flush()
    return annotation


def describe_window(window: timedelta) -> str:
    """`28 days`, `3 days 4 hours`, `5 hours`: each side's length, as the message says it."""
    days, seconds = window.days, window.seconds
    hours = seconds // 3600
    if days and hours and days < 7:
        return f"{days} day{'s' * (days != 1)} {hours} hour{'s' * (hours != 1)}"
    if days:
        return f"{days} day{'s' * (days != 1)}"
    if hours:
        return f"{hours} hour{'s' * (hours != 1)}"
    return f"{max(1, seconds // 60)} minutes"
