"""Plain-text rendering of digests: for `digest --dry-run`, the console adapter and the tests.

Platform renderers (Slack Block Kit, Teams Adaptive Cards) read the same model and may reuse the
small formatting helpers here (`format_score`, `format_change`, `sparkline`, `format_duration`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from cxbot.digest.model import CaseHealth, LeadershipDigest, MetricDigest, TeamDigest
from cxbot.scores.annotations import VERDICT_FEW_BEFORE, VERDICT_TOO_RECENT, AnnotationEffect, describe_window
from cxbot.scores.stats import VERDICT_LOW_SAMPLE, Change, Score

SPARK = "▁▂▃▄▅▆▇█"
NO_DATA = "·"
NA = "n/a"


def sparkline(values: Sequence[float | None]) -> str:
    """One character per point, scaled between the series' own min and max; `·` for no data."""
    present = [v for v in values if v is not None]
    if not present:
        return NO_DATA * len(values)
    low, high = min(present), max(present)
    span = high - low
    marks = []
    for value in values:
        if value is None:
            marks.append(NO_DATA)
        elif span == 0:
            marks.append(SPARK[len(SPARK) // 2])
        else:
            marks.append(SPARK[round((value - low) / span * (len(SPARK) - 1))])
    return "".join(marks)


def format_value(metric: str, value: float | None) -> str:
    """NPS as signed points, CSAT as a percentage, CES as a mean on 1-7."""
    if value is None:
        return NA
    if metric == "nps":
        return f"{value:+.1f}"
    if metric == "csat":
        return f"{value:.1f}%"
    return f"{value:.2f}"


def format_score(score: Score) -> str:
    """`87.2% (n=47, 95% CI 74.8–93.9)`, flagged when below the floor."""
    if score.score is None:
        return f"{NA} (n=0)"
    ci = (
        f", 95% CI {format_value(score.metric, score.ci_low)}–{format_value(score.metric, score.ci_high)}"
        if score.ci_low is not None and score.ci_high is not None
        else ""
    )
    easy = f", {score.share_easy:.0f}% easy (≥5)" if score.share_easy is not None else ""
    flag = " [low sample]" if score.low_sample else ""
    return f"{format_value(score.metric, score.score)} (n={score.n}{ci}{easy}){flag}"


def format_change(metric: str, change: Change) -> str:
    """`+3.1 pts, significant` / `-0.4 pts, no real change` / `low sample`."""
    unit = "" if metric == "ces" else " pts"
    if change.delta is None:
        return VERDICT_LOW_SAMPLE
    if change.verdict == VERDICT_LOW_SAMPLE:
        return f"{VERDICT_LOW_SAMPLE} ({change.delta:+.1f}{unit} not judged)"
    return f"{change.delta:+.1f}{unit}, {change.verdict}"


def format_duration(seconds: float | None) -> str:
    """`1h 20m`, `2d 3h`, `45s`; None reads n/a."""
    if seconds is None:
        return NA
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def format_percent(value: float | None, n: int) -> str:
    return NA if value is None else f"{value:.0f}% (n={n})"


def format_day(value: date) -> str:
    """`Mon 2 Nov 2026`: the digest's day, on every platform."""
    return f"{value:%a} {value.day} {value:%b %Y}"


def format_distribution(score: Score) -> str:
    """`1: 3 · 2: 1 · …`: how many answered each value."""
    if not score.distribution:
        return NA
    return " · ".join(f"{value:g}: {count}" for value, count in score.distribution)


def format_ci(score: Score) -> str:
    """The 95% confidence interval as `low – high` in the metric's unit."""
    if score.ci_low is None or score.ci_high is None:
        return NA
    return f"{format_value(score.metric, score.ci_low)} – {format_value(score.metric, score.ci_high)}"


def format_pooled(score: Score) -> str:
    """A pooled score with its sample size, for the 7/28-day fields of the chat digests."""
    if score.score is None:
        return f"{NA} (n=0)"
    flag = ", low sample" if score.low_sample else ""
    return f"{format_value(score.metric, score.score)} (n={score.n}{flag})"


def _metric_lines(item: MetricDigest, *, report_date: date, min_n: int) -> list[str]:
    week_ago = report_date - timedelta(days=7)
    low_days = sum(1 for point in item.daily if point.n and point.low_sample)
    lines = [
        f"{item.label}: {format_score(item.day)}",
        f"  vs previous day ({format_value(item.metric, item.previous_day.score)}, n={item.previous_day.n}): "
        f"{format_change(item.metric, item.vs_previous_day)}",
        f"  vs {week_ago:%a} {week_ago.day} {week_ago:%b} "
        f"({format_value(item.metric, item.same_weekday_last_week.score)}, "
        f"n={item.same_weekday_last_week.n}): {format_change(item.metric, item.vs_same_weekday)}",
        f"  7 days: {format_score(item.last_7_days)}  {sparkline([p.score for p in item.trend_7d])}",
        f"  28 days: {format_score(item.last_28_days)}  {sparkline([p.score for p in item.trend_28d])}"
        + (f"  ({low_days} of 28 days below n={min_n})" if low_days else ""),
        f"  distribution: {format_distribution(item.day)}",
    ]
    return lines


def _case_lines(health: CaseHealth) -> list[str]:
    return [
        f"Closed loop (as of {health.as_of:%Y-%m-%d %H:%M} UTC): {health.new} new · {health.open} open · "
        f"{health.overdue} overdue",
        f"  last {health.window_days} days ({health.cases_in_window} cases): median time to acknowledge "
        f"{format_duration(health.median_seconds_to_acknowledge)} (n={health.acknowledged_n}) · "
        f"to first contact {format_duration(health.median_seconds_to_first_contact)} "
        f"(n={health.contacted_n}) · contact rate "
        f"{format_percent(health.contact_rate, health.cases_in_window)} · recovery rate "
        f"{format_percent(health.recovery_rate, health.resurveyed_n)}",
        f"  resolved in the last {health.window_days} days: {health.resolved_n} · first contact resolution "
        f"{format_percent(health.first_contact_resolution, health.resolved_n)} · time to resolve median "
        f"{format_duration(health.median_seconds_to_resolve)}, p90 "
        f"{format_duration(health.p90_seconds_to_resolve)}",
    ]


def effect_verdict(effect: AnnotationEffect) -> list[str]:
    """One phrase per metric: `CSAT 71.0% (n=150) → 85.0% (n=160): +14.0 pts, significant`."""
    if not effect.metrics:
        return [f"no scored responses yet; needs {effect.needs} more responses after it to judge"]
    phrases = []
    for item in effect.metrics:
        label = item.metric.upper()
        before = f"{format_value(item.metric, item.before.score)} (n={item.before.n})"
        after = f"{format_value(item.metric, item.after.score)} (n={item.after.n})"
        if item.verdict == VERDICT_TOO_RECENT:
            phrases.append(
                f"{label} {before} → {after}: too recent to judge, needs {item.needs} more "
                f"response{'s' * (item.needs != 1)} after it (floor n={effect.min_n})"
            )
        elif item.verdict == VERDICT_FEW_BEFORE:
            phrases.append(
                f"{label} {before} → {after}: too few responses before it to judge (n={item.before.n} "
                f"< {effect.min_n})"
            )
        else:
            phrases.append(f"{label} {before} → {after}: {format_change(item.metric, item.change)}")
    return phrases


def annotation_lines(effects: Sequence[AnnotationEffect]) -> list[str]:
    """The before/after of each annotation, saying how long the two equal windows are."""
    if not effects:
        return []
    lines = [
        "Annotations (last 90 days; each compares two equal windows meeting at it: the time since it, "
        "at most 28 days):"
    ]
    for effect in effects:
        lines.append(
            f"  • {effect.effective_at:%Y-%m-%d} {effect.touchpoint}: “{effect.text}” "
            f"({describe_window(effect.window)} before vs after)"
        )
        lines += [f"      {phrase}" for phrase in effect_verdict(effect)]
    return lines


def render_team_digest(digest: TeamDigest) -> str:
    """The whole digest as plain text, as a chat would show it."""
    head = f"CX digest · {digest.team_name} · {format_day(digest.report_date)} ({digest.timezone})"
    if digest.quiet:
        return "\n".join(
            [
                head,
                "A quiet day: no feedback received.",
                *annotation_lines(digest.annotations),
                *_case_lines(digest.cases),
            ]
        )
    lines = [head, f"{digest.responses} responses · {digest.negative_total} negative", ""]
    for item in digest.metrics:
        lines += [*_metric_lines(item, report_date=digest.report_date, min_n=digest.min_n), ""]
    if digest.negative_comments:
        lines.append("Top negative comments:")
        for comment in digest.negative_comments:
            score = "" if comment.score is None else f" {comment.score:g}"
            where = f" · {comment.touchpoint}" if comment.touchpoint else ""
            lines.append(f"  • {comment.metric.upper()}{score}{where}: “{comment.text}”")
    if digest.themes:
        lines.append(
            "Themes in negative comments: " + ", ".join(f"{t.phrase} ({t.comments})" for t in digest.themes)
        )
    if digest.negative_comments or digest.themes:
        lines.append("")
    if digest.annotations:
        lines += [*annotation_lines(digest.annotations), ""]
    lines += _case_lines(digest.cases)
    return "\n".join(lines)


def render_leadership_digest(digest: LeadershipDigest) -> str:
    """All teams side by side: one line per team and metric, then one line of case health each."""
    lines = [f"CX leadership digest · {format_day(digest.report_date)} (each team's local day)", ""]
    for team in digest.teams:
        if team.quiet:
            lines.append(f"{team.team_name}: quiet day, no feedback")
        for item in team.metrics if not team.quiet else ():
            lines.append(
                f"{team.team_name} · {item.metric.upper()}: {format_score(item.day)} · vs previous day "
                f"{format_change(item.metric, item.vs_previous_day)} · 28 days "
                f"{format_value(item.metric, item.last_28_days.score)} (n={item.last_28_days.n})"
            )
        cases = team.cases
        lines.append(f"  cases: {cases.new} new · {cases.open} open · {cases.overdue} overdue")
    return "\n".join(lines)
