"""The core's neutral text (cxbot.markup) as Teams markdown: tokens become bold, quotes, code and
`<at>` mentions; every other piece is escaped for both Markdown and HTML (Teams renders both in a
message), so outside text can never mention, link, format or inject markup."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cxbot import markup
from cxbot.config import PERSON_ID_PATTERNS

#: Characters Markdown gives a meaning to (emphasis, code, links, headings, tables), escaped with a
#: backslash; `<`, `>`, `&` and `"` become HTML entities instead, since Teams also renders HTML.
MARKDOWN_SPECIALS = re.compile(r"([\\`*_~\[\]#|])")
HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
ALERTS = {"warning": "⚠️", "urgent": "🚨", "ok": "✅"}
#: An Entra object id (the `msteams` id of a person), which a mention entity may name.
AAD_OBJECT_ID = PERSON_ID_PATTERNS["msteams"]


def escape(value: str) -> str:
    """Outside text shown literally in a Teams markdown message."""
    return entities(MARKDOWN_SPECIALS.sub(r"\\\1", value))


def entities(value: str) -> str:
    return "".join(HTML_ENTITIES.get(char, char) for char in value)


#: How person tokens find a Teams mention (Entra object id, display name); `use_people` points it
#: at the running config's `people:`, like Slack's renderer.
_PEOPLE: list[Callable[[str], tuple[str, str] | None]] = []


def bare_object_id(ident: str) -> tuple[str, str] | None:
    return (ident, ident) if AAD_OBJECT_ID.match(ident) else None


def use_people(teams_id: Callable[[str], tuple[str, str] | None]) -> None:
    """Render person tokens with `teams_id` (people key or id → Entra object id and name, or None)."""
    _PEOPLE[:] = [teams_id]


class TeamsMarkup:
    """Renders tokens for Teams. `teams_id` maps a person token (a people key or an id) to the
    person's Entra object id and display name; a mention of one becomes a real `<at>` mention, whose
    entity is collected in `mentions` for the activity's `entities`."""

    def __init__(self, teams_id: Callable[[str], tuple[str, str] | None] | None = None) -> None:
        self.teams_id = teams_id or (_PEOPLE[0] if _PEOPLE else bare_object_id)
        self.mentions: list[dict[str, Any]] = []

    def text(self, value: str) -> str:
        return escape(value)

    def person(self, ident: str) -> str:
        found = self.teams_id(ident)
        if found is None:
            return f"@{escape(ident)}"
        object_id, name = found
        tag = f"<at>{escape(name)}</at>"
        self.mentions.append({"type": "mention", "text": tag, "mentioned": {"id": object_id, "name": name}})
        return tag

    def channel(self, ident: str) -> str:
        return f"#{escape(ident)}"

    def emphasis(self, value: str) -> str:
        return f"**{escape(value)}**" if value.strip() else escape(value)

    def quote(self, value: str) -> str:
        return "\n".join(f"> {escape(line)}" for line in value.splitlines() or [""])

    def alert(self, level: str) -> str:
        return ALERTS.get(level, ALERTS["warning"])

    def command(self, value: str) -> str:
        # Inside a code span nothing is formatted, but HTML still is: entities only.
        return "`" + entities(value.replace("`", "'")) + "`"


def to_markdown(text: str, renderer: TeamsMarkup | None = None) -> str:
    """The core's text for a Teams message's `text` (textFormat `markdown`)."""
    return markup.render(text, renderer or TeamsMarkup())


def message(text: str) -> dict[str, Any]:
    """A message activity carrying the core's text, with the entities of its mentions."""
    renderer = TeamsMarkup()
    activity: dict[str, Any] = {
        "type": "message",
        "textFormat": "markdown",
        "text": to_markdown(text, renderer),
    }
    if renderer.mentions:
        activity["entities"] = renderer.mentions
    return activity
