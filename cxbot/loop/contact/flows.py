"""Contacting the customer (design.md §7): the composer's choices, queueing a contact, its result.

A contact is a `contacts` row (the attempt, its status and delivery result) plus an outbox row of kind
`contact` that carries the address, written in the same transaction as the case moving to
`contacted`. The customer's address lives only in that outbox payload (and in `customers`), so erasing
a customer finds it by `kind="contact"` and `case_id`.

Sending once: every contact has an idempotency key, unique in `contacts` and (prefixed) as the outbox
`dedupe_key`. Slack's composer uses the modal's view id, which a double-submitted or replayed
`view_submission` repeats; a typed command (console, Teams) has no interaction id, so its key is a hash
of case, channel, text and sender within the minute, and the same text from the same person in the
previous minute counts as the same contact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from string import Template
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cxbot import markup
from cxbot.authz import Actor, may_see_customer, require_member
from cxbot.cases.customers import customer_owner_teams
from cxbot.cases.flows import (
    ActionResult,
    FieldRejected,
    InvalidTransition,
    get_case,
    record_event,
    transition,
)
from cxbot.config import Config
from cxbot.db import insert_for
from cxbot.loop.contact.options import CHANNELS, PROVIDER_CHANNEL
from cxbot.loop.contact.templates import (
    NAME_PLACEHOLDERS,
    Rendered,
    default_template,
    fields,
    fill_names,
    render,
    templates_for,
)
from cxbot.models import OPEN_CASE_STATES, Case, Contact, Customer, Feedback, Touchpoint
from cxbot.outbox.contract import CONTACT
from cxbot.outbox.queue import queue_message
from cxbot.pii import mask_email, mask_phone, mask_text

PLATFORM = "contact"
MAX_BODY = {"email": 20000, "sms": 1600, "webhook": 20000}
CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "webhook": "Helpdesk"}
PURPOSE_SUBJECTS = {"resurvey": "$company: how did we do? (${case_ref})"}
SYSTEM = Actor(user_id="cxbot", platform="cxbot", display="cxbot")


@dataclass(frozen=True, slots=True)
class ChannelChoice:
    """A way to reach this customer: the channel, its provider and the address (masked for display)."""

    channel: str
    provider: str
    to: str | None
    masked_to: str

    @property
    def label(self) -> str:
        return f"{CHANNEL_LABELS[self.channel]} to {self.masked_to}"


@dataclass(frozen=True, slots=True)
class Composer:
    """What the contact form offers for one case; `problem` says why nothing can be sent, if so."""

    case_id: int
    ref: str
    channels: list[ChannelChoice]
    templates: list[tuple[str, str]]
    rendered: Rendered
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ContactQueued:
    """The attempt that was queued, or the one already queued under the same key (`created` False)."""

    contact_id: int
    created: bool
    channel: str
    provider: str


def _why_not(config: Config, team: str, channel: str, customer: Customer | None) -> str | None:
    """Why a channel cannot reach this customer, or None when it can."""
    spec = config.team(team).contact if team in config.team_keys else None
    name = spec.provider_name(channel) if spec else None
    if name is None or name not in config.contact_providers:
        return f"{team} has no {channel} provider configured (teams[].contact.{channel} in cxbot.yaml)"
    if customer is None:
        return "the case has no customer on record"
    if customer.forgotten_at is not None:
        return "the customer's data was erased"
    if channel == "email" and not customer.email:
        return "the customer has no email address on record"
    if channel == "sms" and not customer.phone:
        return "the customer has no phone number on record"
    return None


def channels_for(config: Config, team: str, customer: Customer | None) -> list[ChannelChoice]:
    """The channels this team has configured and this customer has an address for."""
    choices = []
    for channel in CHANNELS:
        if _why_not(config, team, channel, customer) is not None:
            continue
        assert customer is not None
        provider = config.team(team).contact.provider_name(channel)
        assert provider is not None
        if channel == "email":
            to, masked = customer.email, mask_email(customer.email or "")
        elif channel == "sms":
            to, masked = customer.phone, mask_phone(customer.phone or "")
        else:
            to, masked = None, f"the helpdesk ({provider})"
        choices.append(ChannelChoice(channel=channel, provider=provider, to=to, masked_to=masked))
    return choices


async def _fields(
    session: AsyncSession, config: Config, case: Case, actor: Actor, *, shown: bool = False
) -> dict[str, str]:
    """The template fields of a case. `shown`: for the composer the agent reads, where the customer's
    name stays a placeholder unless the one reveal rule lets this agent see it (the send fills it)."""
    customer = await session.get(Customer, case.customer_id) if case.customer_id else None
    feedback = await session.get(Feedback, case.feedback_id) if case.feedback_id else None
    touchpoint = await session.get(Touchpoint, case.touchpoint_key) if case.touchpoint_key else None
    team_name = config.team(case.team_key).name if case.team_key in config.team_keys else case.team_key
    visible = customer is not None and customer.forgotten_at is None
    if shown and customer is not None and visible:
        owners = await customer_owner_teams(session, customer.id)
        if not may_see_customer(config, actor, owner_teams=owners):
            return {**(await _fields(session, config, case, actor)), **NAME_PLACEHOLDERS}
    return fields(
        customer_name=customer.name if visible and customer else None,
        case_ref=case.ref,
        team_name=team_name,
        company=config.brand_for(case.team_key).name,
        touchpoint=touchpoint.name if touchpoint else (feedback.touchpoint if feedback else None),
        agent=actor.display or team_name,
        score=feedback.score if feedback else None,
        metric=feedback.metric if feedback else None,
    )


async def _open_case_for_contact(session: AsyncSession, config: Config, case_id: int, actor: Actor) -> Case:
    case = await get_case(session, case_id)
    require_member(config, actor, case.team_key, doing="contact its customers")
    if case.state not in OPEN_CASE_STATES:
        raise InvalidTransition(f"{case.ref} is {case.state}; reopen it before contacting the customer")
    return case


async def composer(
    session: AsyncSession, *, config: Config, case_id: int, actor: Actor, template: str | None = None
) -> Composer:
    """The contact form's content for a case: channels, templates, and the chosen template filled in."""
    case = await _open_case_for_contact(session, config, case_id, actor)
    customer = await session.get(Customer, case.customer_id) if case.customer_id else None
    choices = channels_for(config, case.team_key, customer)
    available = templates_for(config, case.team_key)
    name = template if template in available else default_template(config, case.team_key)
    rendered = render(name, available[name], await _fields(session, config, case, actor, shown=True))
    problem = None
    if not choices:
        reasons = {_why_not(config, case.team_key, c, customer) for c in CHANNELS}
        problem = f"{case.ref} cannot be contacted: " + "; ".join(sorted(r for r in reasons if r))
    return Composer(
        case_id=case.id,
        ref=case.ref,
        channels=choices,
        templates=[
            (key, spec.label or key.replace("-", " ").replace("_", " ")) for key, spec in available.items()
        ],
        rendered=rendered,
        problem=problem,
    )


def text_key(*, case_id: int, channel: str, body: str, actor: str, at: datetime) -> str:
    """The key of a typed contact: the same text to the same case in the same minute is one contact."""
    minute = at.replace(second=0, microsecond=0).isoformat()
    digest = hashlib.sha256(f"{case_id}\x00{channel}\x00{actor}\x00{body}\x00{minute}".encode()).hexdigest()
    return f"text:{digest[:48]}"


async def queue_contact(
    session: AsyncSession,
    *,
    config: Config,
    case: Case,
    channel: str,
    body: str,
    actor: Actor,
    now: datetime,
    template: str | None = None,
    subject: str | None = None,
    purpose: str = "contact",
    dedupe: str | None = None,
) -> ContactQueued:
    """Write the attempt and its outbox row in the caller's transaction; the same `dedupe` key twice is
    one contact. No authorization or state change here: callers (`contact`, re-survey) decide those."""
    if channel not in CHANNELS:
        raise FieldRejected("channel", f"{channel!r} is not a channel: {', '.join(CHANNELS)}")
    customer = await session.get(Customer, case.customer_id) if case.customer_id else None
    reason = _why_not(config, case.team_key, channel, customer)
    if reason is not None:
        raise FieldRejected("channel", f"cannot contact the customer of {case.ref} by {channel}: {reason}")
    body = body.strip()
    if not body:
        raise FieldRejected("body", "the message is empty")
    if len(body) > MAX_BODY[channel]:
        raise FieldRejected(
            "body", f"the message is {len(body)} characters; {channel} allows {MAX_BODY[channel]}"
        )
    [choice] = [c for c in channels_for(config, case.team_key, customer) if c.channel == channel]
    provider = config.contact_providers[choice.provider]
    values = await _fields(session, config, case, actor)
    if subject is None:
        available = templates_for(config, case.team_key)
        spec = available.get(template or "") if purpose == "contact" else None
        subject = render("", spec, values).subject if spec else None
    if subject is None:
        subject = Template(
            PURPOSE_SUBJECTS.get(purpose, "About your feedback (${case_ref})")
        ).safe_substitute(values)
    key = dedupe or text_key(case_id=case.id, channel=channel, body=body, actor=actor.ident, at=now)
    if dedupe is None:
        earlier = text_key(
            case_id=case.id, channel=channel, body=body, actor=actor.ident, at=now - timedelta(minutes=1)
        )
        found = await session.scalar(select(Contact.id).where(Contact.idempotency_key == earlier))
        if found is not None:
            return ContactQueued(found, False, channel, choice.provider)
    inserted = await session.execute(
        insert_for(session, Contact.__table__)
        .values(
            case_id=case.id,
            channel=channel,
            provider=choice.provider,
            status="pending",
            idempotency_key=key,
            template=template,
            body=body,
            created_by=actor.ident,
            attempts=0,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Contact.idempotency_key])
        .returning(Contact.id)
    )
    contact_id = inserted.scalar_one_or_none()
    if contact_id is None:
        existing = await session.scalar(select(Contact.id).where(Contact.idempotency_key == key))
        assert existing is not None
        return ContactQueued(existing, False, channel, choice.provider)
    customer_fields: dict[str, Any] = {"external_id": customer.external_id if customer else None}
    if channel == "webhook" and customer is not None:
        customer_fields.update(name=customer.name, email=customer.email, phone=customer.phone)
    payload = {
        "contact_id": contact_id,
        "case_id": case.id,
        "case_ref": case.ref,
        "team": case.team_key,
        "channel": channel,
        "provider": choice.provider,
        "provider_type": provider.type,
        "purpose": purpose,
        "to": choice.to,
        "subject": subject,
        "body": body,
        "idempotency_key": key,
        "customer": customer_fields,
    }
    await queue_message(
        session,
        kind=CONTACT,
        platform=PLATFORM,
        destination=channel,
        payload=payload,
        subject=(key,),
        case_id=case.id,
        now=now,
    )
    return ContactQueued(contact_id, True, channel, choice.provider)


async def contact(
    session: AsyncSession,
    *,
    config: Config,
    case_id: int,
    actor: Actor,
    channel: str | None,
    template: str | None,
    text: str | None,
    now: datetime,
    idempotency_key: str | None = None,
) -> ActionResult:
    """Send the customer a message (a template, or the agent's text) and move the case to `contacted`."""
    case = await _open_case_for_contact(session, config, case_id, actor)
    customer = await session.get(Customer, case.customer_id) if case.customer_id else None
    choices = channels_for(config, case.team_key, customer)
    if channel is None:
        if len(choices) != 1:
            offered = ", ".join(c.channel for c in choices) or "none"
            raise FieldRejected(
                "channel", f"say how to contact the customer of {case.ref} (channels: {offered})"
            )
        channel = choices[0].channel
    available = templates_for(config, case.team_key)
    if template is not None and template not in available:
        raise FieldRejected(
            "template", f"{template!r} is not a template of {case.team_key}: {', '.join(available)}"
        )
    name = template or default_template(config, case.team_key)
    values = await _fields(session, config, case, actor)
    rendered = render(name, available[name], values)
    # A composer shown with the name as a placeholder comes back with it: the send fills it in.
    body = fill_names(text.strip(), values) if text and text.strip() else rendered.body
    used = name if template is not None or not (text and text.strip()) else None
    queued = await queue_contact(
        session,
        config=config,
        case=case,
        channel=channel,
        body=body,
        actor=actor,
        now=now,
        template=used,
        subject=rendered.subject,
        dedupe=idempotency_key,
    )
    if not queued.created:
        return ActionResult(case, False, f"That message to the customer of {case.ref} was already sent")
    values: dict[str, Any] = {
        "state": "contacted",
        "updated_at": now,
        "contacted_at": case.contacted_at or now,
    }
    if case.state == "new":
        values.update(acknowledged_at=now, acknowledged_by=actor.ident)
    if not await transition(session, case, allowed_from=OPEN_CASE_STATES, values=values):
        raise InvalidTransition(f"{case.ref} is {case.state}; reopen it before contacting the customer")
    how = CHANNEL_LABELS[channel] + (f", template {used}" if used else "")
    await record_event(
        session,
        case,
        actor=actor,
        kind="contacted",
        detail=f"Contact with the customer queued by {markup.person(actor.ident)} ({markup.plain(how)})",
        now=now,
        data={"contact_id": queued.contact_id, "channel": channel, "provider": queued.provider},
    )
    return ActionResult(case, True, f"Message to the customer of {case.ref} queued ({how})")


async def has_contact_attempt(session: AsyncSession, case_id: int) -> bool:
    """The resolve rule (design.md §7): any attempt counts, delivered or not."""
    return (await session.scalar(select(Contact.id).where(Contact.case_id == case_id).limit(1))) is not None


async def record_delivery(
    session: AsyncSession,
    *,
    payload: dict[str, Any],
    status: str,
    attempts: int,
    detail: str,
    message_id: str | None,
    now: datetime,
) -> None:
    """Write a delivery result to the contact row and, once final, to the case's timeline and card."""
    contact_id = payload.get("contact_id")
    # A provider's error may quote the address ("ada@x is not valid"): results are kept masked.
    detail = mask_text(detail)
    values: dict[str, Any] = {"attempts": attempts, "result": detail}
    if status in ("sent", "failed"):
        values.update(status=status, finished_at=now)
    await session.execute(
        update(Contact)
        .where(Contact.id == contact_id, Contact.status == "pending")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if status not in ("sent", "failed"):
        return
    case = await session.get(Case, payload.get("case_id"), populate_existing=True)
    if case is None:
        return
    what = "Re-survey" if payload.get("purpose") == "resurvey" else "Message"
    label = CHANNEL_LABELS.get(str(payload.get("channel")), str(payload.get("channel")))
    if status == "sent":
        line = f"{what} to the customer sent ({label} via {payload.get('provider')})"
    else:
        line = (
            f"{markup.alert('warning')} {what} to the customer failed "
            f"({label} via {markup.plain(str(payload.get('provider')))}): {markup.plain(detail)}"
        )
    await record_event(
        session,
        case,
        actor=SYSTEM,
        kind=f"contact_{status}",
        detail=line,
        now=now,
        data={"contact_id": contact_id, "message_id": message_id, "purpose": payload.get("purpose")},
    )


__all__ = [
    "PROVIDER_CHANNEL",
    "ChannelChoice",
    "Composer",
    "ContactQueued",
    "channels_for",
    "composer",
    "composer_for",
    "contact",
    "has_contact_attempt",
    "queue_contact",
    "record_delivery",
    "text_key",
]


async def composer_for(
    sessions: async_sessionmaker[AsyncSession],
    *,
    config: Config,
    case_id: int,
    actor: Actor,
    template: str | None = None,
) -> Composer:
    """The composer in its own short read transaction, for platforms that draw it as a form."""
    async with sessions() as session:
        return await composer(session, config=config, case_id=case_id, actor=actor, template=template)
