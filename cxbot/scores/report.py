"""`/cx score [team|touchpoint] [1d|7d|28d|90d]` (design.md §5): scores with honest comparisons.

For each metric: the score over the window ending now, its n and CI, and the change against the
previous window of the same length ("significant" only when the CIs say so, else "no real change";
"low sample" when either side is under the floor). For a team or a touchpoint it adds the case KPIs
of the window (first contact resolution, time to resolve) and the before/after of each annotation of
the last 90 days. The report is a plain dataclass renderers may use; :func:`render_score_report`
is its text, complete on its own for the console.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.config import Config
from cxbot.digest.text import annotation_lines, format_change, format_duration, format_score, format_value
from cxbot.scores.annotations import AnnotationEffect, annotation_effects
from cxbot.scores.kpis import CaseKpis, case_kpis
from cxbot.scores.queries import WINDOWS, window_scores
from cxbot.scores.stats import DEFAULT_MIN_N, LABELS, METRICS, Change, Score, compare

DEFAULT_WINDOW = "7d"


class ScopeNotFound(ValueError):
    """The word given as a scope is neither a team nor a touchpoint."""


@dataclass(frozen=True, slots=True)
class MetricReport:
    metric: str
    label: str
    current: Score
    previous: Score
    change: Change


@dataclass(frozen=True, slots=True)
class ScoreReport:
    """What `/cx score` shows; `kind` is "team", "touchpoint" or "all"."""

    kind: str
    key: str | None
    name: str
    window: str
    since: datetime
    until: datetime
    min_n: int
    metrics: tuple[MetricReport, ...]
    kpis: CaseKpis | None
    annotations: tuple[AnnotationEffect, ...]


def resolve_scope(config: Config, word: str | None, *, default_teams: list[str]) -> tuple[str, str | None]:
    """("team", key), ("touchpoint", key) or ("all", None); the caller's only team by default."""
    if word is None:
        return ("team", default_teams[0]) if len(default_teams) == 1 else ("all", None)
    lowered = word.lower()
    if lowered == "all":
        return "all", None
    if lowered in config.team_keys:
        return "team", lowered
    touchpoint = config.touchpoint_index().get(lowered)
    if touchpoint is not None:
        return "touchpoint", touchpoint.key
    raise ScopeNotFound(
        f"{word!r} is neither a team ({', '.join(config.team_keys)}) nor a touchpoint "
        f"({', '.join(t.key for t in config.touchpoints) or 'none configured'})"
    )


async def build_score_report(
    session: AsyncSession, *, config: Config, kind: str, key: str | None, window: str, now: datetime
) -> ScoreReport:
    """Scores of the window ending `now` against the window before it, plus KPIs and annotations."""
    length: timedelta = WINDOWS[window]
    since, before = now - length, now - 2 * length
    team = key if kind == "team" else None
    touchpoint = key if kind == "touchpoint" else None
    if kind == "team":
        name, min_n = config.team(key or "").name, config.team(key or "").min_n
    elif kind == "touchpoint":
        spec = next(t for t in config.touchpoints if t.key == key)
        name = spec.name or spec.key
        min_n = config.team(spec.team).min_n if spec.team in config.team_keys else DEFAULT_MIN_N
    else:
        name, min_n = "all teams", DEFAULT_MIN_N
    scope = {"team": team, "touchpoint": touchpoint, "min_n": min_n}
    current = await window_scores(session, since=since, until=now, **scope)
    previous = await window_scores(session, since=before, until=since, **scope)
    metrics = tuple(
        MetricReport(
            metric=m,
            label=LABELS[m],
            current=current[m],
            previous=previous[m],
            change=compare(previous[m], current[m], min_n=min_n),
        )
        for m in METRICS
        if current[m].n or previous[m].n
    )
    kpis = effects = None
    if kind != "all":
        kpis = await case_kpis(session, since=since, until=now, team=team, touchpoint=touchpoint)
        effects = await annotation_effects(session, config=config, now=now, team=team, touchpoint=touchpoint)
    return ScoreReport(
        kind=kind,
        key=key,
        name=name,
        window=window,
        since=since,
        until=now,
        min_n=min_n,
        metrics=metrics,
        kpis=kpis,
        annotations=tuple(effects or ()),
    )


def kpi_line(kpis: CaseKpis) -> str:
    """`12 cases resolved · first contact resolution 58% (7 of 12) · time to resolve median …, p90 …`."""
    if not kpis.resolved:
        return "Cases resolved: none in this window (first contact resolution and time to resolve n/a)"
    return (
        f"Cases resolved: {kpis.resolved} · first contact resolution "
        f"{kpis.first_contact_resolution:.0f}% ({kpis.first_contact_resolved} of {kpis.resolved}) · "
        f"time to resolve median {format_duration(kpis.median_seconds_to_resolve)}, "
        f"p90 {format_duration(kpis.p90_seconds_to_resolve)}"
    )


def render_score_report(report: ScoreReport) -> str:
    """The report as plain text: it stands alone on the console and as Slack's fallback."""
    what = {"team": "team", "touchpoint": "touchpoint", "all": "every team"}[report.kind]
    days = report.window[:-1]
    lines = [
        f"Scores · {report.name} ({what}) · last {days} day{'s' * (days != '1')} "
        f"to {report.until:%Y-%m-%d %H:%M} UTC, vs the {days} day{'s' * (days != '1')} before"
    ]
    if not report.metrics:
        lines.append("No scored responses in this window or the one before.")
    for item in report.metrics:
        previous = item.previous
        lines.append(
            f"{item.label}: {format_score(item.current)} · before "
            f"{format_value(item.metric, previous.score)} (n={previous.n}): "
            f"{format_change(item.metric, item.change)}"
        )
    if any(m.current.low_sample or m.previous.low_sample for m in report.metrics):
        lines.append(f"(low sample: n below {report.min_n}; shown, never judged as a change)")
    if report.kpis is not None:
        lines.append(kpi_line(report.kpis))
    if report.kind != "all":
        lines += annotation_lines(report.annotations) or ["Annotations: none in the last 90 days."]
    return "\n".join(lines)
