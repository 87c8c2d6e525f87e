"""Block Kit for digests (design.md §8), built with slack_sdk.models and held to Slack's limits.

A team digest: a header, one section per metric whose fields carry the score, n, CI, the two
changes with their verdict words and the 7/28-day sparklines, then the distribution. A score under
the team's floor is never dressed as a trend: it is a grey context line saying "low sample (n=12 <
30)" with no comparison and no sparkline. Then before/after of annotations, the top negative
comments (masked in the core, escaped here), themes and closed-loop health with the case KPIs.

The leadership digest puts all teams side by side in a monospace table, split over as many
sections as its rows need (3000 characters each) and cut, with a note, at 50 blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

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
from handlers.slack.blocks import (
    MAX_BLOCKS,
    MAX_FALLBACK_TEXT,
    MAX_FIELD,
    MAX_HEADER,
    MAX_TEXT,
    checked,
    clip,
    escape,
)

MAX_FIELDS = 10
MAX_ANNOTATIONS = 5
SHORT = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}


def md(text: str, limit: int = MAX_TEXT) -> MarkdownTextObject:
    return MarkdownTextObject(text=clip(text, limit))


def _field(title: str, body: str) -> MarkdownTextObject:
    return md(f"*{title}*\n{body}", MAX_FIELD)


def _change(metric: str, change: Change) -> str:
    """The change with its verdict in words, bold only when the CIs back it up."""
    words = format_change(metric, change)
    if change.verdict == VERDICT_SIGNIFICANT:
        arrow = "▲" if change.direction == "up" else "▼"
        return f"{arrow} *{words}*"
    return words


def metric_blocks(item: MetricDigest, *, report_date: Any, min_n: int) -> list[Block]:
    """A section with fields for a score worth reading; a grey context line for a low sample."""
    day = item.day
    if day.low_sample:
        value = format_value(item.metric, day.score) if day.score is not None else "no responses"
        text = (
            f"*{escape(item.label)}*: {value} · low sample (n={day.n} < {min_n}), no trend · "
            f"28 days: {format_pooled(item.last_28_days)} · distribution: {format_distribution(day)}"
        )
        return [ContextBlock(elements=[md(text)])]
    week_ago = report_date - timedelta(days=7)
    fields = [
        _field("Score", format_value(item.metric, day.score)),
        _field("n", str(day.n)),
        _field("95% CI", format_ci(day)),
        _field(
            "vs previous day",
            f"{_change(item.metric, item.vs_previous_day)}\n"
            f"(was {format_value(item.metric, item.previous_day.score)}, n={item.previous_day.n})",
        ),
        _field(
            f"vs {week_ago:%a} {week_ago.day} {week_ago:%b}",
            f"{_change(item.metric, item.vs_same_weekday)}\n"
            f"(was {format_value(item.metric, item.same_weekday_last_week.score)}, "
            f"n={item.same_weekday_last_week.n})",
        ),
        _field(
            "7 days", f"{format_pooled(item.last_7_days)}\n`{sparkline([p.score for p in item.trend_7d])}`"
        ),
        _field(
            "28 days", f"{format_pooled(item.last_28_days)}\n`{sparkline([p.score for p in item.trend_28d])}`"
        ),
    ]
    if day.share_easy is not None:
        fields.append(_field("Easy (≥5)", f"{day.share_easy:.0f}%"))
    low_days = sum(1 for point in item.daily if point.n and point.low_sample)
    notes = [f"Distribution: {format_distribution(day)}"]
    if low_days:
        notes.append(
            f"{low_days} of 28 days below n={min_n} (sparklines show them anyway; read them with care)"
        )
    return [
        SectionBlock(text=md(f"*{escape(item.label)}*"), fields=fields[:MAX_FIELDS]),
        ContextBlock(elements=[md(" · ".join(notes))]),
    ]


def annotation_blocks(effects: Sequence[AnnotationEffect]) -> list[Block]:
    """Before/after of each recent annotation, with its windows' length and the verdict words."""
    if not effects:
        return []
    blocks: list[Block] = [
        SectionBlock(
            text=md(
                "*Before / after annotations* (last 90 days; two equal windows meeting at each: "
                "the time since it, at most 28 days)"
            )
        )
    ]
    for effect in effects[:MAX_ANNOTATIONS]:
        verdicts = "\n".join(f"• {escape(phrase)}" for phrase in effect_verdict(effect))
        blocks.append(
            SectionBlock(
                text=md(
                    f"*{effect.effective_at:%Y-%m-%d}* `{escape(effect.touchpoint)}` “{escape(effect.text)}” "
                    f"({describe_window(effect.window)} before vs after)\n{verdicts}"
                )
            )
        )
    if len(effects) > MAX_ANNOTATIONS:
        blocks.append(ContextBlock(elements=[md(f"…and {len(effects) - MAX_ANNOTATIONS} more: `/cx score`")]))
    return blocks


def health_blocks(health: CaseHealth) -> list[Block]:
    """Closed-loop health: cases now, the loop's speed and reach, and the case KPIs."""
    fields = [
        _field("Cases", f"{health.new} new · {health.open} open · {health.overdue} overdue"),
        _field(
            "Median time to acknowledge",
            f"{format_duration(health.median_seconds_to_acknowledge)} (n={health.acknowledged_n})",
        ),
        _field(
            "Median time to first contact",
            f"{format_duration(health.median_seconds_to_first_contact)} (n={health.contacted_n})",
        ),
        _field("Contact rate", format_percent(health.contact_rate, health.cases_in_window)),
        _field("Recovery rate", format_percent(health.recovery_rate, health.resurveyed_n)),
        _field(
            "First contact resolution",
            format_percent(health.first_contact_resolution, health.resolved_n),
        ),
        _field(
            "Time to resolve",
            f"median {format_duration(health.median_seconds_to_resolve)} · "
            f"p90 {format_duration(health.p90_seconds_to_resolve)} (n={health.resolved_n})",
        ),
    ]
    return [
        SectionBlock(text=md("*Closed loop*"), fields=fields),
        ContextBlock(
            elements=[
                md(
                    f"Counts as of {health.as_of:%Y-%m-%d %H:%M} UTC; times and rates over the cases opened "
                    f"(resolution: resolved) in the last {health.window_days} days ({health.cases_in_window} "
                    "opened)."
                )
            ]
        ),
    ]


def team_digest_blocks(digest: TeamDigest) -> list[dict[str, Any]]:
    """The team digest's blocks, validated and within Slack's limits."""
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(
                text=clip(f"CX digest · {digest.team_name} · {format_day(digest.report_date)}", MAX_HEADER)
            )
        ),
        ContextBlock(
            elements=[
                md(
                    f"{escape(digest.timezone)} · {digest.responses} responses · {digest.negative_total} "
                    f"negative · scores under n={digest.min_n} are low samples, never trends"
                )
            ]
        ),
    ]
    if digest.quiet:
        blocks.append(SectionBlock(text=md("A quiet day: no feedback received.")))
    else:
        for item in digest.metrics:
            blocks += metric_blocks(item, report_date=digest.report_date, min_n=digest.min_n)
    if digest.negative_comments:
        lines = []
        for comment in digest.negative_comments:
            score = "" if comment.score is None else f" {comment.score:g}"
            where = f" · {escape(comment.touchpoint)}" if comment.touchpoint else ""
            lines.append(f"• *{comment.metric.upper()}{score}*{where}: “{escape(comment.text)}”")
        blocks += [DividerBlock(), SectionBlock(text=md("*Top negative comments*\n" + "\n".join(lines)))]
    if digest.themes:
        themes = ", ".join(f"{escape(t.phrase)} ({t.comments})" for t in digest.themes)
        blocks.append(ContextBlock(elements=[md(f"*Themes in negative comments:* {themes}")]))
    if digest.annotations:
        blocks += [DividerBlock(), *annotation_blocks(digest.annotations)]
    blocks += [DividerBlock(), *health_blocks(digest.cases)]
    return checked(blocks[:MAX_BLOCKS])


def _cell(item: MetricDigest | None) -> str:
    """A table cell: the day's score and its change; (…) marks a low sample, never judged."""
    if item is None or item.day.score is None:
        return "—"
    value = format_value(item.metric, item.day.score)
    if item.day.low_sample:
        return f"({value})"
    change = item.vs_previous_day
    mark = {"up": " ▲", "down": " ▼"}.get(change.direction or "", " =") if change.significant else " ="
    return f"{value}{mark}"


def leadership_rows(digest: LeadershipDigest) -> list[str]:
    """The table's lines: one per team, columns padded to line up in a monospace block."""
    header = ["Team", "NPS", "CSAT", "CES", "Responses", "Cases new/open/overdue"]
    rows = [header]
    for team in digest.teams:
        rows.append(
            [
                clip(team.team_name, 24),
                _cell(team.metric("nps")),
                _cell(team.metric("csat")),
                _cell(team.metric("ces")),
                str(team.responses),
                f"{team.cases.new}/{team.cases.open}/{team.cases.overdue}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def leadership_digest_blocks(digest: LeadershipDigest) -> list[dict[str, Any]]:
    """All teams side by side: a monospace table over as many sections as it needs, within 50 blocks."""
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=f"CX leadership digest · {format_day(digest.report_date)}")),
        ContextBlock(
            elements=[
                md(
                    "Each team's own local day. ▲/▼ significant change vs the previous day · "
                    "= no real change · (…) low sample, not judged · — no responses"
                )
            ]
        ),
    ]
    lines = [escape(line) for line in leadership_rows(digest)]
    header, body = lines[0], lines[1:]
    room = MAX_TEXT - len("```\n\n```") - len(header) - 1
    chunks: list[list[str]] = [[]]
    size = 0
    for line in body:
        if chunks[-1] and size + len(line) + 1 > room:
            chunks.append([])
            size = 0
        chunks[-1].append(clip(line, room))
        size += len(line) + 1
    space = MAX_BLOCKS - len(blocks) - 1
    for chunk in chunks[:space]:
        blocks.append(SectionBlock(text=md("```\n" + "\n".join([header, *chunk]) + "\n```")))
    if len(chunks) > space:
        shown = sum(len(c) for c in chunks[:space])
        blocks.append(
            ContextBlock(elements=[md(f"…and {len(body) - shown} more teams (cut at Slack's limit)")])
        )
    return checked(blocks)


def score_blocks(report: ScoreReport) -> list[dict[str, Any]]:
    """`/cx score` as blocks: a section of fields per judged metric, grey context for low samples."""
    title, *_ = render_score_report(report).split("\n", 1)
    blocks: list[Block] = [SectionBlock(text=md(f"*{escape(title)}*"))]
    if not report.metrics:
        blocks.append(ContextBlock(elements=[md("No scored responses in this window or the one before.")]))
    for item in report.metrics:
        current, previous = item.current, item.previous
        before = f"{format_value(item.metric, previous.score)} (n={previous.n})"
        if current.low_sample:
            value = format_value(item.metric, current.score) if current.score is not None else "no responses"
            text = (
                f"*{escape(item.label)}*: {value} · low sample (n={current.n} < {report.min_n}), "
                f"not judged · before {before}"
            )
            blocks.append(ContextBlock(elements=[md(text)]))
            continue
        fields = [
            _field("Score", format_value(item.metric, current.score)),
            _field("n", str(current.n)),
            _field("95% CI", format_ci(current)),
            _field("vs the window before", f"{_change(item.metric, item.change)}\n(was {before})"),
        ]
        if current.share_easy is not None:
            fields.append(_field("Easy (≥5)", f"{current.share_easy:.0f}%"))
        blocks.append(SectionBlock(text=md(f"*{escape(item.label)}*"), fields=fields))
    if report.kpis is not None:
        blocks.append(SectionBlock(text=md(escape(kpi_line(report.kpis)))))
    if report.annotations:
        blocks += annotation_blocks(report.annotations)
    elif report.kind != "all":
        blocks.append(ContextBlock(elements=[md("Annotations: none in the last 90 days.")]))
    return checked(blocks[:MAX_BLOCKS])


def digest_message(digest: TeamDigest | LeadershipDigest) -> dict[str, Any]:
    """`text` (the whole plain digest, for notifications and screen readers) and `blocks`."""
    if isinstance(digest, LeadershipDigest):
        return {
            "text": clip(escape(render_leadership_digest(digest)), MAX_FALLBACK_TEXT),
            "blocks": leadership_digest_blocks(digest),
        }
    # The fallback carries the day's negative comments as the customers wrote them: escaped whole.
    return {
        "text": clip(escape(render_team_digest(digest)), MAX_FALLBACK_TEXT),
        "blocks": team_digest_blocks(digest),
    }
