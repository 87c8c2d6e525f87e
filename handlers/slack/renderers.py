"""Block Kit for everything cxbot posts on Slack, built with slack_sdk.models so Slack's rules are checked.

Every builder returns plain dicts ready for the Web API, checked against Slack's limits by
:mod:`handlers.slack.blocks`, whose primitives (escaping, clipping, the checked block list) it uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from cxbot import markup
from cxbot.cases.overview import Overview
from cxbot.cases.view import CaseView
from cxbot.commands.dispatch import Reply
from cxbot.commands.forms import Field as FormField
from cxbot.commands.forms import Form, new_case_form, resolve_form, snooze_form
from cxbot.config import Config
from cxbot.digest.model import LeadershipDigest, TeamDigest
from cxbot.limits import MAX_ID, parse_id
from cxbot.loop.contact.flows import Composer
from cxbot.scores.report import ScoreReport
from cxbot.scores.stats import Score
from handlers.slack.blocks import (
    MAX_BLOCKS,
    MAX_FALLBACK_TEXT,
    MAX_FIELD,
    MAX_HEADER,
    MAX_HOME_BLOCKS,
    MAX_OPTIONS,
    MAX_TEXT,
    checked,
    clip,
    escape,
    md,
)
from handlers.slack.digest_blocks import digest_message, score_blocks
from handlers.slack.markup import slack_user, to_mrkdwn

# Action ids carry the case id, so one handler per verb serves every card: `cx_ack:42`.
ACK, TAKE, ASSIGN, SNOOZE, RESOLVE, REOPEN = (
    "cx_ack",
    "cx_take",
    "cx_assign",
    "cx_snooze",
    "cx_resolve",
    "cx_reopen",
)
SNOOZE_MODAL, RESOLVE_MODAL = "cx_snooze_modal", "cx_resolve_modal"
CONTACT = "cx_contact"
CONTACT_MODAL = "cx_contact_modal"
#: The composer's template select dispatches a block action, so the text and preview follow it.
CONTACT_TEMPLATE = "cx_contact_template"
#: The card's "Customer history" button: the single customer view, ephemerally (handlers/slack/customer_view).
CUSTOMER = "cx_customer"
#: "Reveal": the customer's real name, email and phone, ephemerally to the team, audited (`reveal CX-42`).
REVEAL = "cx_reveal"
NEW_CASE_MODAL = "cx_new_case_modal"
#: The new-case form's blocks; the core's NewCaseRejected fields map onto them (its `text` is `title`).
NEW_CASE_BLOCKS = ("team", "feedback", "title", "description", "touchpoint")
#: Slack's own limits on a modal's title, an input's label and its hint.
MAX_MODAL_TITLE = 24
MAX_LABEL = 2000
MAX_HINT = 2000


def action_id(verb: str, case_id: int) -> str:
    return f"{verb}:{case_id}"


def case_id_from(action: str) -> int | None:
    """`cx_ack:42` → 42 (None for anything else)."""
    _, _, ident = action.partition(":")
    return parse_id(ident)


def _state_line(case: CaseView) -> str:
    state = case.state.replace("_", " ")
    if case.escalated_label:
        state += f" · {case.escalated_label}"
    return state


def case_fallback_text(case: CaseView) -> str:
    """The notification text (and what screen readers get) for a case card."""
    text = f"{case.ref} [{case.state}] {escape(case.title)} ({escape(case.team_name)})"
    return clip(text, MAX_FALLBACK_TEXT)


def case_card(case: CaseView) -> list[dict[str, Any]]:
    """The case card: the facts a manager needs to act, and the buttons to act with."""
    fields = [
        md(f"*Score*\n{escape(case.score_label or 'no score')}", MAX_FIELD),
        md(f"*State*\n{escape(_state_line(case))}", MAX_FIELD),
        md(f"*Touchpoint*\n{escape(case.touchpoint or 'unknown')}", MAX_FIELD),
        md(f"*Team*\n{escape(case.team_name)}", MAX_FIELD),
        md(f"*Customer*\n{escape(case.customer or 'unknown')}", MAX_FIELD),
        md(f"*SLA*\n{escape(case.sla_clock)}", MAX_FIELD),
        md(f"*Assignee*\n{_user(case.assignee)}", MAX_FIELD),
        md(f"*Priority*\n{escape(case.priority)}", MAX_FIELD),
    ]
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=clip(f"{case.ref} · {case.title}", MAX_HEADER))),
        SectionBlock(fields=fields),
    ]
    if case.comment:
        quoted = "\n".join(f"> {line}" for line in escape(case.comment).splitlines() or [""])
        blocks.append(SectionBlock(text=md(f"*Comment*\n{quoted}")))
    if case.history is not None:  # the case has a customer: their recent history, and the whole of it
        summary = case.history.summary or "no earlier feedback"
        blocks.append(
            SectionBlock(
                text=md(f"*Customer history:* {escape(summary)}"),
                accessory=ButtonElement(
                    text="Customer history",
                    action_id=action_id(CUSTOMER, case.id),
                    value=case.history_command,
                ),
            )
        )
    context = [md(f"*Why here:* {escape(case.routing_reason)}")]
    if case.snoozed_until and case.snooze_reason and case.snoozed_until > case.now:
        context.append(md(f"*Snoozed:* {escape(case.snooze_reason)}"))
    if case.last_contact:
        mark = ":warning: " if case.contact_failed else ""
        context.append(md(f"{mark}*Last contact:* {escape(case.last_contact)}"))
    blocks.append(ContextBlock(elements=context))
    blocks.append(ActionsBlock(block_id=f"cx_case:{case.id}", elements=_buttons(case)))
    return checked(blocks)


def _buttons(case: CaseView) -> list[Any]:
    ident = str(case.id)
    reveal = (
        [ButtonElement(text="Reveal", action_id=action_id(REVEAL, case.id), value=ident)]
        if case.customer and case.customer != "(erased customer)"
        else []
    )
    if not case.is_open:
        return [ButtonElement(text="Reopen", action_id=action_id(REOPEN, case.id), value=ident), *reveal]
    buttons: list[Any] = []
    if case.state == "new":
        buttons.append(
            ButtonElement(text="Acknowledge", action_id=action_id(ACK, case.id), value=ident, style="primary")
        )
    buttons += [
        ButtonElement(text="Take", action_id=action_id(TAKE, case.id), value=ident),
        UserSelectElement(
            placeholder="Reassign…",
            action_id=action_id(ASSIGN, case.id),
            **({"initial_user": user} if (user := slack_user(case.assignee)) else {}),
        ),
    ]
    if case.state != "new":  # a snooze needs an acknowledgement first (design.md §6)
        buttons.append(ButtonElement(text="Snooze", action_id=action_id(SNOOZE, case.id), value=ident))
    buttons.append(ButtonElement(text="Contact customer", action_id=action_id(CONTACT, case.id), value=ident))
    buttons.append(ButtonElement(text="Resolve", action_id=action_id(RESOLVE, case.id), value=ident))
    return buttons + reveal


def _user(user: str | None) -> str:
    return to_mrkdwn(markup.person(user))


def thread_line(text: str) -> str:
    """A timeline line under the card: the core's mentions are live, a typed <!channel> or <!here>
    (or a link) pings or unfurls nobody."""
    return clip(to_mrkdwn(text), MAX_TEXT)


def escalation_message(text: str) -> dict[str, Any]:
    """An escalation DM or channel notice: the core's text, with its person and channel mentions."""
    return text_message(text, cut_note="(cut short; see the case card)")


def text_message(
    text: str, *, cut_note: str = "(cut short; narrow the command to see the rest)"
) -> dict[str, Any]:
    """The core's text (a reply, a report, a notice) as `text` plus sections, cut at Slack's limits."""
    text = to_mrkdwn(text)
    chunks = _chunks(text, MAX_TEXT)
    blocks: list[Block] = [SectionBlock(text=md(chunk)) for chunk in chunks[: MAX_BLOCKS - 1]]
    if len(chunks) >= MAX_BLOCKS:
        blocks.append(ContextBlock(elements=[md(cut_note)]))
    return {"text": clip(text or " ", MAX_FALLBACK_TEXT), "blocks": checked(blocks)}


def reply_message(reply: Reply) -> dict[str, Any]:
    """A command's reply as `respond()` arguments; errors and private answers are ephemeral.

    A reply carrying a digest (`/cx digest preview`) shows it exactly as the channel would get it.
    """
    if isinstance(reply.report, TeamDigest | LeadershipDigest):
        body = digest_message(reply.report)
    elif isinstance(reply.report, ScoreReport):
        body = {"text": clip(to_mrkdwn(reply.text), MAX_FALLBACK_TEXT), "blocks": score_blocks(reply.report)}
    else:
        body = text_message(reply.text)
    return {"response_type": "ephemeral" if reply.ephemeral or not reply.ok else "in_channel", **body}


def _chunks(text: str, limit: int) -> list[str]:
    """Split on line breaks into pieces of at most `limit` characters (a huge line is cut)."""
    pieces: list[str] = []
    current = ""
    for line in (text or " ").splitlines() or [" "]:
        line = clip(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            pieces.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    pieces.append(current or " ")
    return pieces


def _case_line(case: CaseView) -> SectionBlock:
    return SectionBlock(
        text=md(f"*{case.ref}* {escape(case.title)}\n{escape(_state_line(case))} · {escape(case.sla_clock)}"),
    )


SHORT_LABELS = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}


def score_text(score: Score) -> str:
    """`NPS +32 ±9 (n=120)`; a small sample is said to be one, never shown as a number to trust."""
    label = SHORT_LABELS.get(score.metric, score.metric)
    if score.n == 0 or score.score is None:
        return f"{label}: no responses"
    if score.low_sample:
        return f"{label}: _low sample (n={score.n})_"
    value = {"nps": f"{score.score:+.0f}", "csat": f"{score.score:.0f}%"}.get(
        score.metric, f"{score.score:.1f}"
    )
    margin = ""
    if score.ci_low is not None and score.ci_high is not None:
        margin = f" ±{(score.ci_high - score.ci_low) / 2:.{1 if score.metric == 'ces' else 0}f}"
    return f"{label} {value}{margin} (n={score.n})"


def home_view(overview: Overview) -> dict[str, Any]:
    """App Home: my open cases, my teams' overdue cases, then my teams' 7-day scores.

    Each case list is cut so the whole view stays within Slack's 100 blocks.
    """
    mine, overdue, teams, scores = overview.mine, overview.overdue, overview.teams, overview.scores
    room = (MAX_HOME_BLOCKS - 12 - len(scores)) // 2
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text="Your open cases"))]
    blocks += [_case_line(c) for c in mine[:room]] or [SectionBlock(text=md("Nothing assigned to you."))]
    if len(mine) > room:
        blocks.append(ContextBlock(elements=[md(f"…and {len(mine) - room} more: `/cx list mine`")]))
    blocks.append(DividerBlock())
    label = ", ".join(teams) if teams else "your teams"
    blocks.append(HeaderBlock(text=PlainTextObject(text=clip(f"Overdue in {label}", MAX_HEADER))))
    blocks += [_case_line(c) for c in overdue[:room]] or [SectionBlock(text=md("No overdue cases."))]
    if len(overdue) > room:
        blocks.append(ContextBlock(elements=[md(f"…and {len(overdue) - room} more: `/cx list overdue`")]))
    if scores:
        blocks.append(DividerBlock())
        blocks.append(HeaderBlock(text=PlainTextObject(text="Scores, last 7 days")))
        for team in scores[: MAX_HOME_BLOCKS - len(blocks) - 1]:
            line = " · ".join(score_text(score) for score in team.by_metric.values())
            blocks.append(SectionBlock(text=md(f"*{escape(team.name)}*\n{line}")))
    view = View(type="home", blocks=blocks)
    rendered = view.to_dict()
    rendered["blocks"] = checked(blocks, limit=MAX_HOME_BLOCKS)
    return rendered


def _metadata(case_id: int, channel: str | None) -> str:
    return json.dumps({"case_id": case_id, "channel": channel})


def parse_metadata(text: str) -> tuple[int | None, str | None]:
    try:
        data = json.loads(text or "{}")
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):  # only Slack can send it, but never trust its shape (issue #11)
        return None, None
    case_id, channel = data.get("case_id"), data.get("channel")
    valid_id = type(case_id) is int and 1 <= case_id <= MAX_ID
    return (case_id if valid_id else None), (channel if isinstance(channel, str) else None)


def form_modal(form: Form, *, callback_id: str, private_metadata: str) -> dict[str, Any]:
    """A core form (cxbot.commands.forms) as a Slack modal: a select per choice field (a text input
    when there are too many choices), a text input per text field, block ids = the fields' keys."""
    blocks: list[Block] = []
    if form.note:
        blocks.append(ContextBlock(elements=[md(escape(form.note))]))
    for spec in form.fields:
        blocks.append(
            InputBlock(
                block_id=spec.key,
                label=clip(spec.label, MAX_LABEL),
                optional=not spec.required,
                element=_form_element(spec),
                **({"hint": clip(spec.hint, MAX_HINT)} if spec.hint else {}),
            )
        )
    view = View(
        type="modal",
        callback_id=callback_id,
        private_metadata=private_metadata,
        title=clip(form.title, MAX_MODAL_TITLE),
        submit=form.submit_label,
        close="Cancel",
        blocks=blocks,
    )
    rendered = view.to_dict()
    rendered["blocks"] = checked(blocks)
    return rendered


def _form_element(spec: FormField) -> Any:
    if spec.is_choice:
        options = [Option(value=c.value, label=clip(c.label, 75)) for c in spec.choices[:MAX_OPTIONS]]
        initial = next((o for o in options if o.value == spec.initial), None)
        return StaticSelectElement(
            action_id="value", options=options, **({"initial_option": initial} if initial else {})
        )
    if spec.number:
        return NumberInputElement(action_id="value", is_decimal_allowed=False, min_value="1")
    extra: dict[str, Any] = {"multiline": True} if spec.multiline else {}
    if spec.placeholder:
        extra["placeholder"] = spec.placeholder
    return PlainTextInputElement(action_id="value", max_length=spec.max_length or MAX_FIELD, **extra)


def form_values(form: Form, state: dict[str, Any]) -> dict[str, str | None]:
    """What a submitted modal holds for each field of the form (`view.state.values`)."""
    values: dict[str, str | None] = {}
    for spec in form.fields:
        element = (state.get(spec.key) or {}).get("value") or {}
        option = element.get("selected_option") or {}
        value = option.get("value") or element.get("value")
        values[spec.key] = value if isinstance(value, str) else None
    return values


def snooze_modal(case_id: int, *, channel: str | None) -> dict[str, Any]:
    """Snooze needs a duration and a reason (design.md §6), so the button asks for both."""
    return form_modal(
        snooze_form(case_id), callback_id=SNOOZE_MODAL, private_metadata=_metadata(case_id, channel)
    )


def resolve_modal(case_id: int, *, channel: str | None, root_causes: Sequence[str]) -> dict[str, Any]:
    """Resolve asks for the outcome and, optionally, a root cause from the configured list."""
    form = resolve_form(case_id, root_causes=root_causes)
    return form_modal(form, callback_id=RESOLVE_MODAL, private_metadata=_metadata(case_id, channel))


def contact_modal(
    form: Composer, *, channel: str | None, selected_channel: str | None = None
) -> dict[str, Any]:
    """The contact composer (design.md §5): channel, template, editable text and a preview.

    The text block's id carries the template, so Slack shows the new template's text after
    `views.update` instead of keeping what was typed for the old one.
    """
    title = clip(f"Contact {form.ref}", 24)
    if form.problem or not form.channels:
        blocks: list[Block] = [
            SectionBlock(text=md(escape(form.problem or "No way to reach this customer.")))
        ]
        view = View(
            type="modal",
            callback_id=CONTACT_MODAL,
            title=title,
            close="Close",
            blocks=blocks,
            private_metadata=_metadata(form.case_id, channel),
        )
        rendered = view.to_dict()
        rendered["blocks"] = checked(blocks)
        return rendered
    channel_options = [Option(value=c.channel, label=clip(c.label, 75)) for c in form.channels]
    initial_channel = next((o for o in channel_options if o.value == selected_channel), channel_options[0])
    template_options = [
        Option(value=key, label=clip(label, 75)) for key, label in form.templates[:MAX_OPTIONS]
    ]
    initial_template = next(
        (o for o in template_options if o.value == form.rendered.name), template_options[0]
    )
    preview = (
        f"*Subject:* {escape(form.rendered.subject)}\n*Preview of “{escape(form.rendered.name)}”:* "
        f"{escape(form.rendered.body)}"
    )
    blocks = [
        InputBlock(
            block_id="channel",
            label="Send by",
            element=StaticSelectElement(
                action_id="value", options=channel_options, initial_option=initial_channel
            ),
        ),
        InputBlock(
            block_id="template",
            label="Template",
            dispatch_action=True,
            element=StaticSelectElement(
                action_id=CONTACT_TEMPLATE, options=template_options, initial_option=initial_template
            ),
        ),
        InputBlock(
            block_id=f"body:{form.rendered.name}",
            label="Message",
            element=PlainTextInputElement(
                action_id="value",
                multiline=True,
                max_length=MAX_TEXT,
                initial_value=clip(form.rendered.body, MAX_TEXT),
            ),
            hint="Edit freely; this is what the customer receives.",
        ),
        ContextBlock(block_id="preview", elements=[md(preview)]),
    ]
    view = View(
        type="modal",
        callback_id=CONTACT_MODAL,
        private_metadata=_metadata(form.case_id, channel),
        title=title,
        submit="Send",
        close="Cancel",
        blocks=blocks,
    )
    rendered = view.to_dict()
    rendered["blocks"] = checked(blocks)
    return rendered


def new_case_modal(config: Config, *, channel: str | None, team: str | None = None) -> dict[str, Any]:
    """New case by hand (design.md §5): a team, then a feedback id or a title and description."""
    form = new_case_form(config, team=team)
    return form_modal(form, callback_id=NEW_CASE_MODAL, private_metadata=json.dumps({"channel": channel}))
