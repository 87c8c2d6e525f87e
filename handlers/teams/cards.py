"""Adaptive Cards 1.5 for Teams, built from the same core objects as Slack's blocks.

The case card shows what Slack's does (design.md §5): score, state, touchpoint, team, customer
(masked), SLA clock, assignee, priority, the comment (masked), the customer's history line and why
the case was routed here. Card text is Adaptive Cards markdown, not Teams message markdown: outside
text goes through :func:`card_text`, which breaks every markdown mark with an invisible zero-width
space (Adaptive Cards honour no backslash escapes), so a comment can never link, format or list.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cxbot import markup
from cxbot.cases.view import CaseView

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
#: Teams refuses a message over about 28 KB; a card's texts are clipped well below that.
MAX_TEXT = 2000
MAX_FACT = 300
ZWSP = "\u200b"
#: Adaptive Cards markdown: emphasis, links, and list markers at a line's start.
CARD_MARKS = re.compile(r"([*_\[\]()`~\\])")
LIST_START = re.compile(r"(?m)^(\s*)([-+]|\d+\.)")


def clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def card_text(value: str, limit: int = MAX_TEXT) -> str:
    """Outside text shown literally in an Adaptive Card TextBlock or fact."""
    broken = CARD_MARKS.sub(rf"\1{ZWSP}", clip(markup.plain(value), limit))
    return LIST_START.sub(rf"\1{ZWSP}\2", broken)


def text_block(text: str, **options: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **options}


def adaptive_card(
    body: list[dict[str, Any]], *, fallback: str, actions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": VERSION,
        "body": body,
        "fallbackText": clip(fallback, MAX_FACT),
        # Teams-only: use the whole width of the conversation.
        "msteams": {"width": "Full"},
    }
    if actions:
        card["actions"] = actions
    return card


def attachment(card: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": CARD_CONTENT_TYPE, "content": card}


def state_line(case: CaseView) -> str:
    state = case.state.replace("_", " ")
    return f"{state} · {case.escalated_label}" if case.escalated_label else state


def fallback_text(case: CaseView) -> str:
    """The notification text (and what screen readers get) for a case card."""
    return f"{case.ref} [{case.state}] {markup.as_plain_text(case.title)} ({case.team_name})"


def case_card(case: CaseView) -> dict[str, Any]:
    """The case card as an Adaptive Card 1.5."""
    facts = [
        ("Score", case.score_label or "no score"),
        ("State", state_line(case)),
        ("Touchpoint", case.touchpoint or "unknown"),
        ("Team", case.team_name),
        ("Customer", case.customer or "unknown"),
        ("SLA", case.sla_clock),
        ("Assignee", markup.as_plain_text(markup.person(case.assignee))),
        ("Priority", case.priority),
    ]
    body: list[dict[str, Any]] = [
        text_block(
            card_text(f"{case.ref} · {markup.as_plain_text(case.title)}", MAX_FACT),
            size="Large",
            weight="Bolder",
        ),
        {"type": "FactSet", "facts": [{"title": t, "value": card_text(v, MAX_FACT)} for t, v in facts]},
    ]
    if case.comment:
        body.append(text_block("**Comment**", spacing="Medium"))
        body.append(
            {"type": "Container", "style": "emphasis", "items": [text_block(card_text(case.comment))]}
        )
    if case.history is not None:
        summary = case.history.summary or "no earlier feedback"
        body.append(text_block(f"**Customer history:** {card_text(summary)}"))
    notes = [f"**Why here:** {card_text(case.routing_reason)}"]
    if case.snoozed_until and case.snooze_reason and case.snoozed_until > case.now:
        notes.append(f"**Snoozed:** {card_text(case.snooze_reason)}")
    if case.last_contact:
        mark = "⚠️ " if case.contact_failed else ""
        notes.append(f"{mark}**Last contact:** {card_text(case.last_contact)}")
    body.extend(text_block(note, isSubtle=True, size="Small") for note in notes)
    return adaptive_card(body, fallback=fallback_text(case), actions=case_actions(case))


#: The `verb` of every card button; its `data.command` is the command a Slack button would run.
EXECUTE_VERB = "cx"
#: A form-backed button is an Action.Submit that opens a Teams dialog (`task/fetch`); its data
#: names the dialog (handlers.teams.dialogs) and the case, and comes back in the dialog's submit.
DIALOG_KEY, CASE_KEY = "cxDialog", "cxCase"
#: Teams shows at most six buttons on a card; these go to its overflow menu ("…").
SECONDARY = ("Reveal", "Customer history")


def execute(title: str, command: str, *, style: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": "Action.Execute",
        "title": title,
        "verb": EXECUTE_VERB,
        "data": {"command": command},
    }
    if style:
        action["style"] = style
    if title in SECONDARY:
        action["mode"] = "secondary"
    return action


def dialog_button(title: str, dialog: str, case_id: int | None = None) -> dict[str, Any]:
    """A button that opens the Teams dialog `dialog` (a form) for a case, or for no case (`new`)."""
    # `command` names the form's verb, as every button's data does; the dialog's submit runs it.
    data: dict[str, Any] = {"msteams": {"type": "task/fetch"}, DIALOG_KEY: dialog, "command": dialog}
    if case_id is not None:
        data |= {CASE_KEY: case_id, "command": f"{dialog} CX-{case_id}"}
    return {"type": "Action.Submit", "title": title, "data": data}


def case_actions(case: CaseView) -> list[dict[str, Any]]:
    """Slack's buttons: the one-command ones are Action.Execute (Reveal and Customer history answer
    in the clicker's personal chat only), the form-backed ones open dialogs (handlers.teams.dialogs)."""
    reveal = (
        [execute("Reveal", f"reveal {case.ref}")]
        if case.customer and case.customer != "(erased customer)"
        else []
    )
    if case.history is not None:  # the case has a customer: the whole of their history, as on Slack
        reveal.append(execute("Customer history", case.history_command))
    if not case.is_open:
        return [execute("Reopen", f"reopen {case.ref}"), *reveal]
    actions = [execute("Acknowledge", f"ack {case.ref}", style="positive")] if case.state == "new" else []
    actions.append(execute("Take", f"take {case.ref}"))
    actions.append(dialog_button("Reassign", "assign", case.id))
    if case.state != "new":  # a snooze needs an acknowledgement first (design.md §6)
        actions.append(dialog_button("Snooze", "snooze", case.id))
    actions.append(dialog_button("Contact customer", "contact", case.id))
    actions.append(dialog_button("Resolve", "resolve", case.id))
    return actions + reveal


#: Teams refuses a bot message over about 28 KB: the whole activity as sent, attachments included.
#: Every card is built to stay under this (measured with :func:`activity_bytes`).
MAX_ACTIVITY_BYTES = 28_000


def activity_bytes(activity: dict[str, Any]) -> int:
    """The activity's size as the Bot Connector receives it (compact UTF-8 JSON, as httpx sends it)."""
    return len(json.dumps(activity, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def card_message(card: dict[str, Any], *, summary: str) -> dict[str, Any]:
    """A message activity carrying one Adaptive Card; `summary` is the notification's text."""
    return {"type": "message", "summary": clip(summary, 200), "attachments": [attachment(card)]}
