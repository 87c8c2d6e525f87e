"""Delivers outbox rows to the terminal: what Slack would post, printed as it would be posted.

The console is one more platform on the outbox: team channels linked with `/cx team link` (the demo
links `#<team>` for every team) get case cards, thread lines, digests and escalation notices queued
for platform "console", and :class:`cxbot.outbox.worker.OutboxWorker` hands them here. A card printed once
is "updated" afterwards, as Slack updates its message in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cxbot.outbox.contract import (
    CHAT_KINDS,
    ESCALATION_DM,
    ESCALATION_KINDS,
    Delivery,
    PermanentDeliveryError,
)
from handlers.console.renderers import (
    case_card,
    digest_post,
    escalation_notice,
    report,
    terminal_width,
    thread_line,
)

PLATFORM = "console"


class ConsoleNotifier:
    """Renders each delivery and hands it to `write` with the case it is about (None for digests)."""

    platform = PLATFORM
    kinds = CHAT_KINDS

    def __init__(
        self, write: Callable[[int | None, str], None], *, width: Callable[[], int] = terminal_width
    ) -> None:
        self.write = write
        self.width = width

    async def deliver(self, delivery: Delivery) -> dict[str, Any]:
        payload_text = str(delivery.payload.get("text") or "")
        about = delivery.payload.get("case_id")
        case_id = int(about) if isinstance(about, int) else None
        if delivery.kind == "report":
            self.write(None, report(payload_text, destination=delivery.destination))
            return {"printed": True}
        if delivery.kind == "digest":
            self.write(None, digest_post(payload_text, channel=delivery.destination, width=self.width()))
            return {"printed": True}
        if delivery.kind in ESCALATION_KINDS:
            notice = escalation_notice(
                payload_text,
                destination=delivery.destination,
                direct=delivery.kind == ESCALATION_DM,
                width=self.width(),
            )
            self.write(case_id, notice)
            return {"printed": True}
        if delivery.case is None:
            return {"skipped": "the case no longer exists"}
        case = delivery.case
        ref = f"console:{delivery.destination}:{case.id}"
        if delivery.kind == "case.card":
            card = case_card(
                case, channel=delivery.destination, updated=bool(delivery.message_ref), width=self.width()
            )
            self.write(case.id, card)
            return {"message_ref": ref, "action": "updated" if delivery.message_ref else "posted"}
        if delivery.kind == "case.thread":
            result: dict[str, Any] = {}
            if not delivery.message_ref:  # the card never went to this channel: show it first, as Slack does
                self.write(case.id, case_card(case, channel=delivery.destination, width=self.width()))
                result["message_ref"] = ref
            self.write(case.id, thread_line(payload_text, case_ref=case.ref, channel=delivery.destination))
            return result | {"printed": True}
        raise PermanentDeliveryError("unsupported_kind", f"the console does not print {delivery.kind!r}")
