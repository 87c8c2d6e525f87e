"""Command replies on Teams: an Adaptive Card where Slack draws rich blocks, the core's text otherwise.

The core's :class:`cxbot.commands.dispatch.Reply` carries a structured `report` beside its text: a
digest (`cx digest … preview`), a score report (`cx score`) or a page of the single customer view
(`cx customer …`). Those become cards (handlers.teams.digest_cards, and the customer view here); any
other reply is the text as a Teams message. Every card stays under Teams' message size.

The customer view's paging buttons are `Action.Execute` carrying the `customer cust:N before:…`
command for their page, like Slack's buttons, with `in_place` in their data: the click answers with
the next page's card, which replaces the one clicked.
"""

from __future__ import annotations

from typing import Any

from cxbot.cases.customers import CustomerPage, HistoryItem
from cxbot.commands.dispatch import Reply
from cxbot.digest.model import LeadershipDigest, TeamDigest
from cxbot.scores.report import ScoreReport
from handlers.teams.cards import (
    EXECUTE_VERB,
    MAX_FACT,
    activity_bytes,
    adaptive_card,
    card_message,
    card_text,
    clip,
    text_block,
)
from handlers.teams.digest_cards import budget, digest_activity, score_card
from handlers.teams.markup import message

#: A paging button's data says its answer replaces the card it is on (the next page, in place).
IN_PLACE = "in_place"
#: A response's comment in the customer view; the core already cuts them to 500 characters.
MAX_COMMENT = 500


def page_button(title: str, command: str) -> dict[str, Any]:
    return {
        "type": "Action.Execute",
        "title": title,
        "verb": EXECUTE_VERB,
        "data": {"command": command, IN_PLACE: True},
    }


def item_elements(item: HistoryItem) -> list[dict[str, Any]]:
    negative = " (negative)" if item.negative else ""
    head = (
        f"**{card_text(item.score_label, MAX_FACT)}**{negative} · "
        f"{card_text(item.touchpoint or 'no touchpoint', MAX_FACT)} · {card_text(item.source, MAX_FACT)} · "
        f"{item.received_at:%Y-%m-%d %H:%M}"
    )
    items = [text_block(head)]
    if item.comment:
        items.append(text_block(f"“{card_text(item.comment, MAX_COMMENT)}”", isSubtle=True, spacing="None"))
    if item.case:
        label = item.case.label.removeprefix(item.case.ref).strip()
        items.append(text_block(f"Case **{item.case.ref}** {card_text(label, MAX_FACT)}", spacing="None"))
    return [{"type": "Container", "separator": True, "items": items}]


def customer_card(page: CustomerPage, *, comments: bool = True) -> dict[str, Any]:
    """Header facts, one container per response (newest first), then the Newer/Older buttons."""
    facts = [
        ("Seen", page.seen_line),
        ("Responses", page.counts_line),
        ("Negatives", f"{page.negatives_30} in 30 days, {page.negatives_90} in 90 days"),
        ("Open cases", page.cases_line.removeprefix("open cases: ")),
    ]
    body: list[dict[str, Any]] = [
        text_block(card_text(f"Customer {page.label}", MAX_FACT), size="Large", weight="Bolder"),
        {
            "type": "FactSet",
            "facts": [{"title": t, "value": card_text(v, MAX_FACT)} for t, v in facts],
        },
    ]
    if page.repeat_detractor:
        body.append(text_block(f"⚠️ **{card_text(page.repeat_detractor, MAX_FACT)}**", color="Warning"))
    if page.erased:
        notes = ["This customer's data was erased; their comments are not shown."]
    elif page.revealed:
        notes = ["Contact details are shown unmasked to you only; this reveal is audited."]
    else:
        notes = ["Contact details are masked."]
    if page.other_cases:
        notes.append("Cases without a response: " + ", ".join(c.label for c in page.other_cases))
    body += [text_block(card_text(note), isSubtle=True, size="Small") for note in notes]
    for item in page.items:
        body += item_elements(item if comments else without_comment(item))
    body.append(text_block(card_text(page.position_line), isSubtle=True, size="Small", separator=True))
    actions = []
    for title, direction in (("◂ Newer", "newer"), ("Older ▸", "older")):
        command = page.command(direction)
        if command is not None:
            actions.append(page_button(title, command))
    return adaptive_card(body, fallback=page.text(), actions=actions)


def without_comment(item: HistoryItem) -> HistoryItem:
    return HistoryItem(
        feedback_id=item.feedback_id,
        received_at=item.received_at,
        metric=item.metric,
        score=item.score,
        touchpoint=item.touchpoint,
        source=item.source,
        comment=None,
        negative=item.negative,
        case=item.case,
    )


def customer_activity(page: CustomerPage) -> dict[str, Any]:
    """The page within Teams' size; in the (unlikely) case it is not, comments are left out."""
    summary = f"Customer {page.label}"
    activity = card_message(customer_card(page), summary=summary)
    if activity_bytes(activity) > budget():
        activity = card_message(customer_card(page, comments=False), summary=summary)
    return activity


def reply_card(reply: Reply) -> dict[str, Any] | None:
    """The reply's Adaptive Card when Slack would draw it richly, else None (the text is enough)."""
    activity = reply_card_activity(reply)
    return activity["attachments"][0]["content"] if activity is not None else None


def reply_card_activity(reply: Reply) -> dict[str, Any] | None:
    report = reply.report
    if not reply.ok:
        return None
    if isinstance(report, TeamDigest | LeadershipDigest):
        return digest_activity(report)  # a preview: no chart (drawing one is the outbox's work)
    if isinstance(report, ScoreReport):
        return card_message(score_card(report), summary=clip(reply.text.split("\n", 1)[0], 200))
    if isinstance(report, CustomerPage):
        return customer_activity(report)
    return None


def reply_activity(reply: Reply) -> dict[str, Any]:
    """What a command's reply sends: a card message, or the core's text as a Teams message."""
    return reply_card_activity(reply) or message(reply.text)


def is_private(reply: Reply) -> bool:
    """Only the asker may see it: revealed details, or a customer page showing them unmasked
    (Slack shows it ephemerally; Teams has no ephemeral messages in a channel)."""
    return reply.private or (isinstance(reply.report, CustomerPage) and reply.report.revealed)
