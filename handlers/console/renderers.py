"""Terminal text for what Slack shows as Block Kit: case cards, thread lines, notices, digests, replies.

Plain text with a little box drawing, readable in any terminal and in a log; no colours, so what a
test or a screen reader gets is what a person sees. The core's marks (cxbot.markup: mentions,
channels, quotes, alert marks) are turned into words a terminal can show.
"""

from __future__ import annotations

import re
import shutil
import textwrap

from cxbot import markup
from cxbot.cases.view import CaseView
from cxbot.commands.dispatch import Reply
from cxbot.commands.grammar import HelpListing
from cxbot.markup import as_plain_text

#: Lines are as wide as the terminal, but no wider than this (long lines read badly) nor narrower
#: than MIN_WIDTH (below that, wrapping makes each field unreadable anyway).
WIDTH = 100
MIN_WIDTH = 40
_HANGING = re.compile(r"^(\s*(?:[•\-*↳]\s+|\d+\.\s+)?)")


def terminal_width() -> int:
    """The terminal's width now (it may have been resized), within [MIN_WIDTH, WIDTH].

    One column is kept free: a symbol such as 🚨 takes two columns where Python counts one character.
    """
    columns = shutil.get_terminal_size((WIDTH, 24)).columns - 1
    return max(MIN_WIDTH, min(WIDTH, columns))


def _continuation(line: str) -> str:
    """The indent of a wrapped line's next lines: under a bullet's text, else two in from the line."""
    lead = _HANGING.match(line).group(1)  # type: ignore[union-attr]
    return " " * len(lead) if lead.strip() else " " * (len(lead) + 2)


def fit(text: str, width: int) -> str:
    """Every line of `text` within `width`; a wrapped line goes on indented, so it reads as one."""
    out: list[str] = []
    for line in text.splitlines() or [""]:
        if len(line) <= width:
            out.append(line)
            continue
        indent = _continuation(line)
        out += textwrap.wrap(
            line, width=width, subsequent_indent=indent, break_long_words=True, break_on_hyphens=False
        ) or [line[:width]]
    return "\n".join(out)


def plain(text: str) -> str:
    """The core's text for a terminal: `@U1` for a mention, `#C1` for a channel, ⚠ for an alert."""
    return as_plain_text(text)


def _wrap(label: str, value: str, width: int) -> list[str]:
    lines = textwrap.wrap(
        f"{label}{value}", width=width - 2, subsequent_indent=" " * len(label), break_long_words=True
    )
    return lines or [label.rstrip()]


def _boxed(title: str, body: list[str], footer: str | None = None, *, width: int = WIDTH) -> str:
    """A box drawn down the left edge; the title, each body line and the footer wrapped within `width`."""
    lines = textwrap.wrap(f"┌─ {title}", width=width, subsequent_indent="│  ", break_long_words=True)
    for line in body:
        indent = _continuation(line)
        wrapped = textwrap.wrap(line, width=width - 2, subsequent_indent=indent, break_long_words=True)
        lines += [f"│ {part}" for part in wrapped or [""]]
    if footer:
        lines += textwrap.wrap(f"└─ {footer}", width=width, subsequent_indent="   ", break_long_words=True)
    else:
        lines.append("└─")
    return "\n".join(lines)


def usage_lines(entries: list[tuple[str, str]], *, width: int = WIDTH) -> str:
    """Usage lines one per line, each with its summary wrapped under it (no column padded to the longest)."""
    lines: list[str] = []
    for usage, summary in entries:
        lines += textwrap.wrap(usage, width=width, subsequent_indent="      ", break_on_hyphens=False)
        lines += textwrap.wrap(summary, width=width, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(lines)


def help_listing(listing: HelpListing, *, width: int = WIDTH) -> str:
    """The `/cx` verbs: `/cx <usage>` on a line, what it does under it."""
    return usage_lines([(f"{listing.command} {v.usage}", v.summary) for v in listing.verbs], width=width)


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


def case_card(
    case: CaseView, *, channel: str | None = None, updated: bool = False, width: int = WIDTH
) -> str:
    """The case card as a box: the facts a manager needs to act, then the commands to act with."""

    def row(label: str, value: str) -> list[str]:
        return _wrap(label, value, width)

    where = f"{channel} · " if channel else ""
    what = "card updated" if updated else "case card"
    body = [
        *row("Score:      ", (case.score_label or "no score") + _priority(case)),
        *row("State:      ", f"{case_state(case)} · SLA: {case.sla_clock}"),
        *row(
            "Team:       ",
            f"{case.team_name} · assignee: {plain(markup.person(case.assignee))}",
        ),
        *row("Touchpoint: ", case.touchpoint or "unknown"),
        *row("Customer:   ", case.customer or "unknown"),
    ]
    if case.comment:
        body += row("Comment:    ", f"“{plain(case.comment)}”")
    if case.last_contact:
        body += row("Contact:    ", ("⚠ " if case.contact_failed else "") + plain(case.last_contact))
    body += row("Why here:   ", plain(case.routing_reason))
    if case.history and case.history.summary:
        body += row("History:    ", case.history.summary)
    if case.snoozed_until and case.snooze_reason and case.snoozed_until > case.now:
        body += row("Snoozed:    ", plain(case.snooze_reason))
    return _boxed(
        f"{where}{what} · {case.ref} · {plain(case.title)}",
        body,
        "Act: " + " · ".join(case_actions(case)),
        width=width,
    )


def thread_line(text: str, *, case_ref: str, channel: str | None = None) -> str:
    """A timeline line under the card, as Slack shows it in the card's thread."""
    where = f"{channel} " if channel else ""
    return f"  ↳ {where}{case_ref} thread: {plain(text)}"


def escalation_notice(text: str, *, destination: str | None, direct: bool, width: int = WIDTH) -> str:
    """An escalation direct message or channel notice, framed so it stands out."""
    to = f"direct message to @{destination}" if direct else f"notice in #{(destination or '').lstrip('#')}"
    lines = plain(text).splitlines() or [""]
    return _boxed(f"ESCALATION · {to}", lines, width=width)


def digest_post(text: str, *, channel: str | None, width: int = WIDTH) -> str:
    """A digest as posted in the team's channel."""
    return _boxed(f"{channel or 'channel'} · daily digest", plain(text).splitlines(), width=width)


def report(text: str, *, destination: str | None) -> str:
    """A delivery report (a dead-lettered message) for an admin or a channel."""
    return f"! report to {destination or 'admins'}: {plain(text)}"


def reply_text(reply: Reply) -> str:
    """A command's answer, for the caller only (like Slack's ephemeral replies)."""
    text = plain(reply.text)
    return text if reply.ok else f"✗ {text}"


def render_reply(reply: Reply, *, width: int = WIDTH) -> str:
    """A reply; a digest preview (`/cx digest support preview`) is framed like the posted digest, the
    help is a verb per line, and everything else is wrapped within `width`."""
    if isinstance(reply.report, HelpListing):
        listing = help_listing(reply.report, width=width)
        return listing if reply.ok else f"{fit(reply_text(reply).splitlines()[0], width)}\n{listing}"
    team = getattr(reply.report, "team_key", None)
    if reply.ok and team is not None:
        return digest_post(reply.text, channel=f"preview of #{team}, only you see this", width=width)
    return fit(reply_text(reply), width)
