"""`home`: a person's overview (cxbot.cases.overview) as the core's text, for every platform.

Slack's App Home and Teams' `cx home` card draw the same :class:`~cxbot.cases.overview.Overview`
richly; this text says everything on its own (the console, and the fallback of those views).
"""

from __future__ import annotations

from collections.abc import Mapping

from cxbot import markup
from cxbot.cases.overview import Overview
from cxbot.cases.view import CaseView
from cxbot.digest.text import format_score
from cxbot.ingest.routing import METRIC_LABELS
from cxbot.scores.stats import Score

#: Cases listed per section; the rest are counted and left to `list`.
HOME_LIST_LIMIT = 15


def case_line(case: CaseView) -> str:
    """`CX-42 [new] Support: lost parcel · acknowledge within 2h` (the title masked)."""
    return f"{case.ref} [{case.state}] {case.team_name}: {markup.shown(case.title)} · {case.sla_clock}"


def score_line(scores: Mapping[str, Score]) -> str:
    """`NPS +12.0 (n=40, …) · CSAT 81.0% (n=52, …)`, or that there were none."""
    parts = [f"{METRIC_LABELS.get(metric, metric)} {format_score(score)}" for metric, score in scores.items()]
    return " · ".join(parts) or "no responses"


def overview_text(overview: Overview, *, command: str = "/cx") -> str:
    """The overview in plain lines: my open cases, my teams' overdue cases, my teams' scores."""
    lines = ["Your open cases:"]
    lines += [f"• {case_line(c)}" for c in overview.mine[:HOME_LIST_LIMIT]] or ["Nothing assigned to you."]
    if len(overview.mine) > HOME_LIST_LIMIT:
        lines.append(f"…and more: {markup.command(f'{command} list mine')}")
    label = ", ".join(overview.teams) if overview.teams else "your teams"
    lines.append(f"Overdue in {label}:")
    lines += [f"• {case_line(c)}" for c in overview.overdue[:HOME_LIST_LIMIT]] or ["No overdue cases."]
    if len(overview.overdue) > HOME_LIST_LIMIT:
        lines.append(f"…and more: {markup.command(f'{command} list overdue')}")
    if overview.scores:
        lines.append("Scores, last 7 days:")
        lines += [f"• {team.name}: {score_line(team.by_metric)}" for team in overview.scores]
    return "\n".join(lines)
