"""What every signed-webhook provider shares: the errors, the options base, the record, the helpers.

Kept apart from the providers themselves (cxbot.ingest.providers, .zendesk, .intercom) so each
provider module stays short and none of them imports another. Pure functions only: no I/O.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

Metric = Literal["nps", "csat", "ces", "comment"]


class SignatureError(Exception):
    """Why a signature was rejected (message safe to return in a 401 body)."""


class PayloadError(Exception):
    """The body is not the provider's payload (message says what is wrong)."""


# --------------------------------------------------------------------------------------------------
# Options (one model per provider, validated from `webhooks.<name>` in cxbot.yaml)
# --------------------------------------------------------------------------------------------------


class BaseOptions(BaseModel):
    """Options every provider shares. Unknown keys are errors so a typo in cxbot.yaml is caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Name of the environment variable that holds the signing secret (never the secret itself).
    secret_env: str
    #: Metric the score belongs to.
    metric: Metric = "nps"
    #: CES scale, passed through to validate_item ("1-7" or "1-5-low-good"); CES only.
    scale: Literal["1-7", "1-5-low-good"] | None = None
    #: Touchpoint used when the payload does not name one.
    touchpoint: str | None = None
    #: Tags added to every item from this provider.
    tags: list[str] = []

    def signing_env(self) -> list[str]:
        """The variables whose values, joined with `&`, are the signing key (one for most providers)."""
        return [self.secret_env]

    @model_validator(mode="after")
    def _scale_only_for_ces(self) -> BaseOptions:
        if self.scale is not None and self.metric != "ces":
            raise ValueError(f"scale: only metric 'ces' takes a scale, not {self.metric!r}")
        return self


class DailySyncOptions(BaseModel):
    """For providers `sync` can pull: an optional daily pull by `serve`, so lost webhooks heal alone."""

    #: Time of day (UTC, "HH:MM") to run `sync <provider> --since <sync_since>`; None: never.
    sync_daily_at: str | None = None
    #: How far back the daily pull looks ("2d", "36h"); overlapping days cost only duplicates.
    sync_since: str = "2d"

    @model_validator(mode="after")
    def _daily_sync_is_a_time(self) -> DailySyncOptions:
        if self.sync_daily_at is not None and not _CLOCK.fullmatch(self.sync_daily_at):
            raise ValueError(f"sync_daily_at: {self.sync_daily_at!r} is not a time of day like 03:30")
        if not _SINCE.fullmatch(self.sync_since):
            raise ValueError(f"sync_since: {self.sync_since!r} is not a number of days or hours like 2d")
        return self

    def sync_window(self) -> timedelta:
        amount, unit = int(self.sync_since[:-1]), self.sync_since[-1]
        return timedelta(days=amount) if unit == "d" else timedelta(hours=amount)


_CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_SINCE = re.compile(r"[1-9]\d*[dh]")


# --------------------------------------------------------------------------------------------------
# The provider record
# --------------------------------------------------------------------------------------------------

Verifier = Callable[[Mapping[str, str], bytes, str, datetime], None]
Parser = Callable[[Any, Any], list[dict[str, Any]]]


@dataclass(frozen=True)
class Provider:
    """One survey tool: how to check its signature and how to read its payload."""

    name: str
    options_model: type[BaseModel]
    verifier: Verifier = field(repr=False)
    parser: Parser = field(repr=False)
    #: For providers whose webhook carries only ids: the parser returns fetch jobs (each with a
    #: `key`), queued durably, and this (a cxbot.ingest.fetch_queue.Fetcher) turns one into items.
    fetcher: Any = field(default=None, repr=False)
    #: Body encoding of the webhook: JSON, or an HTML form (Qualtrics).
    body_format: Literal["json", "form"] = "json"

    def verify(self, *, headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
        """Raise SignatureError unless `body` was signed with `secret`; header names ignore case.

        An empty secret is a configuration error (ValueError), not a bad request: with no key anyone
        could compute the HMAC.
        """
        if not secret:
            raise ValueError(f"{self.name}: webhook secret is empty")
        lowered = {str(key).lower(): value for key, value in headers.items()}
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        self.verifier(lowered, body, secret, now)

    def parse(self, *, payload: Any, options: BaseModel | Mapping[str, Any]) -> list[dict[str, Any]]:
        """Turn a decoded JSON payload into feedback items; events without a response give []."""
        if isinstance(options, Mapping):
            options = self.options_model.model_validate(dict(options))
        if not isinstance(options, self.options_model):
            raise TypeError(f"{self.name}: options must be {self.options_model.__name__}")
        return self.parser(payload, options)


# --------------------------------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------------------------------


def header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if value is None or not str(value).strip():
        raise SignatureError(f"missing {name} header")
    return str(value).strip()


def same_digest(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time compare that also copes with non-ASCII header text (compare_digest would raise)."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


# --------------------------------------------------------------------------------------------------
# Payload helpers
# --------------------------------------------------------------------------------------------------


def as_object(value: Any, where: str, provider: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{provider}: {where}: expected an object, got {kind_of(value)}")
    return value


def kind_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def identifier(value: Any, where: str, provider: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise PayloadError(f"{provider}: {where}: expected an id, got {kind_of(value)}")
    return str(value).strip()


def scalar_text(value: Any) -> str | None:
    """A string (or number) as stripped text; anything else, or blank, is None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    return text or None


def tag_names(value: Any) -> list[str]:
    """Tags as strings; accepts plain strings or objects with a `name` (Formbricks tag records)."""
    if not isinstance(value, list):
        return []
    names = [tag.get("name") if isinstance(tag, dict) else tag for tag in value]
    return [name.strip() for name in names if isinstance(name, str) and name.strip()]


def customer_dict(
    *, ident: Any = None, name: Any = None, email: Any = None, phone: Any = None
) -> dict[str, str] | None:
    """The customer dict, or None when there is nothing to identify them by (email stands in for id)."""
    fields = {"name": scalar_text(name), "email": scalar_text(email), "phone": scalar_text(phone)}
    ident_text = scalar_text(ident) or fields["email"]
    if ident_text is None:
        return None
    return {"id": ident_text, **{key: value for key, value in fields.items() if value is not None}}


def score_value(value: Any, where: str, provider: str) -> Any:
    """Pass a score through for validate_item; reject shapes that can only mean a mis-mapped question."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(f"{provider}: {where}: expected a number, got {kind_of(value)}")
    return value


def comment_text(value: Any, where: str, provider: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{provider}: {where}: expected text, got {kind_of(value)}")
    return value.strip() or None


def feedback_items(
    *,
    source: str,
    external_id: str,
    options: BaseOptions,
    score: Any,
    comment: str | None,
    touchpoint: str | None,
    customer: dict[str, str] | None,
    received_at: Any,
    tags: list[str],
) -> list[dict[str, Any]]:
    """Build the single item for one response, or [] when it has neither score nor comment yet.

    A response that has a comment but no score yet (the respondent skipped the scale, or a partial
    delivery) is kept as metric "comment" under the same external_id, so a later delivery with the
    score replaces it rather than adding a second item.
    """
    metric: str = options.metric
    if metric == "comment":
        score = None
        if comment is None:
            return []
    elif score is None:
        if comment is None:
            return []
        metric = "comment"
    item: dict[str, Any] = {
        "source": source,
        "external_id": external_id,
        "metric": metric,
        "score": score,
        "comment": comment,
        "touchpoint": touchpoint or options.touchpoint,
        "customer": customer,
        "received_at": received_at,
        "tags": list(dict.fromkeys([*tags, *options.tags])),
    }
    if metric == "ces" and options.scale is not None:
        item["scale"] = options.scale
    return [item]
