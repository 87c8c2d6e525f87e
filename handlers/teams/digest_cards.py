"""Digests and the score report as Adaptive Cards 1.5 for Teams, from the same neutral objects as
Slack's blocks (handlers/slack/digest_blocks.py) and held to Teams' message size.

A team digest: a title, one FactSet per metric worth reading (score, n, CI, the two changes with
their verdict words, the 7/28-day pooled scores with sparklines), a grey line for a low sample
(never a trend), the top negative comments (masked in the core, escaped here), themes,
before/after of annotations and closed-loop health. The 28-day trend chart goes in as a data-URI
PNG when the team asked for charts and it fits: Teams refuses a message over about 28 KB, so the
chart is shrunk (fewer pixels, fewer colours) until the whole activity fits, or left out with a
line saying so. The leadership digest puts the teams side by side in a Table; when they do not all
fit, a summary of all of them comes first and the rows shown are the ones that need attention.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from cxbot.digest.chart import trend_chart_png
from cxbot.digest.model import CaseHealth, LeadershipDigest, MetricDigest, TeamDigest
from cxbot.digest.text import (
    effect_verdict,
    format_change,
    format_ci,
    format_day,
    format_distribution,
    format_duration,
    format_percent,
    format_pooled,
    format_value,
    render_leadership_digest,
    render_team_digest,
    sparkline,
)
from cxbot.scores.annotations import AnnotationEffect, describe_window
from cxbot.scores.report import ScoreReport, kpi_line, render_score_report
from cxbot.scores.stats import VERDICT_SIGNIFICANT, Change
from handlers.teams.cards import (
    MAX_ACTIVITY_BYTES,
    MAX_FACT,
    activity_bytes,
    adaptive_card,
    card_message,
    card_text,
    text_block,
)

try:  # Pillow comes with matplotlib (the `charts` extra); without it there is no chart to shrink.
    from PIL import Image as PILImage
except ImportError:  # pragma: no cover - the test extra installs charts
    PILImage = None

log = logging.getLogger("handlers.teams")
MAX_ANNOTATIONS = 5
MAX_COMMENT = 500
#: Room kept under MAX_ACTIVITY_BYTES for what the connector adds (ids, `from`, `replyToId`).
HEADROOM = 1_000
#: Chart sizes tried in turn (width in pixels, palette colours) until the message fits.
CHART_STEPS = ((560, 16), (480, 16), (400, 16), (320, 16))
NO_CHART_ROOM = "Trend chart left out: it does not fit in a Teams message with this digest."


def budget() -> int:
    """The most bytes a card activity may take."""
    return MAX_ACTIVITY_BYTES - HEADROOM


def bold(label: str) -> str:
    """Our own label in bold; outside text never goes through here unescaped."""
    return f"**{card_text(label, MAX_FACT)}**"


def facts(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "FactSet",
        "facts": [{"title": card_text(t, MAX_FACT), "value": card_text(v, MAX_FACT)} for t, v in pairs],
    }


def subtle(text: str, **options: Any) -> dict[str, Any]:
    return text_block(text, isSubtle=True, size="Small", **options)


def change_text(metric: str, change: Change) -> str:
    """The change in words, with an arrow only when the CIs back it up."""
    words = format_change(metric, change)
    if change.verdict == VERDICT_SIGNIFICANT:
        return f"{'▲' if change.direction == 'up' else '▼'} {words}"
    return words


def metric_elements(item: MetricDigest, *, report_date: date, min_n: int) -> list[dict[str, Any]]:
    """A FactSet for a score worth reading; one grey line for a low sample, with no trend."""
    day = item.day
    if day.low_sample:
        value = format_value(item.metric, day.score) if day.score is not None else "no responses"
        line = (
            f"{value} · low sample (n={day.n} < {min_n}), no trend · 28 days: "
            f"{format_pooled(item.last_28_days)} · distribution: {format_distribution(day)}"
        )
        return [subtle(f"{bold(item.label)}: {card_text(line)}", spacing="Medium")]
    week_ago = report_date - timedelta(days=7)
    pairs = [
        ("Score", format_value(item.metric, day.score)),
        ("n", str(day.n)),
        ("95% CI", format_ci(day)),
        (
            "vs previous day",
            f"{change_text(item.metric, item.vs_previous_day)} "
            f"(was {format_value(item.metric, item.previous_day.score)}, n={item.previous_day.n})",
        ),
        (
            f"vs {week_ago:%a} {week_ago.day} {week_ago:%b}",
            f"{change_text(item.metric, item.vs_same_weekday)} "
            f"(was {format_value(item.metric, item.same_weekday_last_week.score)}, "
            f"n={item.same_weekday_last_week.n})",
        ),
        ("7 days", f"{format_pooled(item.last_7_days)} {sparkline([p.score for p in item.trend_7d])}"),
        ("28 days", f"{format_pooled(item.last_28_days)} {sparkline([p.score for p in item.trend_28d])}"),
    ]
    if day.share_easy is not None:
        pairs.append(("Easy (≥5)", f"{day.share_easy:.0f}%"))
    notes = [f"Distribution: {format_distribution(day)}"]
    low_days = sum(1 for point in item.daily if point.n and point.low_sample)
    if low_days:
        notes.append(f"{low_days} of 28 days below n={min_n} (sparklines show them anyway; read with care)")
    return [
        text_block(bold(item.label), spacing="Medium", separator=True),
        facts(pairs),
        subtle(card_text(" · ".join(notes))),
    ]


def annotation_elements(effects: Sequence[AnnotationEffect], *, more: str) -> list[dict[str, Any]]:
    """Before/after of each recent annotation, with its windows' length and the verdict words."""
    if not effects:
        return []
    elements = [
        text_block(
            f"{bold('Before / after annotations')} (last 90 days; two equal windows meeting at each: "
            "the time since it, at most 28 days)",
            spacing="Medium",
            separator=True,
        )
    ]
    for effect in effects[:MAX_ANNOTATIONS]:
        head = (
            f"**{effect.effective_at:%Y-%m-%d}** {card_text(effect.touchpoint, MAX_FACT)}: "
            f"“{card_text(effect.text, MAX_COMMENT)}” ({describe_window(effect.window)} before vs after)"
        )
        verdicts = "\n\n".join(card_text(phrase, MAX_FACT) for phrase in effect_verdict(effect))
        elements += [text_block(head), subtle(verdicts, spacing="None")]
    if len(effects) > MAX_ANNOTATIONS:
        elements.append(subtle(card_text(f"…and {len(effects) - MAX_ANNOTATIONS} more: {more}")))
    return elements


def health_elements(health: CaseHealth) -> list[dict[str, Any]]:
    """Closed-loop health: cases now, the loop's speed and reach, and the case KPIs."""
    pairs = [
        ("Cases", f"{health.new} new · {health.open} open · {health.overdue} overdue"),
        (
            "Median time to acknowledge",
            f"{format_duration(health.median_seconds_to_acknowledge)} (n={health.acknowledged_n})",
        ),
        (
            "Median time to first contact",
            f"{format_duration(health.median_seconds_to_first_contact)} (n={health.contacted_n})",
        ),
        ("Contact rate", format_percent(health.contact_rate, health.cases_in_window)),
        ("Recovery rate", format_percent(health.recovery_rate, health.resurveyed_n)),
        ("First contact resolution", format_percent(health.first_contact_resolution, health.resolved_n)),
        (
            "Time to resolve",
            f"median {format_duration(health.median_seconds_to_resolve)} · "
            f"p90 {format_duration(health.p90_seconds_to_resolve)} (n={health.resolved_n})",
        ),
    ]
    note = (
        f"Counts as of {health.as_of:%Y-%m-%d %H:%M} UTC; times and rates over the cases opened "
        f"(resolution: resolved) in the last {health.window_days} days ({health.cases_in_window} opened)."
    )
    return [
        text_block(bold("Closed loop"), spacing="Medium", separator=True),
        facts(pairs),
        subtle(card_text(note)),
    ]


def comment_elements(digest: TeamDigest) -> list[dict[str, Any]]:
    if not digest.negative_comments:
        return []
    elements = [text_block(bold("Top negative comments"), spacing="Medium", separator=True)]
    for comment in digest.negative_comments:
        score = "" if comment.score is None else f" {comment.score:g}"
        where = f" · {card_text(comment.touchpoint, MAX_FACT)}" if comment.touchpoint else ""
        quoted = card_text(comment.text, MAX_COMMENT)
        elements.append(
            {
                "type": "Container",
                "style": "emphasis",
                "items": [text_block(f"**{comment.metric.upper()}{score}**{where}: “{quoted}”")],
            }
        )
    return elements


def team_digest_body(digest: TeamDigest, *, details: bool = True) -> list[dict[str, Any]]:
    """The card's elements; `details=False` leaves out comments and annotations (the size fallback)."""
    body: list[dict[str, Any]] = [
        text_block(
            card_text(f"CX digest · {digest.team_name} · {format_day(digest.report_date)}", MAX_FACT),
            size="Large",
            weight="Bolder",
        ),
        subtle(
            card_text(
                f"{digest.timezone} · {digest.responses} responses · {digest.negative_total} negative · "
                f"scores under n={digest.min_n} are low samples, never trends"
            ),
            spacing="None",
        ),
    ]
    if digest.quiet:
        body.append(text_block("A quiet day: no feedback received."))
    else:
        for item in digest.metrics:
            body += metric_elements(item, report_date=digest.report_date, min_n=digest.min_n)
    if details:
        body += comment_elements(digest)
        if digest.themes:
            themes = ", ".join(f"{t.phrase} ({t.comments})" for t in digest.themes)
            body.append(subtle(f"{bold('Themes in negative comments:')} {card_text(themes)}"))
        body += annotation_elements(digest.annotations, more="cx score")
    else:
        body.append(subtle("Comments and annotations left out to fit a Teams message: cx digest preview."))
    body += health_elements(digest.cases)
    return body


def chart_element(png: bytes, digest: TeamDigest) -> dict[str, Any]:
    return {
        "type": "Image",
        "url": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        "altText": card_text(f"{digest.team_name}: 28-day trend of each score, 95% CI band", MAX_FACT),
        "size": "Stretch",
    }


def shrunk_pngs(png: bytes) -> list[bytes]:
    """The chart at each of CHART_STEPS, smallest last (palette PNG: a line chart needs few colours)."""
    if PILImage is None:
        return []
    with PILImage.open(io.BytesIO(png)) as image:
        rgb = image.convert("RGB")
    versions = []
    for width, colours in CHART_STEPS:
        width = min(width, rgb.width)
        height = max(1, round(rgb.height * width / rgb.width))
        small = rgb.resize((width, height), PILImage.Resampling.LANCZOS).quantize(
            colors=colours, method=PILImage.Quantize.FASTOCTREE
        )
        buffer = io.BytesIO()
        small.save(buffer, format="PNG", optimize=True)
        versions.append(buffer.getvalue())
    return versions


def trend_chart_pngs(digest: TeamDigest) -> list[bytes]:
    """Chart PNGs from largest to smallest, to pick from by size; CPU work: call off the event loop."""
    if not digest.charts:
        return []
    try:
        png = trend_chart_png(digest)
        return shrunk_pngs(png) if png is not None else []
    except Exception as error:  # the digest goes out without its chart, never not at all
        log.warning("digest chart for %s not drawn: %s", digest.team_key, error)
        return []


def team_digest_activity(digest: TeamDigest, charts: Sequence[bytes] = ()) -> dict[str, Any]:
    """The team digest as a message activity within Teams' size: the first chart in `charts` that
    fits, or none (with a line saying so); without room even for the details, a shorter card."""
    summary = f"CX digest · {digest.team_name} · {format_day(digest.report_date)}"
    fallback = render_team_digest(digest)
    body = team_digest_body(digest)
    activity = card_message(adaptive_card(body, fallback=fallback), summary=summary)
    if activity_bytes(activity) > budget():
        body = team_digest_body(digest, details=False)
        activity = card_message(adaptive_card(body, fallback=fallback), summary=summary)
    for png in charts:
        with_chart = [*body[:2], chart_element(png, digest), *body[2:]]
        candidate = card_message(adaptive_card(with_chart, fallback=fallback), summary=summary)
        if activity_bytes(candidate) <= budget():
            return candidate
    if charts:  # drawn, but too big at every size (no chart drawn: nothing to say, the log has why)
        body.insert(2, subtle(NO_CHART_ROOM))
        activity = card_message(adaptive_card(body, fallback=fallback), summary=summary)
    return activity


def cell_text(item: MetricDigest | None) -> str:
    """A table cell: the day's score and its change; (…) marks a low sample, never judged."""
    if item is None or item.day.score is None:
        return "—"
    value = format_value(item.metric, item.day.score)
    if item.day.low_sample:
        return f"({value})"
    change = item.vs_previous_day
    mark = {"up": " ▲", "down": " ▼"}.get(change.direction or "", " =") if change.significant else " ="
    return f"{value}{mark}"


def table_row(cells: Sequence[str], *, header: bool = False) -> dict[str, Any]:
    return {
        "type": "TableRow",
        **({"style": "accent"} if header else {}),
        # Only the team's name wraps; a number never needs to (and every byte counts at 2,500 teams).
        "cells": [
            {"type": "TableCell", "items": [text_block(card_text(cells[0], 60))]},
            *({"type": "TableCell", "items": [{"type": "TextBlock", "text": c}]} for c in cells[1:]),
        ],
    }


TABLE_HEADER = ("Team", "NPS", "CSAT", "CES", "Responses", "Cases new/open/overdue")


def team_cells(team: TeamDigest) -> list[str]:
    cases = team.cases
    return [
        team.team_name,
        cell_text(team.metric("nps")),
        cell_text(team.metric("csat")),
        cell_text(team.metric("ces")),
        str(team.responses),
        f"{cases.new}/{cases.open}/{cases.overdue}",
    ]


def dropped(team: TeamDigest) -> bool:
    """A significant fall of any score since the previous day (a low sample is never judged)."""
    return any(
        not m.day.low_sample and m.vs_previous_day.significant and m.vs_previous_day.direction == "down"
        for m in team.metrics
    )


def attention_order(teams: Sequence[TeamDigest]) -> list[TeamDigest]:
    """Significant drops first, then the most overdue cases; otherwise the configured order."""
    ranked = sorted(
        enumerate(teams), key=lambda pair: (not dropped(pair[1]), -pair[1].cases.overdue, pair[0])
    )
    return [team for _, team in ranked]


def leadership_summary(digest: LeadershipDigest) -> dict[str, Any]:
    teams = digest.teams
    drops = [t for t in teams if dropped(t)]
    named = ", ".join(t.team_name for t in drops[:5]) + (" …" if len(drops) > 5 else "")
    return facts(
        [
            ("Teams", f"{len(teams)} ({sum(1 for t in teams if t.quiet)} with a quiet day)"),
            ("Responses", str(sum(t.responses for t in teams))),
            ("Significant drops", f"{len(drops)} teams" + (f": {named}" if drops else "")),
            (
                "Cases",
                f"{sum(t.cases.new for t in teams)} new · {sum(t.cases.open for t in teams)} open · "
                f"{sum(t.cases.overdue for t in teams)} overdue",
            ),
        ]
    )


def leadership_digest_activity(digest: LeadershipDigest) -> dict[str, Any]:
    """All teams side by side in a Table; when they do not all fit in a Teams message, the summary of
    all teams comes first and the rows shown are those needing attention, with how many were left out."""
    title = f"CX leadership digest · {format_day(digest.report_date)}"
    legend = (
        "Each team's own local day. ▲/▼ significant change vs the previous day · = no real change · "
        "(…) low sample, not judged · — no responses"
    )
    head: list[dict[str, Any]] = [
        text_block(card_text(title), size="Large", weight="Bolder"),
        subtle(card_text(legend), spacing="None"),
    ]
    fallback = render_leadership_digest(digest)
    columns = [{"type": "TableColumnDefinition", "width": 2 if i else 3} for i in range(len(TABLE_HEADER))]

    def build(rows: list[dict[str, Any]], extra: list[dict[str, Any]]) -> dict[str, Any]:
        table = {
            "type": "Table",
            "firstRowAsHeader": True,
            "gridStyle": "accent",
            "columns": columns,
            "rows": [table_row(TABLE_HEADER, header=True), *rows],
        }
        card = adaptive_card([*head, *extra, table], fallback=fallback)
        return card_message(card, summary=title)

    rows = [table_row(team_cells(team)) for team in digest.teams]
    whole = build(rows, [])
    if activity_bytes(whole) <= budget():
        return whole
    ranked = attention_order(digest.teams)
    note_room = 400  # the "showing N of M" line, added once the number is known
    base = activity_bytes(build([], [leadership_summary(digest)])) + note_room
    shown: list[dict[str, Any]] = []
    size = base
    for team in ranked:
        row = table_row(team_cells(team))
        size += activity_bytes(row) + 1  # its JSON and the comma before it
        if size > budget():
            break
        shown.append(row)

    def clipped() -> dict[str, Any]:
        note = subtle(
            card_text(
                f"Showing {len(shown)} of {len(digest.teams)} teams: significant drops first, then the "
                "most overdue cases. The whole table does not fit in a Teams message."
            )
        )
        return build(shown, [leadership_summary(digest), note])

    activity = clipped()
    while shown and activity_bytes(activity) > budget():  # the estimate was short: one row fewer
        shown.pop()
        activity = clipped()
    return activity


def score_card(report: ScoreReport) -> dict[str, Any]:
    """`cx score` as a card: a FactSet per judged metric, a grey line for a low sample, the KPIs and
    the before/after of annotations."""
    text = render_score_report(report)
    title, *_ = text.split("\n", 1)
    body: list[dict[str, Any]] = [text_block(card_text(title, MAX_FACT), weight="Bolder", size="Medium")]
    if not report.metrics:
        body.append(subtle("No scored responses in this window or the one before."))
    for item in report.metrics:
        current, previous = item.current, item.previous
        before = f"{format_value(item.metric, previous.score)} (n={previous.n})"
        if current.low_sample:
            value = format_value(item.metric, current.score) if current.score is not None else "no responses"
            line = f"{value} · low sample (n={current.n} < {report.min_n}), not judged · before {before}"
            body.append(subtle(f"{bold(item.label)}: {card_text(line)}", spacing="Medium"))
            continue
        pairs = [
            ("Score", format_value(item.metric, current.score)),
            ("n", str(current.n)),
            ("95% CI", format_ci(current)),
            ("vs the window before", f"{change_text(item.metric, item.change)} (was {before})"),
        ]
        if current.share_easy is not None:
            pairs.append(("Easy (≥5)", f"{current.share_easy:.0f}%"))
        body += [text_block(bold(item.label), spacing="Medium", separator=True), facts(pairs)]
    if report.kpis is not None:
        body.append(text_block(card_text(kpi_line(report.kpis)), spacing="Medium"))
    if report.annotations:
        body += annotation_elements(report.annotations, more="cx score")
    elif report.kind != "all":
        body.append(subtle("Annotations: none in the last 90 days."))
    return adaptive_card(body, fallback=text)


def digest_activity(digest: TeamDigest | LeadershipDigest, charts: Sequence[bytes] = ()) -> dict[str, Any]:
    """Either digest as a card message within Teams' size."""
    if isinstance(digest, LeadershipDigest):
        return leadership_digest_activity(digest)
    return team_digest_activity(digest, charts)


def posted_digest_activity(digest: TeamDigest | LeadershipDigest) -> dict[str, Any]:
    """What the outbox posts: the card with the trend chart when the team wants one and it fits.
    CPU work (matplotlib, and 2,500 table rows): run it off the event loop."""
    charts = trend_chart_pngs(digest) if isinstance(digest, TeamDigest) else []
    return digest_activity(digest, charts)
