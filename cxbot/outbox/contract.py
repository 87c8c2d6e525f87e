"""What the outbox hands a platform, and what a platform may answer (design.md §9).

A platform package (`handlers/slack/notifier.py`, later Teams) implements :class:`Notifier`: it turns a
:class:`Delivery` into network calls and raises :class:`TransientDeliveryError` (try again later,
after `retry_after` if the platform said so) or :class:`PermanentDeliveryError` (never retried; the
outbox dead-letters and reports it). Everything here is platform-neutral and network-free; the
delivery carries a snapshot of the case (:class:`cxbot.cases.view.CaseView`, PII already masked) so a
notifier never touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cxbot.cases.view import CaseView

#: Why a permanent error happened decides who hears about it: a broken destination is reported to
#: the admins (the channel itself cannot be reached), a bad message to the team's channel, and broken
#: credentials only to the log (no chat message can get through).
ErrorScope = Literal["destination", "credentials", "message"]


class DeliveryError(Exception):
    """A delivery that did not happen (or only half: `result` keeps what did, e.g. a posted card)."""

    result: dict[str, Any] | None = None


class TransientDeliveryError(DeliveryError):
    """Try again later: rate limited, a 5xx, a timeout. `retry_after` is the platform's own wish."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (`channel_not_found`, `invalid_auth`...); `code` is the platform's code."""

    def __init__(self, code: str, message: str | None = None, *, scope: ErrorScope = "message") -> None:
        super().__init__(message or code)
        self.code = code
        self.scope = scope


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed outbox row, with what a notifier needs to deliver it without the database.

    `message_ref` is the platform id of the case's card in this destination, when one was posted.
    """

    id: int
    kind: str
    platform: str
    destination: str | None
    payload: dict[str, Any]
    attempt: int
    case: CaseView | None = None
    message_ref: str | None = None


class Notifier(Protocol):
    """A platform's way out. `kinds` are the outbox kinds it delivers; others stay queued for others."""

    platform: str
    kinds: frozenset[str]

    async def deliver(self, delivery: Delivery) -> dict[str, Any]:
        """Deliver and return a JSON-able result; `message_ref` in it (re)binds the case's card."""
        ...


OPEN_STATUSES = ("pending", "sending")


CASE_KINDS = ("case.card", "case.thread")


REPORT_KIND = "report"
