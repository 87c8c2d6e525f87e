"""Block Kit primitives: Slack's limits, mrkdwn escaping and the validated block list.

Every message cxbot sends on Slack goes through :func:`checked`, which enforces Slack's limits (50
blocks a message, 3000 characters a text) here instead of letting Slack answer `invalid_blocks` in
production; every text that came from outside goes through :func:`escape`.

The boundary: every payload that leaves for Slack (Web API calls in :mod:`handlers.slack.client`,
`respond()` answers in :mod:`handlers.slack.commands`) goes through :func:`outgoing`, which defuses
every mrkdwn text of it (`text`, block texts, fields, attachments, views), so a renderer that forgot
to escape still cannot send a live `<!channel>` or a disguised link: the only markup that survives is
a user mention `<@U…>` and a channel `<#C…>`, which only the core writes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import Block, MarkdownTextObject

MAX_BLOCKS = 50
MAX_HOME_BLOCKS = 100
MAX_TEXT = 3000
MAX_FIELD = 2000
MAX_HEADER = 150
MAX_FALLBACK_TEXT = 4000
MAX_OPTIONS = 100


#: The only `<…>` sequences allowed to stay live: a user mention and a channel, with an optional label.
USER_MENTION = r"@[UW][A-Z0-9]+(?:\|[^<>]*)?>"
CHANNEL_MENTION = r"#C[A-Z0-9]+(?:\|[^<>]*)?>"
_NOT_A_USER_MENTION = re.compile(rf"<(?!{USER_MENTION})")
_NOT_A_MENTION = re.compile(rf"<(?!{USER_MENTION}|{CHANNEL_MENTION})")
#: Keys whose string value Slack parses as mrkdwn (a message's `text`, a text object's, attachments').
MRKDWN_KEYS = frozenset({"text", "pretext", "fallback", "footer"})


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as markup; customer text must never be able to mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """What Slack shows for an escaped text: the inverse of :func:`escape`."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def defuse(text: str, *, channels: bool = True) -> str:
    """Core text with mention tokens: every `<` that does not open a user mention (or, with
    `channels`, a channel) becomes `&lt;`, so `<!channel>`, `<!here>` and `<http://…|label>` show as
    typed. Already escaped text has no `<` left, so this is safe to apply twice."""
    pattern = _NOT_A_MENTION if channels else _NOT_A_USER_MENTION
    return pattern.sub("&lt;", text)


def outgoing(value: Any) -> Any:
    """A Slack payload with every mrkdwn string defused (plain_text objects, button values, inputs'
    initial values and metadata are not parsed by Slack and are left exactly as they are)."""
    if isinstance(value, dict):
        plain = value.get("type") == "plain_text"
        return {
            key: (
                defuse(inner)
                if key in MRKDWN_KEYS and isinstance(inner, str) and not plain
                else outgoing(inner)
            )
            for key, inner in value.items()
        }
    if isinstance(value, list):
        return [outgoing(item) for item in value]
    return value


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def checked(blocks: Sequence[Block], *, limit: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    """Validate with slack_sdk (to_dict raises on a malformed block) and hold Slack's limits."""
    if len(blocks) > limit:
        raise ValueError(f"{len(blocks)} blocks is over Slack's limit of {limit}")
    rendered = [block.to_dict() for block in blocks]
    for block in rendered:
        for text in texts(block):
            if len(text) > MAX_TEXT:
                raise ValueError(f"a text of {len(text)} characters is over Slack's limit of {MAX_TEXT}")
    return rendered


def texts(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["text"]] if isinstance(value.get("text"), str) else []
        for key, inner in value.items():
            if key != "text" or not isinstance(inner, str):
                found.extend(texts(inner))
        return found
    if isinstance(value, list):
        return [text for item in value for text in texts(item)]
    return []


def md(text: str, limit: int = MAX_TEXT) -> MarkdownTextObject:
    return MarkdownTextObject(text=clip(text, limit))
