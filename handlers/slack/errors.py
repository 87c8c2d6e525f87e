"""Slack Web API failures as typed exceptions, decided in one place (after grafana/oncall's errors.py).

Transient failures (rate limits, 5xx, timeouts) are worth retrying; permanent ones are not, and each
says whether the destination, the credentials or the message itself is at fault, because that
decides who gets told (see :class:`cxbot.outbox.contract.PermanentDeliveryError`).
"""

from __future__ import annotations

from cxbot.outbox.contract import ErrorScope, PermanentDeliveryError, TransientDeliveryError

#: Slack error codes that retrying cannot fix, with who is at fault.
PERMANENT_CODES: dict[str, ErrorScope] = {
    "channel_not_found": "destination",
    "not_in_channel": "destination",
    "is_archived": "destination",
    "restricted_action": "destination",
    "user_not_found": "destination",
    "user_disabled": "destination",
    "cannot_dm_bot": "destination",
    "invalid_auth": "credentials",
    "not_authed": "credentials",
    "account_inactive": "credentials",
    "token_revoked": "credentials",
    "token_expired": "credentials",
    "missing_scope": "credentials",
    "no_permission": "credentials",
    "ekm_access_denied": "credentials",
    "msg_too_long": "message",
    "invalid_blocks": "message",
    "invalid_blocks_format": "message",
    "no_text": "message",
    "too_many_attachments": "message",
    "invalid_arguments": "message",
    "message_not_found": "message",
    "cant_update_message": "message",
    "edit_window_closed": "message",
}
#: Codes Slack documents as "try again": its own trouble, not ours.
TRANSIENT_CODES = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackTransientError(TransientDeliveryError):
    """A failure worth retrying later."""

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.code = code


class SlackRateLimited(SlackTransientError):
    """HTTP 429; `retry_after` is Slack's Retry-After header in seconds."""


class SlackServerError(SlackTransientError):
    """A 5xx, a timeout or a connection failure."""


class SlackPermanentError(PermanentDeliveryError):
    """A failure retrying cannot fix; `code` is Slack's error string."""


class SlackMessageNotFound(SlackPermanentError):
    """The message to update is gone (deleted by someone); a new one can be posted instead."""


def from_response(*, status: int, error: str | None, retry_after: str | None) -> Exception:
    """Map one failed Web API answer to the exception the rest of the code handles."""
    code = error or f"http_{status}"
    if status == 429 or code in ("ratelimited", "rate_limited"):
        return SlackRateLimited(
            f"Slack rate limited the call ({code})", code=code, retry_after=_seconds(retry_after)
        )
    if status >= 500 or code in TRANSIENT_CODES:
        return SlackServerError(
            f"Slack answered {status} {code}", code=code, retry_after=_seconds(retry_after)
        )
    if code in ("message_not_found", "cant_update_message"):
        return SlackMessageNotFound(code, f"Slack: {code}", scope="message")
    # An unknown code is treated as permanent: it is reported to a person instead of retried forever.
    return SlackPermanentError(code, f"Slack: {code}", scope=PERMANENT_CODES.get(code, "message"))


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
