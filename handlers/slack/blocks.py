"""Block Kit primitives: Slack's limits, mrkdwn escaping and the validated block list.

Every message cxbot sends on Slack goes through :func:`checked`, which enforces Slack's limits (50
blocks a message, 3000 characters a text) here instead of letting Slack answer `invalid_blocks` in
production; every text that came from outside goes through :func:`escape`.
"""

from __future__ import annotations

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


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as markup; customer text must never be able to mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
