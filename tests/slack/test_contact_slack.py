"""The contact composer and the resolve rule on Slack: signed requests through the real ASGI app, the
fake Slack Web API and fake providers on loopback, the real outbox worker between them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from cxbot.models import Case, Contact
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.contact_setup import contact_config, set_secrets
from tests.support.fake_providers import FakeProviders, invalid_email
from tests.support.fake_slack import (
    TEAM_ID,
    FakeSlack,
    SlackSender,
    from_sample,
    slack_sender,
    view_submission,
)
from tests.support.platforms import platform_notifiers

AGENT, OUTSIDER = "U0SUPAGT1", "U0LOGAGT1"
EMAIL, PHONE = "ada@example.com", "+44 20 7946 0000"
FORM = "application/x-www-form-urlencoded"


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


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def open_case(slack: SlackSender, **customer: str) -> int:
    response = await slack.http.post(
        "/feedback",
        json={
            "external_id": "neg-1",
            "source": "t",
            "metric": "csat",
            "score": 1,
            "touchpoint": "Inbound",
            "customer": {"id": "c-1", "name": "Ada Lovelace", **customer},
        },
    )
    return int(response.json()["results"][0]["case"].removeprefix("CX-"))


async def contacts(runtime: Runtime) -> list[Contact]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(Contact).order_by(Contact.id))).scalars())


async def the_case(runtime: Runtime) -> Case:
    async with runtime.sessions() as session:
        return (await session.execute(select(Case))).scalar_one()


def template_picked(view: dict[str, Any], *, template: str, channel: str) -> str:
    """The block_actions Slack sends when the composer's template select changes."""
    payload = from_sample(
        "BlockActionPayload.json",
        type="block_actions",
        user={"id": AGENT, "username": "sam", "name": "sam", "team_id": TEAM_ID},
        api_app_id="A0CXBOT01",
        token="legacy-verification-token",
        container={"type": "view", "view_id": "V0CXBOT01"},
        trigger_id="1337.44.abcd",
        team={"id": TEAM_ID, "domain": "cxbot-test"},
        view={
            "id": "V0CXBOT01",
            "hash": "1700000002.abc",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {
                "values": {
                    "channel": {"value": {"type": "static_select", "selected_option": {"value": channel}}}
                }
            },
        },
        actions=[
            {
                "action_id": "cx_contact_template",
                "block_id": "template",
                "type": "static_select",
                "selected_option": {"value": template},
                "action_ts": "1700000002.000001",
            }
        ],
        is_enterprise_install=False,
    )
    return urlencode({"payload": json.dumps(payload)})


def blocks_by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if "block_id" in b}


async def test_composer_from_the_card_sends_once_and_the_card_shows_it(
    slack: SlackSender, fake_slack: FakeSlack, fake: FakeProviders, runtime: Runtime, clock: FrozenClock
) -> None:
    case_id = await open_case(slack, email=EMAIL, phone=PHONE)
    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    await worker.run_once(now=clock.now)  # the opening card
    [card] = fake_slack.calls("chat.postMessage")
    buttons = [e for b in card.body["blocks"] if b["type"] == "actions" for e in b["elements"]]
    labels = {b["action_id"]: b["text"]["text"] for b in buttons if b["type"] == "button"}
    assert labels[f"cx_contact:{case_id}"] == "Contact customer"

    await slack.click(f"cx_contact:{case_id}", user=AGENT)
    [opened] = fake_slack.calls("views.open")
    view = opened.body["view"]
    assert (view["callback_id"], view["submit"]["text"]) == ("cx_contact_modal", "Send")
    blocks = blocks_by_id(view)
    assert [(o["value"], o["text"]["text"]) for o in blocks["channel"]["element"]["options"]] == [
        ("email", "Email to a***@e***.com"),
        ("sms", "SMS to •••00"),
        ("webhook", "Helpdesk to the helpdesk (helpdesk)"),
    ]
    assert blocks["template"]["element"]["initial_option"]["value"] == "apology"
    assert blocks["template"]["dispatch_action"] is True
    assert blocks["body:apology"]["element"]["initial_value"].startswith(
        "Hi Ada,\n\nThank you for telling us"
    )
    assert EMAIL not in json.dumps(view) and "7946" not in json.dumps(view)

    # Picking another template redraws the text and the preview in place (views.update).
    await slack.post(template_picked(view, template="callback", channel="sms"), FORM)
    [updated] = fake_slack.calls("views.update")
    assert (updated.body["view_id"], updated.body["hash"]) == ("V0CXBOT01", "1700000002.abc")
    redrawn = blocks_by_id(updated.body["view"])
    assert redrawn["body:callback"]["element"]["initial_value"].startswith(
        "Hi Ada,\n\nI'm sam from Customer Support"
    )
    assert redrawn["channel"]["element"]["initial_option"]["value"] == "sms"
    assert "Can we call you? (CX-1)" in redrawn["preview"]["elements"][0]["text"]

    text = "Hi Ada, I'm sorry about the missed call-back. Can I ring you at 3pm?"
    submit = view_submission(
        user=AGENT,
        callback_id="cx_contact_modal",
        private_metadata=view["private_metadata"],
        values={
            "channel": {"value": {"type": "static_select", "selected_option": {"value": "email"}}},
            "template": {
                "cx_contact_template": {"type": "static_select", "selected_option": {"value": "callback"}}
            },
            "body:callback": {"value": {"type": "plain_text_input", "value": text}},
        },
    )
    first = await slack.post(submit, FORM)
    replay = await slack.post(submit, FORM, retry_num=1)  # the same submission again: still one contact
    assert (first.status_code, first.text, replay.status_code) == (200, "", 200)
    [contact] = await contacts(runtime)
    assert (contact.channel, contact.template, contact.body, contact.created_by) == (
        "email",
        "callback",
        text,
        runtime.config.person_of(AGENT),
    )
    assert contact.idempotency_key == f"slack-view:{TEAM_ID}:V0CXMODAL"
    assert (await the_case(runtime)).state == "contacted"
    told = [c.body["text"] for c in fake_slack.calls("chat.postEphemeral")]
    assert told == [
        f"Message to the customer of CX-{case_id} queued (Email, template callback)",
        f"That message to the customer of CX-{case_id} was already sent",
    ]

    await worker.run_once(now=clock.advance(seconds=1))
    [request] = fake.requests()
    assert request.json()["subject"] == f"Can we call you? (CX-{case_id})"
    assert request.json()["content"] == [{"type": "text/plain", "value": text}]
    assert fake.accepted == {contact.idempotency_key: 1}
    last_card = json.dumps(fake_slack.calls("chat.update")[-1].body["blocks"])
    assert "*Last contact:* email sent 02 Nov 12:00 UTC" in last_card and "contacted" in last_card
    lines = [c.body["text"] for c in fake_slack.calls("chat.postMessage") if "thread_ts" in c.body]
    assert lines == [
        f"Contact with the customer queued by <@{AGENT}> (Email, template callback)",
        "Message to the customer sent (Email via sendgrid)",
    ]


async def test_a_rejected_email_shows_as_failed_on_the_card(
    slack: SlackSender, fake_slack: FakeSlack, fake: FakeProviders, runtime: Runtime, clock: FrozenClock
) -> None:
    case_id = await open_case(slack, email="ada@invalid")
    fake.script("/v3/mail/send", invalid_email())
    await slack.command(f"contact CX-{case_id} email", user=AGENT)
    assert fake_slack.responses()[-1]["text"].startswith(f"Message to the customer of CX-{case_id} queued")
    await OutboxWorker(runtime, platform_notifiers(runtime)).run_once(now=clock.now)
    [contact] = await contacts(runtime)
    assert (contact.status, contact.result) == ("failed", "400 invalid email")
    update = fake_slack.calls("chat.update")[-1].body
    assert ":warning: *Last contact:* email failed: 400 invalid email" in json.dumps(update["blocks"])
    lines = [c.body["text"] for c in fake_slack.calls("chat.postMessage") if "thread_ts" in c.body]
    assert lines[-1] == ":warning: Message to the customer failed (Email via sendgrid): 400 invalid email"
    # No generic report on a "contact" platform that nothing would deliver: the card is the report.
    assert all(
        "could not deliver" not in c.body.get("text", "") for c in fake_slack.calls("chat.postMessage")
    )


async def test_slash_contact_opens_the_composer_and_outsiders_are_told_no(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    case_id = await open_case(slack, email=EMAIL)
    await slack.command(f"contact CX-{case_id}", user=AGENT)
    [opened] = fake_slack.calls("views.open")
    assert opened.body["trigger_id"] == "1337.42.abcd"
    assert list(blocks_by_id(opened.body["view"])) == ["channel", "template", "body:apology", "preview"]
    await slack.click(f"cx_contact:{case_id}", user=OUTSIDER)
    assert fake_slack.responses()[-1]["text"].startswith("Not allowed: only members of support can contact")
    assert len(fake_slack.calls("views.open")) == 1
    assert await contacts(runtime) == []


def resolve_submission(private_metadata: str, outcome: str, reason: str | None = None) -> str:
    values: dict[str, dict[str, Any]] = {
        "outcome": {"value": {"type": "static_select", "selected_option": {"value": outcome}}},
    }
    if reason is not None:
        values["reason"] = {"value": {"type": "plain_text_input", "value": reason}}
    return view_submission(
        user=AGENT, callback_id="cx_resolve_modal", private_metadata=private_metadata, values=values
    )


async def test_resolve_modal_enforces_the_contact_rule_on_its_fields(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    case_id = await open_case(slack, email=EMAIL)
    await slack.click(f"cx_resolve:{case_id}", user=AGENT)
    [opened] = fake_slack.calls("views.open")
    metadata = opened.body["view"]["private_metadata"]
    assert "reason" in blocks_by_id(opened.body["view"])

    refused = await slack.post(resolve_submission(metadata, "recovered"), FORM)
    assert refused.json() == {
        "response_action": "errors",
        "errors": {
            "outcome": f"CX-{case_id} cannot be resolved as recovered before the customer was "
            f"contacted: contact them first (`/cx contact CX-{case_id}`), or resolve as could-not-contact "
            "with the reason"
        },
    }
    no_reason = await slack.post(resolve_submission(metadata, "could-not-contact", "  "), FORM)
    assert no_reason.json() == {
        "response_action": "errors",
        "errors": {"reason": "Say why the customer could not be contacted"},
    }
    assert (await the_case(runtime)).state == "new"

    done = await slack.post(resolve_submission(metadata, "could-not-contact", "number disconnected"), FORM)
    assert (done.status_code, done.text) == (200, "")
    case = await the_case(runtime)
    assert (case.state, case.no_contact_reason) == ("resolved", "number disconnected")
