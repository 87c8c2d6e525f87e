"""The core's neutral text (cxbot.markup) as Slack mrkdwn: tokens become mentions, bold, quotes
and emoji; every other piece is escaped, so outside text can never mention, link or ping."""

from __future__ import annotations

import re
from collections.abc import Callable

from cxbot import markup
from cxbot.config import PERSON_ID_PATTERNS
from handlers.slack.blocks import escape

SLACK_USER_ID = PERSON_ID_PATTERNS["slack"]
SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
ALERTS = {"warning": ":warning:", "urgent": ":rotating_light:", "ok": ":white_check_mark:"}


class SlackMarkup:
    """Renders tokens for Slack; `slack_id` maps a person token (people key or id) to a Slack id."""

    def __init__(self, slack_id: Callable[[str], str | None] | None = None) -> None:
        self.slack_id = slack_id or (lambda ident: ident)

    def text(self, value: str) -> str:
        return escape(value)

    def person(self, ident: str) -> str:
        user = self.slack_id(ident)
        return f"<@{user}>" if user and SLACK_USER_ID.match(user) else f"@{escape(ident)}"

    def channel(self, ident: str) -> str:
        return f"<#{ident}>" if SLACK_CHANNEL_ID.match(ident) else f"#{escape(ident)}"

    def emphasis(self, value: str) -> str:
        return f"*{escape(value)}*" if value.strip() else escape(value)

    def quote(self, value: str) -> str:
        return "\n".join(f"> {escape(line)}" for line in value.splitlines() or [""])

    def alert(self, level: str) -> str:
        return ALERTS.get(level, ":warning:")

    def command(self, value: str) -> str:
        return f"`{escape(value)}`"


#: The renderer every Slack message uses. Person tokens name people keys (or bare ids), so it looks
#: their Slack id up in the running config: :func:`use_people` points it there when Slack is wired.
SLACK = SlackMarkup()


def use_people(slack_id: Callable[[str], str | None]) -> None:
    """Render person tokens with `slack_id` (people key or id → Slack id; None: no Slack id)."""
    SLACK.slack_id = slack_id


def slack_user(ident: str | None) -> str | None:
    """The Slack user id of a person (people key or id), or None when they have none."""
    user = SLACK.slack_id(ident) if ident else None
    return user if user and SLACK_USER_ID.match(user) else None


def to_mrkdwn(text: str, renderer: SlackMarkup | None = None) -> str:
    """The core's text for a Slack `mrkdwn` field or a message's `text`."""
    return markup.render(text, renderer or SLACK)


def to_plain(text: str) -> str:
    """The core's text for a Slack `plain_text` field (headers, buttons, modal errors)."""
    return markup.as_plain_text(text)
