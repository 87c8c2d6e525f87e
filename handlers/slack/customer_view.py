"""The single customer view on Slack: one page of a customer's history as Block Kit, with Older/Newer buttons.

The core (:mod:`cxbot.cases.customers`) cuts the pages; this module only draws one. Each button carries the
`customer …` command for its page, so a click runs the same grammar a user could type, with the same
authorization, and the answer replaces the ephemeral message through `response_url`.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    PlainTextObject,
    SectionBlock,
)

from cxbot.cases.customers import CustomerPage, HistoryItem
from cxbot.commands.dispatch import Reply
from handlers.slack.blocks import (
    MAX_FALLBACK_TEXT,
    MAX_FIELD,
    MAX_HEADER,
    checked,
    clip,
    escape,
    md,
)
from handlers.slack.renderers import (
    CUSTOMER,
)

#: Buttons on a page: `cx_customer_page:older` and `:newer`; their value is the command to run.
PAGE_ACTION = "cx_customer_page"
#: The "Customer history" button on a case card: `cx_customer:42`.
CARD_ACTION = CUSTOMER


def customer_blocks(page: CustomerPage) -> list[dict[str, Any]]:
    """Header facts, one section per response (newest first), then the paging buttons."""
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=clip(f"Customer {page.label}", MAX_HEADER))),
        SectionBlock(
            fields=[
                md(f"*Seen*\n{escape(page.seen_line)}", MAX_FIELD),
                md(f"*Responses*\n{escape(page.counts_line)}", MAX_FIELD),
                md(
                    f"*Negatives*\n{page.negatives_30} in 30 days, {page.negatives_90} in 90 days",
                    MAX_FIELD,
                ),
                md(f"*Open cases*\n{escape(page.cases_line.removeprefix('open cases: '))}", MAX_FIELD),
            ]
        ),
    ]
    if page.repeat_detractor:
        blocks.append(SectionBlock(text=md(f":warning: *{escape(page.repeat_detractor)}*")))
    notes = []
    if page.erased:
        notes.append("This customer's data was erased; their comments are not shown.")
    elif page.revealed:
        notes.append("Contact details are shown unmasked to you only; this reveal is audited.")
    else:
        notes.append("Contact details are masked.")
    if page.other_cases:
        notes.append("Cases without a response: " + escape(", ".join(c.label for c in page.other_cases)))
    blocks.append(ContextBlock(elements=[md(note) for note in notes]))
    blocks.append(DividerBlock())
    blocks += [SectionBlock(text=md(_item_text(item))) for item in page.items]
    blocks.append(ContextBlock(elements=[md(escape(page.position_line))]))
    buttons = []
    if page.newer is not None:
        buttons.append(
            ButtonElement(text="◂ Newer", action_id=f"{PAGE_ACTION}:newer", value=page.command("newer"))
        )
    if page.older is not None:
        buttons.append(
            ButtonElement(text="Older ▸", action_id=f"{PAGE_ACTION}:older", value=page.command("older"))
        )
    if buttons:
        blocks.append(ActionsBlock(block_id=f"{PAGE_ACTION}:{page.customer_id}", elements=buttons))
    return checked(blocks)


def _item_text(item: HistoryItem) -> str:
    negative = " (negative)" if item.negative else ""
    lines = [
        f"*{escape(item.score_label)}*{negative} · {escape(item.touchpoint or 'no touchpoint')} · "
        f"{escape(item.source)} · {item.received_at:%Y-%m-%d %H:%M}"
    ]
    if item.comment:
        lines += [f"> {line}" for line in escape(item.comment).splitlines() if line.strip()]
    if item.case:
        lines.append(f"Case *{item.case.ref}* {escape(item.case.label.removeprefix(item.case.ref).strip())}")
    return "\n".join(lines)


def customer_message(reply: Reply) -> dict[str, Any]:
    """`respond()` arguments for a customer page: always ephemeral (it may hold revealed PII)."""
    page = reply.report
    assert isinstance(page, CustomerPage)
    return {
        "response_type": "ephemeral",
        "text": clip(escape(reply.text), MAX_FALLBACK_TEXT),
        "blocks": customer_blocks(page),
    }
