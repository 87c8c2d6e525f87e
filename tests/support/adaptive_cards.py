"""Checks for what the bot sends to Teams: every Adaptive Card against the 1.5 schema, every message
under Teams' size limit, and outside text shown literally (issue #13, design.md §5).

Written from scratch here, independent of handlers/teams, so a bug there cannot hide itself:

- :func:`assert_valid_card` validates one card (the `content` of an attachment) with `jsonschema`
  against `tests/fixtures/teams/adaptive-card-1.5.schema.json` (draft-06), less the Teams-only
  `msteams` properties the schema does not know;
- :func:`assert_valid_activity` does that for every card attachment of a message activity, and checks
  the serialized activity is under :data:`TEAMS_MAX_BYTES`; it returns the cards;
- :func:`invoke_card` is the card an `adaptiveCard/action` invoke answered with, validated;
- :func:`assert_literal` fails when a planted piece of outside text reaches any string of a card
  verbatim, i.e. unescaped: Adaptive Cards markdown would render it (a link, bold, a list).

Call them from any test; e.g. `cards = assert_valid_activity(connector_call.body)`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "teams" / "adaptive-card-1.5.schema.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
#: Teams refuses a bot message over about 28 KB, attachments included (Microsoft's "Send and receive
#: messages" limits); checked on the activity as httpx sends it: compact UTF-8 JSON.
TEAMS_MAX_BYTES = 28_000
#: Teams-only extensions the Adaptive Cards schema does not define.
TEAMS_EXTRAS = frozenset({"msteams"})


@cache
def validator() -> jsonschema.Draft6Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft6Validator.check_schema(schema)
    return jsonschema.Draft6Validator(schema, format_checker=jsonschema.Draft6Validator.FORMAT_CHECKER)


def without_teams_extras(value: Any) -> Any:
    """A copy of the card less the Teams-only properties, at every depth."""
    if isinstance(value, dict):
        return {k: without_teams_extras(v) for k, v in value.items() if k not in TEAMS_EXTRAS}
    if isinstance(value, list):
        return [without_teams_extras(v) for v in value]
    return copy.copy(value)


def card_errors(card: Any) -> list[str]:
    """Every schema violation of the card, each with the path where it is (empty: valid)."""
    found = []
    for error in validator().iter_errors(without_teams_extras(card)):
        # anyOf over the element kinds reports only "is not valid under any of the given schemas":
        # name the deepest reasons too, so a failure says what to fix.
        reasons = sorted({e.message for e in error.context if not e.context}) if error.context else []
        where = "/".join(str(p) for p in error.absolute_path) or "(card)"
        found.append(f"{where}: {error.message[:200]}" + (f" ({'; '.join(reasons[:5])})" if reasons else ""))
    if isinstance(card, dict) and card.get("type") == "AdaptiveCard" and not card.get("version"):
        found.append("(card): a top-level card needs a version")
    return found


def assert_valid_card(card: Any) -> dict[str, Any]:
    """Fail with every violation; return the card."""
    errors = card_errors(card)
    assert not errors, "not an Adaptive Card 1.5:\n" + "\n".join(errors)
    assert isinstance(card, dict)
    return card


def activity_bytes(activity: Any) -> int:
    return len(json.dumps(activity, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def assert_within_size(activity: Any, limit: int = TEAMS_MAX_BYTES) -> int:
    size = activity_bytes(activity)
    assert size < limit, f"the message is {size:,} bytes; Teams refuses over about {limit:,}"
    return size


def assert_valid_activity(activity: dict[str, Any], *, cards: int | None = None) -> list[dict[str, Any]]:
    """Every Adaptive Card attachment validates and the whole activity is under the size limit;
    `cards` (when given) is how many card attachments it must carry. Returns the cards."""
    assert_within_size(activity)
    found = [
        assert_valid_card(a["content"])
        for a in activity.get("attachments") or []
        if a.get("contentType") == CARD_CONTENT_TYPE
    ]
    if cards is not None:
        assert len(found) == cards, f"expected {cards} Adaptive Card attachments, found {len(found)}"
    return found


def invoke_card(answer: dict[str, Any]) -> dict[str, Any]:
    """The card an `adaptiveCard/action` invoke answered with (the refreshed card), validated."""
    assert answer.get("statusCode") == 200 and answer.get("type") == CARD_CONTENT_TYPE, answer
    assert_within_size(answer)
    return assert_valid_card(answer["value"])


def strings(value: Any, where: str = "card") -> Iterator[tuple[str, str]]:
    """Every string in a payload with where it is, keys' values at every depth."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from strings(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from strings(inner, f"{where}[{index}]")
    elif isinstance(value, str):
        yield where, value


def assert_literal(
    payload: Any, planted: Iterable[str], *, skip: Iterable[str] = ("fallbackText", "summary")
) -> None:
    """No planted markup (`[x](https://…)`, `**bold**`, `- item` …) reaches any string verbatim.

    `skip` names keys Teams never renders as markdown (fallback and notification text are plain).
    """
    marks = [p for p in planted if p]
    skipped = tuple(f".{key}" for key in skip)
    leaks = [
        f"{where}: {mark!r} in {text[:160]!r}"
        for where, text in strings(payload)
        if not where.endswith(skipped)
        for mark in marks
        if mark in text
    ]
    assert not leaks, "outside text shown as markup:\n" + "\n".join(leaks)


def visible(text: str) -> str:
    """The text as a reader sees it: without the zero-width spaces that keep markdown marks inert."""
    return text.replace("\u200b", "")


def visible_texts(card: Any) -> list[str]:
    """Every `text`, fact title and value and button title of a card, as a reader sees it."""
    return [visible(text) for where, text in strings(card) if where.rsplit(".", 1)[-1] in SHOWN_KEYS]


SHOWN_KEYS = frozenset({"text", "title", "value", "altText"})
