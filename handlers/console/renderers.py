"""Terminal text for what Slack shows as Block Kit: case cards, thread lines, notices, digests, replies.

Plain text with a little box drawing, readable in any terminal and in a log; no colours, so what a
test or a screen reader gets is what a person sees. The core's marks (cxbot.markup: mentions,
channels, quotes, alert marks) are turned into words a terminal can show.
"""

from __future__ import annotations

import textwrap

from cxbot import markup
from cxbot.cases.view import CaseView
from cxbot.commands.dispatch import Reply
from cxbot.markup import as_plain_text

WIDTH = 100


def plain(text: str) -> str:
    """The core's text for a terminal: `@U1` for a mention, `#C1` for a channel, ⚠ for an alert."""
    return as_plain_text(text)


def _wrap(label: str, value: str) -> list[str]:
    lines = textwrap.wrap(
        f"{label}{value}", width=WIDTH - 4, subsequent_indent=" " * len(label), break_long_words=True
    )
    return lines or [label.rstrip()]


def _boxed(title: str, body: list[str], footer: str | None = None) -> str:
    lines = [f"┌─ {title}"]
    lines += [f"│ {line}" for line in body]
    lines.append(f"└─ {footer}" if footer else "└─")
    return "\n".join(lines)


def case_actions(case: CaseView) -> list[str]:
    """The card's buttons as the commands that do the same thing."""
    ref = case.ref
    if not case.is_open:
        return [f"reopen {ref}"]
    actions = [f"ack {ref}"] if case.state == "new" else []
    actions += [f"take {ref}", f"assign {ref} @person"]
    if case.state != "new":  # a snooze needs an acknowledgement first, as on Slack
        actions.append(f"snooze {ref} 2h <reason>")
    actions.append(f"resolve {ref} <outcome>")
    return actions


def case_state(case: CaseView) -> str:
    state = case.state.replace("_", " ")
    if case.escalated_label:
        state += f" · {case.escalated_label}"
    return state


def _priority(case: CaseView) -> str:
    return f" · {case.priority} priority" if case.priority and case.priority != "normal" else ""


def case_card(case: CaseView, *, channel: str | None = None, updated: bool = False) -> str:
    """The case card as a box: the facts a manager needs to act, then the commands to act with."""
    where = f"{channel} · " if channel else ""
    what = "card updated" if updated else "case card"
    body = [
        *_wrap("Score:      ", (case.score_label or "no score") + _priority(case)),
        *_wrap("State:      ", f"{case_state(case)} · SLA: {case.sla_clock}"),
        *_wrap(
            "Team:       ",
            f"{case.team_name} · assignee: {plain(markup.person(case.assignee))}",
        ),
        *_wrap("Touchpoint: ", case.touchpoint or "unknown"),
        *_wrap("Customer:   ", case.customer or "unknown"),
    ]
    if case.comment:
        body += _wrap("Comment:    ", f"“{plain(case.comment)}”")
    if case.last_contact:
        body += _wrap("Contact:    ", ("⚠ " if case.contact_failed else "") + plain(case.last_contact))
    body += _wrap("Why here:   ", plain(case.routing_reason))
    if case.history and case.history.summary:
        body += _wrap("History:    ", case.history.summary)
    if case.snoozed_until and case.snooze_reason and case.snoozed_until > case.now:
        body += _wrap("Snoozed:    ", plain(case.snooze_reason))
    return _boxed(
        f"{where}{what} · {case.ref} · {plain(case.title)}", body, "Act: " + " · ".join(case_actions(case))
    )


def thread_line(text: str, *, case_ref: str, channel: str | None = None) -> str:
    """A timeline line under the card, as Slack shows it in the card's thread."""
    where = f"{channel} " if channel else ""
    return f"  ↳ {where}{case_ref} thread: {plain(text)}"


def escalation_notice(text: str, *, destination: str | None, direct: bool) -> str:
    """An escalation direct message or channel notice, framed so it stands out."""
    to = f"direct message to @{destination}" if direct else f"notice in #{(destination or '').lstrip('#')}"
    lines = plain(text).splitlines() or [""]
    return _boxed(f"ESCALATION · {to}", lines)


def digest_post(text: str, *, channel: str | None) -> str:
    """A digest as posted in the team's channel."""
    return _boxed(f"{channel or 'channel'} · daily digest", plain(text).splitlines())


def report(text: str, *, destination: str | None) -> str:
    """A delivery report (a dead-lettered message) for an admin or a channel."""
    return f"! report to {destination or 'admins'}: {plain(text)}"


def reply_text(reply: Reply) -> str:
    """A command's answer, for the caller only (like Slack's ephemeral replies)."""
    text = plain(reply.text)
    return text if reply.ok else f"✗ {text}"


def render_reply(reply: Reply) -> str:
    """A reply; a digest preview (`/cx digest support preview`) is framed like the posted digest."""
    digest = getattr(reply, "report", None)
    team = getattr(digest, "team_key", None)
    if reply.ok and team is not None:
        return digest_post(reply.text, channel=f"preview of #{team}, only you see this")
    return reply_text(reply)
