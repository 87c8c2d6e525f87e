"""`cx home` on Teams: the overview Slack's App Home shows (cxbot.cases.overview), as an Adaptive Card."""

from __future__ import annotations

from typing import Any

from cxbot import markup
from cxbot.cases.overview import Overview
from cxbot.cases.view import CaseView
from cxbot.commands.home import HOME_LIST_LIMIT, score_line
from handlers.teams.cards import MAX_FACT, adaptive_card, attachment, card_text, state_line, text_block


def case_item(case: CaseView) -> dict[str, Any]:
    title = card_text(f"{case.ref} · {markup.as_plain_text(case.title)}", MAX_FACT)
    detail = card_text(f"{state_line(case)} · {case.team_name} · {case.sla_clock}", MAX_FACT)
    return {
        "type": "Container",
        "items": [
            text_block(f"**{title}**"),
            text_block(detail, isSubtle=True, size="Small", spacing="None"),
        ],
    }


def section(title: str, cases: list[CaseView], *, empty: str, more: str) -> list[dict[str, Any]]:
    items = [text_block(card_text(title, MAX_FACT), size="Medium", weight="Bolder", separator=True)]
    items += [case_item(c) for c in cases[:HOME_LIST_LIMIT]] or [text_block(empty, isSubtle=True)]
    if len(cases) > HOME_LIST_LIMIT:
        items.append(text_block(f"…and more: `{more}`", isSubtle=True, size="Small"))
    return items


def home_card(overview: Overview, *, command: str = "cx") -> dict[str, Any]:
    """My open cases, my teams' overdue cases, then my teams' 7-day scores."""
    teams = ", ".join(overview.teams) if overview.teams else "your teams"
    body = section(
        "Your open cases", overview.mine, empty="Nothing assigned to you.", more=f"{command} list mine"
    )
    body += section(
        f"Overdue in {teams}", overview.overdue, empty="No overdue cases.", more=f"{command} list overdue"
    )
    if overview.scores:
        body.append(text_block("Scores, last 7 days", size="Medium", weight="Bolder", separator=True))
        facts = [
            {
                "title": card_text(team.name, MAX_FACT),
                "value": card_text(score_line(team.by_metric), MAX_FACT),
            }
            for team in overview.scores
        ]
        body.append({"type": "FactSet", "facts": facts})
    return adaptive_card(body, fallback="Your cxbot home")


def home_message(overview: Overview, *, command: str = "cx") -> dict[str, Any]:
    return {"type": "message", "attachments": [attachment(home_card(overview, command=command))]}
