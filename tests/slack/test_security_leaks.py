"""Issue #11, the leaks class: customer PII and customer-written Slack markup never leave the bot live.

A customer whose id is their email, another whose id is a phone number, and a survey tool that falls
back to the email as id send feedback whose touchpoint, comment and tags carry hostile markup. Then
Slack users drive the real server (signed slash commands, clicks, App Home, a hand-typed case, a note,
digests) and an integrator reads the API. :class:`tests.support.leaks.LeakScanner` walks everything
that left: every Web API call and `response_url` answer the fake Slack recorded, and every API answer.
Property tests pin the Slack escaping the renderers rely on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from cxbot.cases.escalation import tick as escalation_tick
from cxbot.config import Config
from cxbot.digest.posting import tick
from cxbot.models import Case, Customer
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from handlers.slack.blocks import defuse, escape, outgoing, unescape
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.fake_slack import BOT_USER, FakeSlack, SlackSender, slack_sender
from tests.support.leaks import LeakScanner
from tests.support.platforms import platform_notifiers

#: What a respondent or a survey tool controls: touchpoints, comments, tags, hidden fields.
HOSTILE = "<!channel> <http://evil.example|Reset your password> <@U0EVIL99> <#C0EVIL99> <!here|here>"
#: What a member may type in a note: their mentions of colleagues stay live, nothing else does.
MEMBER_MARKUP = "<!here> <!channel> <http://evil.example|Reset your password>"
ADA_EMAIL, ADA_PHONE = "ada.lovelace@example.com", "+44 20 7946 0958"
PHONE_ID = "+14155550199"
GRACE_EMAIL = "grace.hopper@example.org"
DELIGHTED_SECRET = "d3l1ght3d-private-api-key"
ENGINEER, PRODUCT_MANAGER, OUTSIDER, LOGISTICS_AGENT = "U0PROENG1", "U0PROMGR1", "U0NOBODY1", "U0LOGAGT1"
FORM = "application/x-www-form-urlencoded"
RECEIVED = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
#: 10:00 in Los Angeles on 3 November: product's digest (of 2 November) is due, and every other team's.
DIGESTS_DUE = datetime(2026, 11, 3, 18, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def delighted_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIGHTED_WEBHOOK_SECRET", DELIGHTED_SECRET)


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


def people_the_bot_names(config: Config) -> set[str]:
    """Everyone and every channel the bot itself may mention live: configured people, the callers."""
    named = {BOT_USER, ENGINEER, PRODUCT_MANAGER, OUTSIDER, LOGISTICS_AGENT, *config.admins}
    for team in config.teams:
        named |= {*team.members, *team.managers, *team.escalation.contacts}
        named |= {c for c in (team.slack.channel, team.escalation.channel) if c}
    # Role lists name people keys: the bot mentions each person by their Slack id.
    return named | {person.slack for person in config.people.values() if person.slack}


def scanner(config: Config) -> LeakScanner:
    return LeakScanner(phones=[ADA_PHONE, PHONE_ID], allowed_mentions=people_the_bot_names(config))


def feedback_items() -> list[dict[str, Any]]:
    """Ada (her email is her id) with one negative and 15 more answers, so her view has pages; a
    customer whose id is a phone number."""
    ada = {"id": ADA_EMAIL, "name": "Ada Lovelace", "email": ADA_EMAIL, "phone": ADA_PHONE}
    items: list[dict[str, Any]] = [
        {
            "external_id": "leak-1",
            "source": "api-test",
            "metric": "nps",
            "score": 1,
            "touchpoint": HOSTILE,
            "comment": f"Awful. {HOSTILE} ring {ADA_PHONE} or write {ADA_EMAIL}",
            "customer": ada,
            "tags": ["<!everyone>"],
            "received_at": RECEIVED.isoformat(),
        },
        {
            "external_id": "leak-2",
            "source": "api-test",
            "metric": "csat",
            "score": 1,
            "touchpoint": f"{HOSTILE} {PHONE_ID}",
            "comment": f"{HOSTILE} call me back on {PHONE_ID}",
            "customer": {"id": PHONE_ID, "phone": PHONE_ID},
            "received_at": RECEIVED.isoformat(),
        },
    ]
    items += [
        {
            "external_id": f"leak-ok-{n}",
            "source": "api-test",
            "metric": "nps",
            "score": 9,
            "touchpoint": "website",
            "comment": f"fine {n} {HOSTILE}",
            "customer": ada,
            "received_at": RECEIVED.replace(hour=n % 12).isoformat(),
        }
        for n in range(15)
    ]
    return items


def delighted_body() -> bytes:
    """A Delighted response whose person has no id: the provider falls back to the email as id."""
    return json.dumps(
        {
            "event_type": "survey_response.updated",
            "event_id": "ev-leak-1",
            "event_data": {
                "id": "leak-delighted-1",
                "person": {"email": GRACE_EMAIL, "name": "Grace Hopper"},
                "score": 2,
                "comment": f"{HOSTILE} reach me at {GRACE_EMAIL}",
                "created_at": int(RECEIVED.timestamp()),
                "updated_at": int(RECEIVED.timestamp()),
                "person_properties": {"touchpoint": HOSTILE},
                "notes": [],
                "tags": [],
            },
        }
    ).encode()


async def ingest(slack: SlackSender) -> None:
    response = await slack.http.post("/feedback", json=feedback_items())
    assert response.status_code in (200, 201, 207), response.text
    body = delighted_body()
    signature = hmac.new(DELIGHTED_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = await slack.http.post(
        "/webhooks/delighted",
        content=body,
        headers={"X-Delighted-Webhook-Signature": signature, "Content-Type": "application/json"},
    )
    assert response.status_code in (200, 201, 207), response.text


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        e["action_id"]: e
        for b in message.get("blocks", [])
        if b["type"] in ("actions", "section")
        for e in (b.get("elements") or ([b["accessory"]] if "accessory" in b else []))
    }


async def test_nothing_that_leaves_carries_pii_or_live_markup_from_outside(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    await ingest(slack)
    async with runtime.sessions() as session:
        cases = list((await session.execute(select(Case).order_by(Case.id))).scalars())
        ids = dict((await session.execute(select(Customer.external_id, Customer.id))).all())
    assert len(cases) == 3 and set(ids) == {ADA_EMAIL, PHONE_ID, GRACE_EMAIL}
    refs = [c.ref for c in cases]
    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    await worker.run_once(now=clock.now)  # the three cards

    # A hand-typed case and a note with an address and markup in them, by a member of the team.
    team = cases[0].team_key
    member = next(iter(runtime.config.team(team).members))
    await slack.command(f"new {team} call {ADA_EMAIL} on {ADA_PHONE} {HOSTILE}", user=member)
    await slack.command(f"note {refs[0]} she wrote from {ADA_EMAIL} {MEMBER_MARKUP}", user=member)
    await slack.click(f"cx_take:{cases[0].id}", user=member)
    # An assignee typed with markup after a real id (issue #11, defect 5): never a live `<!channel>`.
    await slack.command(f"assign {refs[1]} {member}>|<!channel>", user=member)
    await slack.click(f"cx_contact:{cases[0].id}", user=member)  # the composer modal
    await worker.run_once(now=clock.now)  # card refreshes and thread lines

    for text in ("list all", "list new", f"list team {team}", *(f"show {ref}" for ref in refs)):
        await slack.command(text, user=member)
    for ident in (ADA_EMAIL, PHONE_ID, GRACE_EMAIL, refs[0]):
        await slack.command(f"customer {ident}", user=OUTSIDER)
        await slack.command(f"customer {ident}", user=LOGISTICS_AGENT)
    # Ada's view pages: the Older button names her by the bot's reference, and a click follows it.
    ada_page = next(r for r in fake_slack.responses() if "cx_customer_page:older" in buttons(r))
    older = buttons(ada_page)["cx_customer_page:older"]["value"]
    assert re.fullmatch(rf"customer cust:{ids[ADA_EMAIL]} before:\S+", older)
    await slack.post(slack.block_action("cx_customer_page:older", user=OUTSIDER, value=older), FORM)
    await slack.post(
        slack.block_action(f"cx_customer:{cases[0].id}", user=OUTSIDER, value=str(cases[0].id)), FORM
    )
    await slack.post(slack.app_home_opened(user=member, event_id="Ev0LEAKS01"), "application/json")

    clock.now = DIGESTS_DUE
    await slack.command(f"digest {team} preview", user=member)
    await tick(runtime, now=DIGESTS_DUE, claimed_by="leaks")
    await escalation_tick(runtime, now=DIGESTS_DUE)  # a day late: managers get DMs quoting the titles
    await worker.run_once(now=DIGESTS_DUE)

    calls = fake_slack.calls()
    methods = {c.method for c in calls}
    assert {"chat.postMessage", "chat.update", "respond", "views.publish", "views.open"} <= methods
    scanned = scanner(runtime.config).assert_clean((f"{c.method}#{n}", c.body) for n, c in enumerate(calls))
    assert scanned == len(calls) >= 25

    # Not vacuous: the masked forms and the escaped markup are there for people to read.
    sent = json.dumps([c.body for c in calls], ensure_ascii=False)
    assert "a***@e***.com" in sent and "g***@e***.org" in sent and "•••99" in sent
    assert "&lt;!channel&gt;" in sent
    digest_posts = [
        c.body for c in fake_slack.calls("chat.postMessage") if c.body.get("channel") == "C0PRODUCT1"
    ]
    assert any("CX digest" in json.dumps(p) for p in digest_posts)
    direct = [
        c.body for c in fake_slack.calls("chat.postMessage") if c.body.get("channel") == PRODUCT_MANAGER
    ]
    assert direct and all("&lt;!channel&gt;" in d["text"] for d in direct if "CX-3" in d["text"])


async def test_api_answers_carry_no_pii(slack: SlackSender, runtime: Runtime) -> None:
    await ingest(slack)
    async with runtime.sessions() as session:
        team = (await session.execute(select(Case.team_key).limit(1))).scalar_one()
    member = runtime.config.team(team).members[0]
    await slack.command(f"new {team} call {ADA_EMAIL} on {ADA_PHONE}", user=member)
    answers = []
    for path in ("/api/cases", "/api/cases?state=open", f"/api/cases?team={team}", "/api/scores"):
        response = await slack.http.get(path)
        assert response.status_code == 200, response.text
        answers.append((path, response.json()))
    titles = [c["title"] for c in answers[0][1]["cases"]]
    assert len(titles) == 4 and any("a***@e***.com" in t and "•••58" in t for t in titles)
    scanner(runtime.config).assert_clean(answers, chat=False)


async def test_case_card_shows_an_address_id_masked_and_carries_it_nowhere(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    await ingest(slack)
    await OutboxWorker(runtime, platform_notifiers(runtime)).run_once(now=clock.now)
    cards = [c.body for c in fake_slack.calls("chat.postMessage") if "blocks" in c.body]
    fields = [
        f["text"]
        for card in cards
        for b in card["blocks"]
        if b["type"] == "section"
        for f in b.get("fields", [])
    ]
    customers = sorted(f for f in fields if f.startswith("*Customer*"))
    assert customers == [
        "*Customer*\na***@e***.com · A. L. · a***@e***.com · •••58",
        "*Customer*\ng***@e***.org · G. H. · g***@e***.org",
        "*Customer*\n•••99 · •••99",
    ]
    values = [e["value"] for card in cards for e in buttons(card).values() if e["type"] == "button"]
    # Buttons carry our ids only: a case id, or the customer's row ref (`customer cust:17`).
    assert values and all(v.isdigit() or re.fullmatch(r"customer cust:[0-9]+", v) for v in values)


# -- the escaping the renderers rely on -----------------------------------------------------------

MARKUP = st.sampled_from(
    [
        "<",
        ">",
        "&",
        "&lt;",
        "&amp;",
        "<!channel>",
        "<!here|here>",
        "<@U0EVIL99>",
        "<#C0EVIL99|x>",
        "<http://evil.example|Reset your password>",
        "<mailto:a@b.c|x>",
        "|",
        "@",
        "!",
        "\n",
        "*",
        "`",
    ]
)
TEXT = st.lists(st.one_of(MARKUP, st.text(max_size=8)), max_size=12).map("".join)
LIVE = LeakScanner(allowed_mentions=())


@given(TEXT)
def test_escaping_round_trips_and_leaves_nothing_live(text: str) -> None:
    escaped = escape(text)
    assert unescape(escaped) == text
    assert "<" not in escaped and ">" not in escaped
    assert not [f for f in LIVE.scan({"text": escaped}) if "email" not in f.what]
    assert defuse(escaped) == escaped  # the boundary never double-escapes what a renderer escaped


@given(TEXT)
def test_defused_core_text_keeps_only_mentions_live(text: str) -> None:
    defused = defuse(text)
    assert defuse(defused) == defused
    assert all(
        re.match(r"<[@#][UWC][A-Z0-9]+(\|[^<>]*)?>", defused[i:]) for i, c in enumerate(defused) if c == "<"
    )
    findings = LIVE.scan(
        outgoing({"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]})
    )
    assert not [f for f in findings if f.what in ("live Slack command", "live link")]
