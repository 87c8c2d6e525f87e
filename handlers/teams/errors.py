"""Bot Connector and identity-platform failures as typed exceptions, decided in one place.

The Teams twin of `handlers/slack/errors.py`: transient failures (429 with Retry-After, 412, 5xx,
timeouts) are worth retrying; permanent ones are not, and each says whether the destination (the
conversation is gone, or the bot was blocked or removed), the credentials or the message is at fault
(see :class:`cxbot.outbox.contract.PermanentDeliveryError`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from cxbot.outbox.contract import ErrorScope, PermanentDeliveryError, TransientDeliveryError

#: Bot Connector error codes (`{"error": {"code": ...}}`) that retrying cannot fix, with who is at fault.
PERMANENT_CODES: dict[str, ErrorScope] = {
    "MessageWritesBlocked": "destination",
    "ConversationBlockedByUser": "destination",
    "BotNotInConversationRoster": "destination",
    "BotDisabledByAdmin": "destination",
    "ConversationNotFound": "destination",
    "NotFound": "destination",
    "Forbidden": "destination",
    "Unauthorized": "credentials",
    "AuthorizationFailed": "credentials",
    "ActivityNotFoundInConversation": "message",
    "BadArgument": "message",
    "BadSyntax": "message",
    "MessageSizeTooBig": "message",
}
#: HTTP statuses that say who is at fault when the body carries no known code.
STATUS_SCOPES: dict[int, ErrorScope] = {401: "credentials", 403: "destination", 404: "destination"}
#: Statuses Microsoft documents as "retry": throttling, a precondition race, the gateway's trouble.
TRANSIENT_STATUSES = frozenset({408, 412, 429})


class TeamsTransientError(TransientDeliveryError):
    """A failure worth retrying later."""

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.code = code


class TeamsRateLimited(TeamsTransientError):
    """HTTP 429; `retry_after` is the Retry-After header in seconds."""


class TeamsServerError(TeamsTransientError):
    """A 5xx, a 412, a timeout or a connection failure."""


class TeamsPermanentError(PermanentDeliveryError):
    """A failure retrying cannot fix; `code` is the connector's error code or `http_<status>`."""


class TeamsActivityNotFound(TeamsPermanentError):
    """The activity to update is gone (deleted by someone); a new one can be posted instead."""


def error_code(body: Any) -> str | None:
    """The connector's `{"error": {"code": ...}}`, when the body has one."""
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return inner["code"]
    return None


def from_response(*, status: int, body: Any, retry_after: str | None, updating: bool = False) -> Exception:
    """Map one failed connector (or login) answer to the exception the rest of the code handles.

    `updating`: the call was a `PUT` of a posted activity, where a 404 means the activity is gone
    (a message problem: post a new one), not the conversation.
    """
    code = error_code(body) or f"http_{status}"
    if status == 429:
        return TeamsRateLimited(
            f"Teams rate limited the call ({code})", code=code, retry_after=seconds(retry_after)
        )
    if status >= 500 or status in TRANSIENT_STATUSES:
        return TeamsServerError(
            f"Teams answered {status} {code}", code=code, retry_after=seconds(retry_after)
        )
    if code == "ActivityNotFoundInConversation" or (updating and status == 404):
        return TeamsActivityNotFound(code, f"Teams: {code}", scope="message")
    scope = PERMANENT_CODES.get(code) or STATUS_SCOPES.get(status, "message")
    return TeamsPermanentError(code, f"Teams answered {status} {code}", scope=scope)


def seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds, or None. The connector sends seconds; the header may also be
    an HTTP date (RFC 9110), which is honoured too rather than undercut by the outbox's backoff."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
