"""Contacting the customer through the outbox (design.md §7, §9), against fake providers on loopback.

Each provider's exact request is asserted (method, path, auth, idempotency key, signature recomputed
here, the rendered template); injected 5xx, 429 with Retry-After and timeouts are retried by the real
outbox worker and accepted exactly once; a 4xx is recorded as failed on the contact row and the card.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from cxbot import markup
from cxbot.authz import Actor
from cxbot.cases.view import load_case_view
from cxbot.commands.dispatch import Where, run_text
from cxbot.commands.grammar import Command, CommandError, parse
from cxbot.config import ConfigError, parse_config
from cxbot.models import Case, CaseEvent, Contact, OutboxMessage
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.support.clock import FrozenClock
from tests.support.contact_setup import SECRETS, contact_config, set_secrets
from tests.support.fake_providers import (
    ACCOUNT_SID,
    HANG,
    MAILGUN_DOMAIN,
    FakeProviders,
    Reply,
    invalid_email,
)
from tests.support.platforms import platform_notifiers

AGENT = Actor("U0SUPAGT1", "slack", display="Sam")
OUTSIDER = Actor("U0LOGAGT1", "slack")
LOGISTICS = Actor("U0LOGAGT1", "slack", display="Lou")
HERE = Where(platform="console")
EMAIL, PHONE = "ada@example.com", "+44 20 7946 0000"


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders.running() as providers:
        yield providers


@pytest.fixture
async def runtime(
    settings: Settings, fake: FakeProviders, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    set_secrets(monkeypatch)
    built = Runtime.build(settings=settings, config=contact_config(fake.base), clock=clock)
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


async def open_case(client: httpx.AsyncClient, *, touchpoint: str = "Inbound", **customer: str) -> str:
    response = await client.post(
        "/feedback",
        json={
            "external_id": f"neg-{touchpoint}",
            "source": "t",
            "metric": "csat",
            "score": 1,
            "touchpoint": touchpoint,
            "comment": "Nobody called me back",
            "customer": {"id": "c-1", **customer},
        },
    )
    return response.json()["results"][0]["case"]


def worker(runtime: Runtime) -> OutboxWorker:
    return OutboxWorker(runtime, platform_notifiers(runtime))


async def contacts(runtime: Runtime) -> list[Contact]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(Contact).order_by(Contact.id))).scalars())


async def contact_rows(runtime: Runtime) -> list[OutboxMessage]:
    async with runtime.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == "contact").order_by(OutboxMessage.id)
        return list((await session.execute(query)).scalars())


async def event_lines(runtime: Runtime) -> list[tuple[str, str | None]]:
    async with runtime.sessions() as session:
        rows = await session.execute(select(CaseEvent.kind, CaseEvent.detail).order_by(CaseEvent.id))
        return [(kind, detail) for kind, detail in rows.all()]


async def the_case(runtime: Runtime) -> Case:
    async with runtime.sessions() as session:
        return (await session.execute(select(Case))).scalar_one()


APOLOGY = (
    "Hi Ada,\n\nThank you for telling us about Phone support. I'm sorry we let you down.\n"
    # $company: the brand's name from cxbot.example.yaml.
    "I'm Sam from Customer Support at Northwind Outfitters and I'm looking into it personally. "
    "Reply to this\nmessage with anything that would help us put it right."
)


async def test_email_goes_to_sendgrid_exactly_once_with_the_rendered_template(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders, clock: FrozenClock
) -> None:
    ref = await open_case(client, name="Ada Lovelace", email=EMAIL, phone=PHONE)
    reply = await run_text(runtime, f"contact {ref} email", actor=AGENT, where=HERE)
    assert (reply.ok, reply.text) == (
        True,
        f"Message to the customer of {ref} queued (Email, template apology)",
    )
    # Typed twice in the same minute (a double submit): one contact, one outbox row.
    again = await run_text(runtime, f"contact {ref} email", actor=AGENT, where=HERE)
    assert again.text == f"That message to the customer of {ref} was already sent"
    case = await the_case(runtime)
    assert (case.state, case.contacted_at, case.acknowledged_by) == ("contacted", clock.now, AGENT.user_id)
    [contact] = await contacts(runtime)
    assert (contact.channel, contact.provider, contact.status, contact.template) == (
        "email",
        "sendgrid",
        "pending",
        "apology",
    )
    assert contact.body == APOLOGY
    [row] = await contact_rows(runtime)
    assert (row.platform, row.destination, row.dedupe_key) == (
        "contact",
        "email",
        f"contact:contact:{contact.idempotency_key}",
    )

    stats = await worker(runtime).run_once(now=clock.now)
    assert stats.sent >= 1
    [request] = fake.requests()
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.headers["authorization"] == f"Bearer {SECRETS['SENDGRID_API_KEY']}"
    assert request.headers["idempotency-key"] == contact.idempotency_key
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "personalizations": [{"to": [{"email": EMAIL}]}],
        "from": {"email": "care@shop.example.com", "name": "Shop customer care"},
        "subject": f"We're sorry about your experience ({ref})",
        "content": [{"type": "text/plain", "value": APOLOGY}],
        "custom_args": {"case_ref": ref, "idempotency_key": contact.idempotency_key},
    }
    [contact] = await contacts(runtime)
    assert (contact.status, contact.attempts, contact.result) == ("sent", 1, "sent via sendgrid (id sg-1)")
    assert contact.finished_at == clock.now
    lines = await event_lines(runtime)
    assert lines[-2:] == [
        (
            "contacted",
            f"Contact with the customer queued by {markup.person(AGENT.user_id)} (Email, template apology)",
        ),
        ("contact_sent", "Message to the customer sent (Email via sendgrid)"),
    ]
    # The address travels only in the outbox payload and never into a chat line.
    assert all(EMAIL not in (detail or "") for _, detail in lines)


async def test_sms_goes_to_twilio_form_encoded_with_basic_auth(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders, clock: FrozenClock
) -> None:
    ref = await open_case(client, name="Ada Lovelace", phone=PHONE)
    reply = await run_text(runtime, f"contact {ref} sms template:callback", actor=AGENT, where=HERE)
    assert reply.ok, reply.text
    await worker(runtime).run_once(now=clock.now)
    [request] = fake.requests()
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    token = base64.b64encode(f"{ACCOUNT_SID}:{SECRETS['TWILIO_AUTH_TOKEN']}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {token}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    [contact] = await contacts(runtime)
    assert request.headers["i-twilio-idempotency-token"] == contact.idempotency_key
    assert request.form() == {
        "To": PHONE,
        "From": "+15005550006",
        "Body": "Hi Ada,\n\nI'm Sam from Customer Support. I'd like to put right what went wrong with Phone "
        "support.\nWhen is a good time to call you? Just reply to this message.",
    }
    assert (contact.status, contact.result) == (
        "sent",
        "sent via twilio (id SM00000000000000000000000000000001)",
    )


async def test_mailgun_is_the_second_email_provider(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders, clock: FrozenClock
) -> None:
    ref = await open_case(client, touchpoint="delivery", name="Ada Lovelace", email=EMAIL)
    reply = await run_text(
        runtime, f"contact {ref} email Your parcel is on its way.", actor=LOGISTICS, where=HERE
    )
    assert reply.ok, reply.text
    await worker(runtime).run_once(now=clock.now)
    [request] = fake.requests()
    assert request.path == f"/v3/{MAILGUN_DOMAIN}/messages"
    key = base64.b64encode(f"api:{SECRETS['MAILGUN_API_KEY']}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {key}"
    [contact] = await contacts(runtime)
    assert contact.template is None and contact.body == "Your parcel is on its way."
    assert request.form() == {
        "from": "deliveries@shop.example.com",
        "to": EMAIL,
        "subject": f"We're sorry about your experience ({ref})",
        "text": "Your parcel is on its way.",
        "v:case_ref": ref,
        "h:Idempotency-Key": contact.idempotency_key,
    }


async def test_helpdesk_webhook_is_signed_over_the_raw_body(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders, clock: FrozenClock
) -> None:
    ref = await open_case(client, name="Ada Lovelace", email=EMAIL, phone=PHONE)
    reply = await run_text(
        runtime, f'contact {ref} webhook "Please call Ada today."', actor=AGENT, where=HERE
    )
    assert reply.ok, reply.text
    await worker(runtime).run_once(now=clock.now)
    [request] = fake.requests()
    assert (request.method, request.path) == ("POST", "/hooks/cxbot")
    expected = hmac.new(SECRETS["HELPDESK_WEBHOOK_SECRET"].encode(), request.raw, hashlib.sha256).hexdigest()
    assert request.headers["x-cxbot-signature"] == f"sha256={expected}"
    [contact] = await contacts(runtime)
    assert request.headers["idempotency-key"] == contact.idempotency_key
    assert request.json() == {
        "event": "cxbot.contact",
        "idempotency_key": contact.idempotency_key,
        "case": {"ref": ref, "team": "support"},
        "customer": {"external_id": "c-1", "name": "Ada Lovelace", "email": EMAIL, "phone": PHONE},
        "subject": f"We're sorry about your experience ({ref})",
        "body": "Please call Ada today.",
    }
    assert (contact.status, contact.result) == ("sent", "sent via helpdesk (id T-1)")


async def test_5xx_429_and_timeouts_are_retried_and_accepted_exactly_once(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders, clock: FrozenClock
) -> None:
    ref = await open_case(client, name="Ada Lovelace", email=EMAIL)
    fake.script(
        "/v3/mail/send",
        Reply(503, {"errors": [{"message": "service unavailable"}]}),
        Reply(429, {"errors": [{"message": "too many requests"}]}, {"Retry-After": "30"}),
        HANG,
    )
    assert (await run_text(runtime, f"contact {ref} email", actor=AGENT, where=HERE)).ok
    outbox = worker(runtime)

    async def row() -> OutboxMessage:
        [found] = await contact_rows(runtime)
        return found

    await outbox.run_once(now=clock.now)  # 503: backoff 10 s
    first = await row()
    assert (first.status, first.attempts, first.next_attempt_at) == (
        "pending",
        1,
        clock.now + timedelta(seconds=10),
    )
    [contact] = await contacts(runtime)
    assert (contact.status, contact.attempts) == ("pending", 1)
    assert contact.result == "attempt 1 failed, retrying: 503 service unavailable"

    await outbox.run_once(now=clock.advance(seconds=10))  # 429: Retry-After 30 wins
    assert (await row()).next_attempt_at == clock.now + timedelta(seconds=30)
    await outbox.run_once(now=clock.advance(seconds=29))  # not due yet: nothing sent
    assert len(fake.requests()) == 2

    await outbox.run_once(now=clock.advance(seconds=1))  # held until the client's timeout
    [contact] = await contacts(runtime)
    assert contact.result is not None and "timed out" in contact.result
    await outbox.run_once(now=clock.advance(minutes=1))  # accepted
    requests = fake.requests()
    assert len(requests) == 4
    assert {r.headers["idempotency-key"] for r in requests} == {contact.idempotency_key}
    assert fake.accepted == {contact.idempotency_key: 1}
    [contact] = await contacts(runtime)
    assert (contact.status, contact.attempts) == ("sent", 4)
    assert [k for k, _ in await event_lines(runtime)].count("contact_sent") == 1


async def test_a_4xx_fails_once_and_shows_on_the_contact_row_and_the_card(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders, clock: FrozenClock
) -> None:
    ref = await open_case(client, name="Ada Lovelace", email="ada@invalid")
    fake.script("/v3/mail/send", invalid_email())
    assert (await run_text(runtime, f"contact {ref} email", actor=AGENT, where=HERE)).ok
    await worker(runtime).run_once(now=clock.now)
    await worker(runtime).run_once(now=clock.advance(hours=1))  # dead rows are never retried
    assert len(fake.requests()) == 1
    [contact] = await contacts(runtime)
    assert (contact.status, contact.attempts, contact.result) == ("failed", 1, "400 invalid email")
    [row] = await contact_rows(runtime)
    assert row.status == "dead"
    async with runtime.sessions() as session:
        reports = await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "report"))
        assert reports.first() is None  # told on the case's card and thread instead
        view = await load_case_view(
            session, int(ref.removeprefix("CX-")), config=runtime.config, now=clock.now
        )
    assert view is not None and (view.last_contact, view.contact_failed) == (
        "email failed: 400 invalid email",
        True,
    )
    assert (await event_lines(runtime))[-1] == (
        "contact_failed",
        f"{markup.alert('warning')} Message to the customer failed (Email via sendgrid): 400 invalid email",
    )
    # A failed attempt is still an attempt: the case may be resolved.
    assert (await run_text(runtime, f"resolve {ref} not-recovered", actor=AGENT, where=HERE)).ok


async def test_missing_secret_fails_the_contact_naming_the_variable(
    client: httpx.AsyncClient,
    runtime: Runtime,
    fake: FakeProviders,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SENDGRID_API_KEY")
    ref = await open_case(client, email=EMAIL)
    assert (await run_text(runtime, f"contact {ref} email", actor=AGENT, where=HERE)).ok
    await worker(runtime).run_once(now=clock.now)
    assert fake.requests() == []
    [contact] = await contacts(runtime)
    assert (contact.status, contact.result) == ("failed", "SENDGRID_API_KEY is not set on the server")


async def test_contact_refusals_say_why(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ref = await open_case(client, name="Ada Lovelace", email=EMAIL)
    denied = await run_text(runtime, f"contact {ref} email", actor=OUTSIDER, where=HERE)
    assert denied.text == (
        "Not allowed: only members of support can contact its customers; "
        "you are not listed in teams.support of the config"
    )
    no_phone = await run_text(runtime, f"contact {ref} sms", actor=AGENT, where=HERE)
    assert (no_phone.ok, no_phone.fix_field) == (False, "channel")
    assert (
        no_phone.text
        == f"cannot contact the customer of {ref} by sms: the customer has no phone number on record"
    )
    unknown = await run_text(runtime, f"contact {ref} email template:nope", actor=AGENT, where=HERE)
    assert unknown.text == "'nope' is not a template of support: apology, follow-up, callback"
    listing = await run_text(runtime, f"contact {ref}", actor=AGENT, where=HERE)
    assert listing.text.splitlines()[:3] == [
        f"Contact the customer of {ref}:",
        "• email: Email to a***@e***.com",
        "• webhook: Helpdesk to the helpdesk (helpdesk)",
    ]
    assert await contacts(runtime) == []
    await run_text(runtime, f"resolve {ref} could-not-contact wrong number", actor=AGENT, where=HERE)
    closed = await run_text(runtime, f"contact {ref} email", actor=AGENT, where=HERE)
    assert closed.text == f"{ref} is resolved; reopen it before contacting the customer"


async def test_resolve_needs_a_contact_attempt_or_the_reason(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ref = await open_case(client, name="Ada Lovelace", email=EMAIL)
    refused = await run_text(runtime, f"resolve {ref} recovered", actor=AGENT, where=HERE)
    assert (refused.ok, refused.fix_field) == (False, "outcome")
    assert refused.text == (
        f"{ref} cannot be resolved as recovered before the customer was contacted: contact them first "
        f"({markup.command(f'/cx contact {ref}')}), or resolve as could-not-contact with the reason"
    )
    no_reason = await run_text(runtime, f"resolve {ref} could-not-contact", actor=AGENT, where=HERE)
    assert no_reason.text.startswith("`could-not-contact` needs the reason")
    done = await run_text(
        runtime, f'resolve {ref} could-not-contact "bounced twice, no phone"', actor=AGENT, where=HERE
    )
    assert done.text == f"{ref} resolved as could-not-contact"
    case = await the_case(runtime)
    assert (case.state, case.outcome, case.no_contact_reason) == (
        "resolved",
        "could-not-contact",
        "bounced twice, no phone",
    )
    assert (await event_lines(runtime))[-1] == (
        "resolved",
        f"Resolved as could-not-contact (bounced twice, no phone) by {markup.person(AGENT.user_id)}",
    )


def test_contact_and_resolve_grammar() -> None:
    assert parse("contact CX-4") == Command("contact", 4)
    assert parse("contact CX-4 sms template:callback") == Command(
        "contact", 4, {"channel": "sms", "template": "callback", "text": None}
    )
    assert parse("contact 4 email Hello there") == Command(
        "contact", 4, {"channel": "email", "template": None, "text": "Hello there"}
    )
    assert parse("resolve CX-4 could-not-contact no phone") == Command(
        "resolve", 4, {"outcome": "could-not-contact", "root_cause": None, "reason": "no phone"}
    )
    with pytest.raises(CommandError, match="'fax' is not a channel: email, sms, webhook"):
        parse("contact CX-4 fax")


def test_contact_config_errors_have_paths() -> None:
    raw = {
        "teams": [
            {"key": "support", "name": "S", "contact": {"email": "mail", "sms": "mail", "webhook": "gone"}}
        ],
        "routing": {"fallback_team": "support"},
        "contact_providers": {
            "mail": {"type": "sendgrid", "api_key_env": "not-an-env", "from_email": "a@b.c"},
            "text": {"type": "twilio", "account_sid": "AC1", "from_number": "+1", "password": "x"},
        },
        "contact_templates": {"hello": {"body": "Hi $frist_name, about ${case_ref} $"}},
    }
    with pytest.raises(ConfigError) as raised:
        parse_config(raw)
    assert raised.value.errors == [
        "contact_providers.mail.api_key_env: 'not-an-env' is not an environment variable name "
        "(e.g. SENDGRID_API_KEY)",
        "contact_providers.text.password: unknown key",
        "contact_templates.hello.body: has a '$' that starts no field (write $$ for a dollar sign)",
        "teams[0].contact.sms: 'mail' is a sendgrid provider, which sends email, not sms",
        "teams[0].contact.webhook: 'gone' is not in contact_providers (known: mail, text)",
    ]
    raw["contact_templates"] = {"hello": {"body": "Hi $frist_name"}}
    with pytest.raises(ConfigError) as raised:
        parse_config({**raw, "contact_providers": {}, "teams": [{"key": "support", "name": "S"}]})
    assert raised.value.errors == [
        "contact_templates.hello.body: unknown field(s) $frist_name (fields are: $first_name, "
        "$customer_name, $case_ref, $team_name, $company, $touchpoint, $agent, $score, $metric)"
    ]


def test_webhook_body_is_stable_json() -> None:
    from cxbot.loop.contact.providers import OutgoingMessage, webhook_body

    message = OutgoingMessage(
        "webhook", None, "S", "B", "k1", "CX-1", "support", "contact", {"external_id": "c"}
    )
    assert json.loads(webhook_body(message))["idempotency_key"] == "k1"
    assert webhook_body(message) == webhook_body(message)
