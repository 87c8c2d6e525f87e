"""Customer PII: the audited reveal and the admins' erasure (design.md §7, §9).

Chat messages only ever show masked contact details (:mod:`cxbot.pii`). `reveal CX-42` shows the
real name, email and phone to a member of the team owning the customer's feedback
(:func:`cxbot.authz.may_see_customer`), in a reply only they see, and writes an
`audit_events` row and a case event. `forget <customer>` (admins) erases the customer's PII:

- `customers`: name, email and phone set to NULL, `forgotten_at` set; an external id that is itself an
  email or phone number (or the name) is replaced by its one-way tombstone `erased:<hash>`.
- Erasure lasts: later feedback under the same id (or the tombstone's id) is stored and counted,
  linked to the erased row, with no name, email or phone and its comment masked, until an admin
  lifts it with `forget <id> undo` (:func:`restore`).
- What the customer wrote or was sent: feedback comments are *masked*, not deleted (their scores stay
  in the statistics, anonymous now): every email address and phone number is masked with
  :func:`cxbot.pii.mask_text` and the customer's name, email and phone are replaced by `[erased]`;
  `contacts.body` of their cases is blanked; case events, case texts and outbox payloads of their
  cases are scrubbed the same way.
- Pending contact sends to them are cancelled (`dead`, `last_error` "erased") and every contact
  payload for their cases is blanked; unanswered re-survey links expire now.
- Posted case cards are re-rendered (masked, "erased customer") through the outbox.

One `audit_events` row (`forget`, `customer:<id>`) records who did it; it names no PII.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot import markup
from cxbot.authz import Actor, Denied, may_see_customer, require_admin
from cxbot.cases.customers import PII_REVEAL, customer_owner_teams, record_pii_reveal
from cxbot.cases.flows import get_case
from cxbot.ingest.common import erased_external_id
from cxbot.models import (
    AuditEvent,
    Case,
    CaseEvent,
    CasePost,
    Contact,
    Customer,
    Feedback,
    OutboxMessage,
    Resurvey,
)
from cxbot.outbox.contract import CASE_CARD, CONTACT, OPEN_STATUSES
from cxbot.outbox.queue import queue_message
from cxbot.pii import mask_text

ERASED = "[erased]"


@dataclass(frozen=True, slots=True)
class Revealed:
    case_ref: str
    text: str


async def reveal(
    session: AsyncSession, *, config: Any, case_id: int, actor: Actor, now: datetime
) -> Revealed:
    """The customer's real details for those the one rule lets see them; audited. Denied otherwise.

    The rule is :func:`cxbot.authz.may_see_customer`, the same as the single customer view's: the
    team owning the customer's feedback decides, not the team the case happens to sit with.
    """
    case = await get_case(session, case_id)
    if case.customer_id is None:
        return Revealed(case.ref, f"{case.ref} has no customer on record.")
    customer = await session.get(Customer, case.customer_id)
    assert customer is not None
    owners = await customer_owner_teams(session, customer.id)
    if not may_see_customer(config, actor, owner_teams=owners):
        teams = " or ".join(sorted(owners)) or "no team (admins only)"
        raise Denied(
            f"only members of {teams} (owning this customer's feedback) can see the customer's details "
            f"of {case.ref}; ask someone in that team"
        )
    if customer.forgotten_at is not None:
        return Revealed(case.ref, f"{case.ref}'s customer was erased on {customer.forgotten_at:%Y-%m-%d}.")
    await record_pii_reveal(
        session,
        actor=actor,
        customer_id=customer.id,
        now=now,
        detail=f"revealed on case:{case.id} via {actor.platform}",
    )
    session.add(
        CaseEvent(
            case_id=case.id,
            at=now,
            actor=actor.ident,
            kind=PII_REVEAL,
            detail=f"Customer details shown to {markup.person(actor.ident)}",
            data={"customer_id": customer.id},
        )
    )
    lines = [
        f"Customer of {case.ref} (only you see this; the view is logged):",
        f"• Id: {customer.external_id}",
        f"• Name: {customer.name or 'not given'}",
        f"• Email: {customer.email or 'not given'}",
        f"• Phone: {customer.phone or 'not given'}",
    ]
    return Revealed(case.ref, "\n".join(lines))


# --------------------------------------------------------------------------- erasure


def scrubber(values: list[str]) -> Any:
    """A function that removes these exact values (any case) and masks any email or phone left."""
    needles = sorted({v.strip() for v in values if v and len(v.strip()) >= 2}, key=len, reverse=True)
    alternatives = "|".join(re.escape(n) for n in needles)
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if needles else None

    def scrub(text: str | None) -> str | None:
        if text is None:
            return None
        out = pattern.sub(ERASED, text) if pattern is not None else text
        return mask_text(out)

    return scrub


def _scrub_json(value: Any, scrub: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrub_json(v, scrub) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_json(v, scrub) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class Forgotten:
    customer_id: int
    cases: list[int]
    cancelled: int
    cards: int
    already: bool

    @property
    def message(self) -> str:
        what = "was already erased; checked again" if self.already else "erased"
        return (
            f"Customer {self.customer_id} {what}: name, email and phone removed; "
            f"{len(self.cases)} case(s) scrubbed, {self.cancelled} pending contact(s) cancelled, "
            f"{self.cards} card(s) being re-rendered. Logged in the audit trail."
        )


async def forget(
    session: AsyncSession, *, config: Any, external_id: str, actor: Actor, now: datetime
) -> Forgotten:
    """Erase one customer's PII everywhere it can be (see the module doc); admins only."""
    require_admin(config, actor, doing="erase customer data")
    customer = await _customer_or_tombstone(session, external_id)
    already = customer.forgotten_at is not None
    values = [customer.name or "", customer.email or "", customer.phone or ""]
    if customer.name:
        values += [part for part in customer.name.split() if len(part) >= 3]
    scrub = scrubber(values)
    new_external = customer.external_id
    whole = {v.lower() for v in values[:3] if v}
    if mask_text(new_external) != new_external or new_external.lower() in whole:
        # The id itself was an address or the name: keep only its tombstone, which later
        # deliveries under that id still find (ingest.common.CustomerIds), so erasure lasts.
        new_external = erased_external_id(new_external)
    await session.execute(
        update(Customer)
        .where(Customer.id == customer.id)
        .values(
            name=None,
            email=None,
            phone=None,
            external_id=new_external,
            forgotten_at=customer.forgotten_at or now,
            updated_at=now,
        )
    )
    feedback = await session.execute(
        select(Feedback.id, Feedback.comment).where(Feedback.customer_id == customer.id)
    )
    for ident, comment in feedback.all():
        cleaned = scrub(comment)
        if cleaned != comment:
            await session.execute(update(Feedback).where(Feedback.id == ident).values(comment=cleaned))
    case_ids = list((await session.execute(select(Case.id).where(Case.customer_id == customer.id))).scalars())
    cancelled = 0
    cards = 0
    if case_ids:
        await _scrub_cases(session, case_ids, scrub)
        cancelled = await _scrub_outbox(session, case_ids, scrub)
        cards = await _rerender_cards(session, case_ids, actor=actor, now=now)
    await session.execute(
        update(Resurvey)
        .where(Resurvey.customer_id == customer.id, Resurvey.answered_at.is_(None), Resurvey.expires_at > now)
        .values(expires_at=now)
    )
    session.add(
        AuditEvent(
            at=now,
            actor=actor.ident,
            action="forget",
            subject=f"customer:{customer.id}",
            detail=f"erased PII; cases {', '.join(f'CX-{c}' for c in case_ids) or 'none'}; "
            f"{cancelled} pending contact(s) cancelled",
        )
    )
    return Forgotten(customer.id, case_ids, cancelled, cards, already)


async def _customer_or_tombstone(session: AsyncSession, external_id: str) -> Customer:
    """The customer by the id the survey tool sends, also once `forget` replaced it by its tombstone."""
    wanted = external_id.strip()
    rows = await session.execute(
        select(Customer).where(Customer.external_id.in_([wanted, erased_external_id(wanted)]))
    )
    found = sorted(rows.scalars(), key=lambda c: c.external_id != wanted)
    if not found:
        raise LookupError(f"no customer with id {wanted!r}")
    return found[0]


@dataclass(frozen=True, slots=True)
class Restored:
    customer_id: int
    already: bool

    @property
    def message(self) -> str:
        if self.already:
            return f"Customer {self.customer_id} is not erased; nothing to restore."
        return (
            f"Customer {self.customer_id} restored: their next feedback keeps the name, email and phone "
            "it carries. What was erased stays erased. Logged in the audit trail."
        )


async def restore(
    session: AsyncSession, *, config: Any, external_id: str, actor: Actor, now: datetime
) -> Restored:
    """Undo the lasting part of an erasure (admins): later feedback may bring PII again.

    Nothing erased comes back. An id replaced by its tombstone gets the id the admin typed back,
    since typing it proves it is the one (the tombstone is its hash).
    """
    require_admin(config, actor, doing="restore an erased customer")
    customer = await _customer_or_tombstone(session, external_id)
    if customer.forgotten_at is None:
        return Restored(customer.id, already=True)
    wanted = external_id.strip()
    values: dict[str, Any] = {"forgotten_at": None, "updated_at": now}
    if customer.external_id == erased_external_id(wanted):
        taken = await session.scalar(select(Customer.id).where(Customer.external_id == wanted))
        if taken is None:
            values["external_id"] = wanted
    await session.execute(update(Customer).where(Customer.id == customer.id).values(**values))
    session.add(
        AuditEvent(
            at=now,
            actor=actor.ident,
            action="restore",
            subject=f"customer:{customer.id}",
            detail="erasure lifted: later feedback may carry PII again",
        )
    )
    return Restored(customer.id, already=False)


async def _scrub_cases(session: AsyncSession, case_ids: list[int], scrub: Any) -> None:
    cases = await session.execute(select(Case).where(Case.id.in_(case_ids)))
    for case in cases.scalars():
        for column in ("title", "routing_reason", "resolution_note", "snooze_reason", "no_contact_reason"):
            setattr(case, column, scrub(getattr(case, column)))
    events = await session.execute(select(CaseEvent).where(CaseEvent.case_id.in_(case_ids)))
    for event in events.scalars():
        event.detail = scrub(event.detail)
        if event.data is not None:
            event.data = _scrub_json(event.data, scrub)
    contacts = await session.execute(select(Contact).where(Contact.case_id.in_(case_ids)))
    for contact in contacts.scalars():
        contact.body = None
        contact.result = scrub(contact.result)
    await session.flush()


async def _scrub_outbox(session: AsyncSession, case_ids: list[int], scrub: Any) -> int:
    """Cancel pending contacts, blank every contact payload, scrub the rest; returns cancelled rows."""
    rows = await session.execute(select(OutboxMessage).where(OutboxMessage.case_id.in_(case_ids)))
    cancelled = 0
    for row in rows.scalars():
        if row.kind == CONTACT:
            row.payload = {"case_id": row.case_id, "erased": True}
            row.destination = None if row.destination is None else ERASED
            if row.status in OPEN_STATUSES:
                row.status = "dead"
                row.last_error = "erased"
                cancelled += 1
        else:
            row.payload = _scrub_json(row.payload, scrub)
            row.last_error = scrub(row.last_error)
        if row.result is not None:
            row.result = _scrub_json(row.result, scrub)
    await session.flush()
    return cancelled


async def _rerender_cards(session: AsyncSession, case_ids: list[int], *, actor: Actor, now: datetime) -> int:
    """Queue an in-place update of every posted card of these cases, which now render masked."""
    posts = await session.execute(
        select(CasePost.case_id, CasePost.platform, CasePost.destination).where(
            CasePost.case_id.in_(case_ids)
        )
    )
    queued = 0
    events: dict[int, CaseEvent] = {}
    for case_id, platform, destination in posts.all():
        event = events.get(case_id)
        if event is None:
            event = CaseEvent(
                case_id=case_id, at=now, actor=actor.ident, kind="erased", detail="Customer data erased"
            )
            session.add(event)
            await session.flush()
            events[case_id] = event
        queued += await queue_message(
            session,
            kind=CASE_CARD,
            platform=platform,
            destination=destination,
            payload={"case_id": case_id, "event_id": event.id, "text": "Customer data erased"},
            subject=(case_id, event.id),
            now=now,
            case_id=case_id,
        )
    return queued
