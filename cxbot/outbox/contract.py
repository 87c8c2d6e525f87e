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
from datetime import datetime
from typing import Any, Final, Literal, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.cases.view import CaseView

# The outbox's vocabulary: every kind of row, with the payload it carries. A notifier names the kinds
# it delivers in `Notifier.kinds`; rows of other kinds stay queued for the notifier that does.

CASE_CARD: Final = "case.card"
"""A case's card, posted once and then refreshed in place: `{case_id, event_id, text}`."""

CASE_THREAD: Final = "case.thread"
"""One line of a case's timeline under its card: `{case_id, event_id, text}`."""

DIGEST: Final = "digest"
"""A score digest: `{text, scope, digest}`, the digest as JSON for each platform to render."""

ESCALATION_DM: Final = "escalation.dm"
"""An escalation notice sent to one person (destination: the person's id on that platform)."""

ESCALATION_CHANNEL: Final = "escalation.channel"
"""An escalation notice in the team's channel: `{case_id, event_id, text}`."""

REPORT: Final = "report"
"""A dead message reported to people: `{text, dead_id, code}`; never itself reported when dead."""

CONTACT: Final = "contact"
"""A message to a customer through a contact provider (platform `contact`)."""

MessageKind = Literal[
    "case.card", "case.thread", "digest", "escalation.dm", "escalation.channel", "report", "contact"
]

CASE_KINDS: Final = (CASE_CARD, CASE_THREAD)
ESCALATION_KINDS: Final = frozenset({ESCALATION_DM, ESCALATION_CHANNEL})
CHAT_KINDS: Final = frozenset({CASE_CARD, CASE_THREAD, DIGEST, REPORT, *ESCALATION_KINDS})
"""What a chat platform (Slack, Teams, the console) delivers; contacts go to customers instead."""

OPEN_STATUSES: Final = ("pending", "sending")


def dedupe_key(kind: str, platform: str, *subject: object) -> str:
    """The one format of a row's dedupe key: `kind:platform:subject…`.

    The subject names what the message is about (a case and its event, a digest's scope and date, a
    dead row and its target), so the same cause queued twice (a replayed job, click or firing) is one
    row per platform and destination.
    """
    return ":".join((kind, platform, *(str(part) for part in subject)))


#: Why a permanent error happened decides who hears about it: a broken destination is reported to
#: the admins (the channel itself cannot be reached), a bad message to the team's channel, and broken
#: credentials only to the log (no chat message can get through).
ErrorScope = Literal["destination", "credentials", "message"]


class DeliveryError(Exception):
    """A delivery that did not happen (or only half: `result` keeps what did, e.g. a posted card)."""

    result: dict[str, Any] | None = None


#: What a Retry-After holds: the destination that got it (a channel's or conversation's limit, the
#: usual case), or every destination of the platform (a limit on the app or the method as a whole).
HoldScope = Literal["destination", "platform"]


class TransientDeliveryError(DeliveryError):
    """Try again later: rate limited, a 5xx, a timeout. `retry_after` is the platform's own wish.

    With a `retry_after`, the outbox holds `hold` (by default only this destination) until then.
    """

    hold: HoldScope = "destination"

    def __init__(
        self, message: str, *, retry_after: float | None = None, hold: HoldScope = "destination"
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.hold = hold


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

    `maybe_sent_since` is set when an earlier attempt was claimed and never recorded (its worker
    stopped between the call and the record): that attempt may have delivered the message at some
    time after this. A notifier that can look on the platform (Slack: the channel's history, by the
    metadata each post carries) should, and answer with what it found instead of sending again;
    one that cannot sends again (at least once).
    """

    id: int
    kind: str
    platform: str
    destination: str | None
    payload: dict[str, Any]
    attempt: int
    case: CaseView | None = None
    message_ref: str | None = None
    maybe_sent_since: datetime | None = None


class Notifier(Protocol):
    """A platform's way out. `kinds` are the outbox kinds it delivers; others stay queued for others.

    A notifier may also have a `pace` (:class:`cxbot.outbox.pacing.Pace`, or None for no pacing):
    how fast one destination may be sent to. Without one, the outbox paces it as a chat channel
    (`pacing.CHANNEL_PACE`).
    """

    platform: str
    kinds: frozenset[str]

    async def deliver(self, delivery: Delivery) -> dict[str, Any]:
        """Deliver and return a JSON-able result; `message_ref` in it (re)binds the case's card."""
        ...


@runtime_checkable
class OutcomeRecorder(Protocol):
    """Optional for a notifier: keep its own record of each attempt, in the worker's transaction.

    The worker calls it after every attempt but a released one (`status`: sent, retry or dead). A
    notifier that has it also owns telling people about a dead message (no dead-letter report is
    queued for it): customer contacts record the attempt on the contact row and the case card.
    """

    async def record_outcome(
        self,
        session: AsyncSession,
        *,
        payload: dict[str, Any],
        status: str,
        attempts: int,
        result: dict[str, Any] | None,
        error: str | None,
        now: datetime,
    ) -> None: ...
