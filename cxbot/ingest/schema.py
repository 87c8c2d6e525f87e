"""The one shape every feedback item takes on its way in (design.md §11, `POST /feedback`).

HTTP, webhooks and the CSV importer all turn their input into plain dicts of this shape and
hand them to :func:`validate_item`, so a score is checked against its metric in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cxbot import limits

METRICS = ("nps", "csat", "ces", "comment")

#: Inclusive score range of each metric after normalisation.
SCORE_RANGES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

#: Accepted `scale` values for CES. "1-5-low-good" is the legacy five-point scale where 1 means easy;
#: it is mapped onto 1-7 (7 = easiest) so the two are never mixed silently.
CES_SCALES = ("1-7", "1-5-low-good")

# The bounds live in cxbot.limits (one set at the edge); these names are kept for the importers.
MAX_COMMENT_CHARS = limits.MAX_COMMENT_CHARS
MAX_ID_CHARS = limits.MAX_EXTERNAL_ID_CHARS
MAX_SOURCE_CHARS = limits.MAX_SOURCE_CHARS  # feedback.source is VARCHAR(64); PostgreSQL refuses longer
MAX_TAGS = limits.MAX_TAGS


@dataclass(frozen=True, slots=True)
class CustomerIn:
    """Who answered. Only `id` is required; the rest is PII and is stored apart from feedback."""

    id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackIn:
    """A validated feedback item, ready to store."""

    source: str
    external_id: str
    metric: str
    score: float | None
    comment: str | None
    touchpoint: str | None
    customer: CustomerIn | None
    received_at: datetime
    tags: tuple[str, ...] = field(default_factory=tuple)
    raw_score: float | None = None


class ItemError(ValueError):
    """An item that cannot be stored; the message names the field and the reason."""


def _text(item: dict[str, Any], key: str, *, required: bool = False, limit: int = MAX_ID_CHARS) -> str | None:
    value = item.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ItemError(f"{key}: required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ItemError(f"{key}: expected a string, got {type(value).__name__}")
    text = str(value).strip()
    # JSON can carry both; PostgreSQL refuses NUL in text and no database can encode a lone surrogate.
    problem = limits.text_problem(text, limit=limit)
    if problem is not None:
        raise ItemError(f"{key}: {problem}")
    return text


def parse_timestamp(value: Any, *, key: str = "received_at") -> datetime:
    """Parse ISO 8601 text or a Unix epoch number into an aware UTC datetime."""
    if isinstance(value, bool):
        raise ItemError(f"{key}: expected an ISO 8601 timestamp, got bool")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ItemError(f"{key}: not a finite number")
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ItemError(f"{key}: {value!r} is out of range") from None
    if not isinstance(value, str):
        raise ItemError(f"{key}: expected an ISO 8601 timestamp, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ItemError(f"{key}: {value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before the first representable instant
        raise ItemError(f"{key}: {value!r} is out of range") from None


def _score(item: dict[str, Any], metric: str) -> tuple[float | None, float | None]:
    """Return (normalised score, score as sent)."""
    value = item.get("score")
    if metric == "comment":
        if value is not None:
            raise ItemError("score: must be null for metric 'comment'")
        return None, None
    if value is None:
        raise ItemError(f"score: required for metric {metric!r}")
    if isinstance(value, bool):
        raise ItemError("score: expected a number, got bool")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ItemError(f"score: {item['score']!r} is not a number") from None
    if not isinstance(value, int | float):
        raise ItemError(f"score: expected a number, got {type(value).__name__}")
    try:
        raw = float(value)
    except OverflowError:  # an integer too large for a float is simply out of range
        raw = math.inf if value > 0 else -math.inf
    if math.isnan(raw):
        raise ItemError("score: NaN is not a number")
    scale = item.get("scale")
    if metric == "ces" and scale is not None and scale not in CES_SCALES:
        raise ItemError(f"scale: {scale!r} is not one of {', '.join(CES_SCALES)}")
    if metric != "ces" and scale is not None:
        raise ItemError(f"scale: only CES accepts a scale, not {metric!r}")
    if metric == "ces" and scale == "1-5-low-good":
        if not 1 <= raw <= 5:
            raise ItemError(f"score: {raw:g} is out of range 1-5 for legacy CES")
        return 1 + (5 - raw) * 1.5, raw
    low, high = SCORE_RANGES[metric]
    if not low <= raw <= high:
        raise ItemError(f"score: {raw:g} is out of range {low}-{high} for {metric}")
    if not raw.is_integer():
        raise ItemError(f"score: {raw:g} is not a whole number on the {metric} scale ({low}-{high})")
    return raw, raw


def _customer(item: dict[str, Any]) -> CustomerIn | None:
    value = item.get("customer")
    if value is None:
        return None
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = {"id": str(value)}
    if not isinstance(value, dict):
        raise ItemError(f"customer: expected an object, got {type(value).__name__}")
    try:
        ident = _text(value, "id", required=True)
        name = _text(value, "name")
        email = _text(value, "email", limit=limits.MAX_EMAIL_CHARS)
        phone = _text(value, "phone", limit=limits.MAX_PHONE_CHARS)
    except ItemError as error:
        raise ItemError(f"customer.{error}") from None
    if email is not None and "@" not in email:
        raise ItemError(f"customer.email: {email!r} is not an email address")
    return CustomerIn(id=ident or "", name=name, email=email, phone=phone)


def _tags(item: dict[str, Any]) -> tuple[str, ...]:
    value = item.get("tags")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ItemError("tags: expected a list of strings")
    if len(value) > MAX_TAGS:
        raise ItemError(f"tags: more than {MAX_TAGS} tags")
    tags = tuple(tag.strip() for tag in value if tag.strip())
    for tag in tags:
        problem = limits.text_problem(tag, limit=limits.MAX_TAG_CHARS)
        if problem is not None:
            raise ItemError(f"tags: {limits.said('a tag', problem)}")
    return tags


def validate_item(item: Any, *, now: datetime, default_source: str | None = None) -> FeedbackIn:
    """Check one raw item against the contract and return it normalised, or raise ItemError."""
    if not isinstance(item, dict):
        raise ItemError(f"item: expected an object, got {type(item).__name__}")
    metric = item.get("metric")
    if metric not in METRICS:
        raise ItemError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    source = _text(item, "source", limit=MAX_SOURCE_CHARS) or default_source
    if source is None:
        raise ItemError("source: required")
    external_id = _text(item, "external_id", required=True) or ""
    score, raw = _score(item, metric)
    comment = _text(item, "comment", limit=MAX_COMMENT_CHARS)
    if metric == "comment" and comment is None:
        raise ItemError("comment: required for metric 'comment'")
    received = item.get("received_at")
    received_at = now if received is None else parse_timestamp(received)
    problem = limits.received_at_problem(received_at, now=now)
    if problem is not None:
        raise ItemError(f"received_at: {problem}")
    return FeedbackIn(
        source=source,
        external_id=external_id,
        metric=metric,
        score=score,
        comment=comment,
        touchpoint=_text(item, "touchpoint"),
        customer=_customer(item),
        received_at=received_at,
        tags=_tags(item),
        raw_score=raw,
    )
