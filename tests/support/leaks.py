"""A leak scanner for what left the bot: chat payloads and API answers (issue #11, design.md §7, §11).

Independent of cxbot's own masking and escaping (its patterns are written here from scratch), so a
bug there cannot hide itself. It walks a whole payload (every field, blocks, `text`, attachments,
views) and reports:

- an email address in any string (masked forms such as `a***@e***.com` are not addresses);
- a phone number the test planted, in any string, however it is spaced;
- live Slack markup in any string Slack parses as mrkdwn (everything but `plain_text` objects, button
  values, input values and metadata): `<!channel>`-style commands, `<http…>`/`<mailto:…>` links, and
  user or channel mentions of anyone not in `allowed_mentions` (the people the bot itself names).

Use :meth:`LeakScanner.scan` for one payload and :meth:`LeakScanner.assert_clean` for many; a finding
says where it was.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# An address: a local part of the characters addresses use, an @, a dotted domain.
EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Slack control sequences (`<!channel>`, `<!here>`, `<!subteam^…>`, `<!date…>`) and links.
COMMAND = re.compile(r"<![^>]*>")
LINK = re.compile(r"<(?:https?:|mailto:|tel:|ftp:)[^>]*>", re.IGNORECASE)
MENTION = re.compile(r"<([@#])([A-Za-z0-9]+)(?:\|[^>]*)?>")
# Separators people put inside phone numbers; removed before looking for a planted number's digits.
PHONE_SEPARATORS = re.compile(r"(?<=\d)[\s().\-/]+(?=\d)")
MRKDWN_KEYS = frozenset({"text", "pretext", "fallback", "footer"})
# Fields Slack sends as JSON text inside a form-encoded body.
JSON_FIELDS = frozenset({"blocks", "attachments", "view", "payload"})


@dataclass(frozen=True, slots=True)
class Finding:
    where: str
    what: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what} in {self.excerpt!r}"


@dataclass(slots=True)
class LeakScanner:
    """What counts as a leak for one test: the phones it planted and the people the bot may mention."""

    phones: Iterable[str] = ()
    allowed_mentions: Iterable[str] = ()
    _digits: list[str] = field(init=False, default_factory=list)
    _allowed: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        # The last 7 digits are enough to recognise a planted number however it is written.
        self._digits = [re.sub(r"\D", "", phone)[-7:] for phone in self.phones]
        self._allowed = frozenset(self.allowed_mentions)

    def scan(self, payload: Any, *, where: str = "payload", chat: bool = True) -> list[Finding]:
        """Every leak in `payload`; `chat=False` (API answers) checks PII only, not Slack markup."""
        found: list[Finding] = []
        self._walk(payload, where, mrkdwn=chat, chat=chat, found=found)
        return found

    def _walk(self, value: Any, where: str, *, mrkdwn: bool, chat: bool, found: list[Finding]) -> None:
        if isinstance(value, Mapping):
            is_plain = value.get("type") == "plain_text"
            for key, inner in value.items():
                if isinstance(inner, str) and key in JSON_FIELDS and inner[:1] in "[{":
                    with contextlib.suppress(ValueError):
                        inner = json.loads(inner)
                parsed = chat and key in MRKDWN_KEYS and not is_plain
                self._walk(inner, f"{where}.{key}", mrkdwn=parsed, chat=chat, found=found)
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                self._walk(inner, f"{where}[{index}]", mrkdwn=False, chat=chat, found=found)
        elif isinstance(value, str):
            found.extend(self._text(value, where, mrkdwn=mrkdwn))

    def _text(self, text: str, where: str, *, mrkdwn: bool) -> list[Finding]:
        found = [Finding(where, "unmasked email", m.group(0)) for m in EMAIL.finditer(text)]
        squeezed = PHONE_SEPARATORS.sub("", text)
        found += [Finding(where, "unmasked phone", text[:120]) for d in self._digits if d and d in squeezed]
        if mrkdwn:
            found += [Finding(where, "live Slack command", m.group(0)) for m in COMMAND.finditer(text)]
            found += [Finding(where, "live link", m.group(0)) for m in LINK.finditer(text)]
            found += [
                Finding(where, "live mention of an outsider", m.group(0))
                for m in MENTION.finditer(text)
                if m.group(2) not in self._allowed
            ]
        return found

    def assert_clean(self, payloads: Iterable[tuple[str, Any]], *, chat: bool = True) -> int:
        """Fail with every finding of every (name, payload); return how many payloads were scanned."""
        findings: list[Finding] = []
        count = 0
        for name, payload in payloads:
            count += 1
            findings += self.scan(payload, where=name, chat=chat)
        assert not findings, "leaks:\n" + "\n".join(str(f) for f in findings)
        return count
