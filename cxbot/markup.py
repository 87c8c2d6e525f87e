"""The few marks the core may put into a text it writes, for every platform to render its own way.

Case events, thread lines, escalation notices, reveal and contact lines, dead-letter reports and
command replies are written once, here in the core, and shown on Slack, Teams and the console. They
may mention a person or a channel, emphasise a few words, quote a customer's text, carry an alert
mark, or name a command. Such a mark is a token; everything else in the text is plain text that came
from somewhere (often from outside: a customer's comment, a typed note), which each platform escapes
for its own markup. So a customer can never write a live mention, link or `<!channel>`: only the
core makes tokens, and :func:`plain` strips the token characters from any text it did not make.

A token is `\\ue000kind\\ue001value\\ue002`, three code points of Unicode's private use area that no
keyboard types. Tokens are stored (case event details are rendered again on every card refresh), so
their form is a stable format: never change it without a migration.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

from cxbot.pii import mask_text

OPEN, SEP, CLOSE = "\ue000", "\ue001", "\ue002"
_MARKS = re.compile(f"[{OPEN}{SEP}{CLOSE}]")
_TOKEN = re.compile(f"{OPEN}([a-z]+){SEP}([^{OPEN}{SEP}{CLOSE}]*){CLOSE}")

Kind = Literal["person", "channel", "emphasis", "quote", "alert", "command"]
Alert = Literal["warning", "urgent", "ok"]
KINDS: frozenset[str] = frozenset({"person", "channel", "emphasis", "quote", "alert", "command"})


def plain(text: str) -> str:
    """Text from anywhere, made unable to forge a token (the token characters are dropped)."""
    return _MARKS.sub("", text)


def shown(text: str) -> str:
    """Outside words that people will read in the core's text: PII masked, no forged token."""
    return plain(mask_text(text))


def _token(kind: Kind, value: str) -> str:
    return f"{OPEN}{kind}{SEP}{plain(value)}{CLOSE}"


def person(ident: str | None) -> str:
    """A mention of a person: a people key of `cxbot.yaml` or a platform user id; 'nobody' if none."""
    return _token("person", ident) if ident else "nobody"


def channel(ident: str) -> str:
    """A mention of a chat channel (a platform channel id)."""
    return _token("channel", ident)


def emphasis(text: str) -> str:
    """A few words that stand out (bold on Slack and Teams)."""
    return _token("emphasis", text)


def quote(text: str) -> str:
    """Someone else's words (a customer's comment, a case title), set apart as a quote."""
    return _token("quote", text)


def alert(level: Alert = "warning") -> str:
    """A mark at the start of a line that needs attention: `warning`, `urgent` or `ok`."""
    return _token("alert", level)


def command(text: str) -> str:
    """A command a person can type, such as `/cx ack CX-42` (code on Slack and Teams)."""
    return _token("command", text)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    value: str


def segments(text: str) -> Iterator[str | Token]:
    """The text as plain pieces (str) and tokens, in order. A malformed token stays plain text."""
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            yield plain(text[position : match.start()])
        kind, value = match.group(1), match.group(2)
        yield Token(kind, value) if kind in KINDS else plain(value)
        position = match.end()
    if position < len(text):
        yield plain(text[position:])


class Renderer(Protocol):
    """How one platform writes each piece: `text` escapes plain text for that platform's markup."""

    def text(self, value: str) -> str: ...
    def person(self, ident: str) -> str: ...
    def channel(self, ident: str) -> str: ...
    def emphasis(self, value: str) -> str: ...
    def quote(self, value: str) -> str: ...
    def alert(self, level: str) -> str: ...
    def command(self, value: str) -> str: ...


def render(text: str, renderer: Renderer) -> str:
    """The core's text in one platform's markup: tokens rendered, every other piece escaped."""
    parts = []
    for piece in segments(text):
        if isinstance(piece, str):
            parts.append(renderer.text(piece))
        else:
            parts.append(getattr(renderer, piece.kind)(piece.value))
    return "".join(parts)


class PlainText:
    """Tokens as words a terminal, a log or an e-mail can show: `@name`, `#channel`, `"quote"`."""

    ALERTS: ClassVar[dict[str, str]] = {"warning": "⚠", "urgent": "🚨", "ok": "✔"}

    def text(self, value: str) -> str:
        return value

    def person(self, ident: str) -> str:
        return f"@{ident}"

    def channel(self, ident: str) -> str:
        return f"#{ident}"

    def emphasis(self, value: str) -> str:
        return value

    def quote(self, value: str) -> str:
        return f"“{value}”"

    def alert(self, level: str) -> str:
        return self.ALERTS.get(level, "!")

    def command(self, value: str) -> str:
        return f"`{value}`"


def as_plain_text(text: str) -> str:
    """The core's text with its tokens in words (for logs, the console, the API and e-mails)."""
    return render(text, PlainText())
