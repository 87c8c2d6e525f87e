"""Teams dialogs through the real ASGI app: a case card's form buttons send signed `task/fetch` and
`task/submit` invokes (built from the recorded card invoke); each dialog's card validates against the
Adaptive Cards 1.5 schema, bad values come back as field errors with nothing changed, good ones change
the case once and the outbox PUTs its refreshed card. Plus Customer history and `cx home`."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import func, select

from cxbot.authz import actor_for
from cxbot.cases.overview import Overview
from cxbot.commands.dispatch import Where, run_text
from cxbot.models import Case, Contact
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from handlers.teams.dialogs import card_command
from tests.support.clock import FrozenClock
from tests.support.fake_microsoft import FIXTURES, FakeConnector, TeamsSender
from tests.support.platforms import platform_notifiers

SCHEMA = json.loads((FIXTURES / "adaptive-card-1.5.schema.json").read_text(encoding="utf-8"))
INSTALL = "20191019181214767-request"
CLICK = "20191020020654953-request"  # the recorded invoke from a card in the team's channel
CHANNEL_MESSAGE = "20191020020553704-request"
OUTSIDER = {"id": "29:1outsider", "name": "Outsider", "aadObjectId": "00000000-0000-4000-8000-0000000000ff"}
PERSONAL = {"conversationType": "personal", "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "id": "a:1me"}


def valid(card: dict[str, Any]) -> dict[str, Any]:
    """The card validates against the 1.5 schema (Teams-only `msteams` aside) and fits a message."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "msteams"}
        return [strip(v) for v in value] if isinstance(value, list) else value

    jsonschema.Draft6Validator(SCHEMA).validate(strip(copy.deepcopy(card)))
    assert len(json.dumps(card).encode()) < 28_000
    return card


def dialog_card(answer: dict[str, Any]) -> dict[str, Any]:
    task = answer["task"]
    assert task["type"] == "continue", task
    attached = task["value"]["card"]
    assert attached["contentType"] == "application/vnd.microsoft.card.adaptive"
    return valid(attached["content"])


def inputs(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in card["body"] if item["type"].startswith("Input.")}


def errors(card: dict[str, Any]) -> list[str]:
    return [item["text"] for item in card["body"] if item.get("color") == "attention"]


def submit_data(card: dict[str, Any], title: str) -> dict[str, Any]:
    return next(a["data"] for a in card["actions"] if a["title"] == title)


def invoke(teams: TeamsSender, name: str, data: dict[str, Any], *, ident: str, sender: Any = None) -> dict:
    """A dialog invoke: the recorded card invoke with the documented task module `name` and `value`."""
    activity = teams.activity(
        CLICK,
        id=ident,
        value={"type": name, "data": data, "context": {"theme": "default"}},
        **({"from": sender} if sender else {}),
    )
    activity["name"] = name
    return activity


class Dialogs:
    def __init__(self, teams: TeamsSender) -> None:
        self.teams, self.count = teams, 0

    async def send(self, name: str, data: dict[str, Any], sender: Any = None) -> dict[str, Any]:
        self.count += 1
        response = await self.teams.post(
            invoke(self.teams, name, data, ident=f"f:{self.count}", sender=sender)
        )
        assert response.status_code == 200 and "Traceback" not in response.text
        return response.json()

    async def fetch(self, button: dict[str, Any], sender: Any = None) -> dict[str, Any]:
        return await self.send("task/fetch", button["data"], sender)

    async def submit(
        self, card: dict[str, Any], button: str, sender: Any = None, /, **entered: Any
    ) -> dict[str, Any]:
        return await self.send("task/submit", {**submit_data(card, button), **entered}, sender)


@pytest.fixture
def dialogs(teams: TeamsSender) -> Dialogs:
    return Dialogs(teams)


@pytest.fixture
def worker(runtime: Runtime) -> OutboxWorker:
    return OutboxWorker(runtime, platform_notifiers(runtime))


async def posted_case(
    teams: TeamsSender, client: httpx.AsyncClient, worker: OutboxWorker, clock: FrozenClock, **extra: Any
) -> tuple[str, dict[str, Any]]:
    """A negative response's case, its card posted to the team's channel: (ref, its buttons by title)."""
    await teams.post(teams.activity(INSTALL))
    item = {"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    ref = (await client.post("/feedback", json={**item, **extra})).json()["results"][0]["case"]
    await worker.run_once(now=clock.now)
    [created] = teams.connector.calls("create")
    card = valid(created.body["activity"]["attachments"][0]["content"])
    return ref, {a["title"]: a for a in card["actions"]}


async def case_row(runtime: Runtime, ref: str) -> Case:
    async with runtime.sessions() as session:
        case = await session.get(Case, int(ref.removeprefix("CX-")))
        assert case is not None
        return case


async def refreshed(teams: TeamsSender, worker: OutboxWorker, clock: FrozenClock) -> str:
    """The case card the outbox PUT in place after the change."""
    await worker.run_once(now=clock.now)
    [update] = teams.connector.calls("update")
    return json.dumps(valid(update.body["attachments"][0]["content"]))


async def test_the_case_card_has_slacks_buttons(
    teams: TeamsSender, client: httpx.AsyncClient, worker: OutboxWorker, clock: FrozenClock
) -> None:
    _, buttons = await posted_case(
        teams, client, worker, clock, customer={"id": "c-1", "email": "a@example.com"}
    )
    assert list(buttons) == [
        "Acknowledge", "Take", "Reassign", "Contact customer", "Resolve", "Reveal", "Customer history"
    ]  # fmt: skip
    assert buttons["Resolve"]["type"] == "Action.Submit"
    assert buttons["Resolve"]["data"]["msteams"] == {"type": "task/fetch"}
    assert buttons["Customer history"]["data"]["command"] == "customer cust:1"  # our row ref, not CX-1
    assert buttons["Customer history"]["mode"] == "secondary"


async def test_snooze_dialog_checks_the_form_then_snoozes_and_the_card_is_refreshed(
    teams: TeamsSender,
    dialogs: Dialogs,
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ref, _ = await posted_case(teams, client, worker, clock)
    await teams.post(teams.activity(CHANNEL_MESSAGE, text=f"<at>My Combined</at> ack {ref}\n"))
    await worker.run_once(now=clock.now)
    teams.connector.script("update")
    button = {"data": {"msteams": {"type": "task/fetch"}, "cxDialog": "snooze", "cxCase": int(ref[3:])}}
    card = dialog_card(await dialogs.fetch(button))
    assert inputs(card)["duration"]["type"] == "Input.ChoiceSet" and inputs(card)["reason"]["isRequired"]

    again = dialog_card(await dialogs.submit(card, "Snooze", duration="9y", reason="  "))
    assert "Pick one of the snooze for offered" in errors(again)
    assert "A snooze needs a reason" in errors(again)
    assert (await case_row(runtime, ref)).snoozed_until is None

    before = len(teams.connector.calls("update"))
    done = await dialogs.submit(again, "Snooze", duration="4h", reason="waiting for [courier](x)")
    assert done["task"]["type"] == "message" and "snoozed" in done["task"]["value"]
    case = await case_row(runtime, ref)
    assert case.snoozed_until is not None and case.snooze_reason == "waiting for [courier](x)"
    await worker.run_once(now=clock.now)
    [update] = teams.connector.calls("update")[before:]
    shown = json.dumps(valid(update.body["attachments"][0]["content"]), ensure_ascii=False)
    assert "snoozed for" in shown and "[courier](" not in shown


async def test_resolve_dialog_shows_the_resolve_rule_on_its_field_then_resolves(
    teams: TeamsSender,
    dialogs: Dialogs,
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ref, buttons = await posted_case(teams, client, worker, clock)
    card = dialog_card(await dialogs.fetch(buttons["Resolve"]))
    assert set(inputs(card)) >= {"outcome", "reason"}

    no_contact = dialog_card(await dialogs.submit(card, "Resolve", outcome="recovered", reason=""))
    assert any("before the customer was contacted" in e for e in errors(no_contact))
    assert inputs(no_contact)["outcome"]["value"] == "recovered"  # what was entered stays
    why = dialog_card(await dialogs.submit(no_contact, "Resolve", outcome="could-not-contact", reason=""))
    assert "Say why the customer could not be contacted" in errors(why)
    assert (await case_row(runtime, ref)).state == "new"

    done = await dialogs.submit(why, "Resolve", outcome="could-not-contact", reason="no email on record")
    assert done["task"]["type"] == "message" and "resolved" in done["task"]["value"]
    assert (await case_row(runtime, ref)).state == "resolved"
    assert "could-not-contact" in await refreshed(teams, worker, clock)


async def test_an_outsider_is_refused_and_nothing_changes(
    teams: TeamsSender,
    dialogs: Dialogs,
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ref, buttons = await posted_case(
        teams, client, worker, clock, customer={"id": "c-1", "email": "a@example.com"}
    )
    for title in ("Reassign", "Contact customer"):
        refused = await dialogs.fetch(buttons[title], sender=OUTSIDER)
        assert refused["task"]["type"] == "message" and "Not allowed" in refused["task"]["value"]
    card = dialog_card(await dialogs.fetch(buttons["Resolve"], sender=OUTSIDER))
    refused = await dialogs.submit(card, "Resolve", OUTSIDER, outcome="could-not-contact", reason="none")
    assert refused["task"]["type"] == "message" and "Not allowed" in refused["task"]["value"]
    assert (await case_row(runtime, ref)).state == "new"
    forged = await dialogs.send("task/submit", {"cxDialog": "drop-tables", "cxCase": 1})
    assert forged["task"] == {"type": "message", "value": "This form is not one of cxbot's."}


async def test_reassign_offers_the_teams_people_and_assigns(
    teams: TeamsSender,
    dialogs: Dialogs,
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ref, buttons = await posted_case(teams, client, worker, clock)
    card = dialog_card(await dialogs.fetch(buttons["Reassign"]))
    offered = [c["value"] for c in inputs(card)["assignee"]["choices"]]
    assert "support-agent-1" in offered and "billing-agent" not in offered
    bad = dialog_card(await dialogs.submit(card, "Reassign", assignee="somebody-else"))
    assert errors(bad) and (await case_row(runtime, ref)).assignee is None
    done = await dialogs.submit(bad, "Reassign", assignee="support-agent-1")
    assert done["task"]["type"] == "message"
    assert (await case_row(runtime, ref)).assignee == "support-agent-1"


async def contacts(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Contact)) or 0)


async def test_contact_composer_previews_then_sends_once(
    teams: TeamsSender,
    dialogs: Dialogs,
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    customer = {"id": "c-1", "name": "Ada Lovelace", "email": "ada@example.com"}
    ref, buttons = await posted_case(teams, client, worker, clock, customer=customer)
    card = dialog_card(await dialogs.fetch(buttons["Contact customer"]))
    fields = inputs(card)
    assert "ada@example.com" not in json.dumps(card)
    assert fields["template"]["value"] == "apology" and "sorry" in fields["body"]["value"]

    preview = dialog_card(
        await dialogs.submit(card, "Preview", channel="email", template="follow-up", body="x")
    )
    assert "following up" in inputs(preview)["body"]["value"]  # a new template brings its own text
    assert "Following up on your feedback" in json.dumps(preview)
    typed = dialog_card(
        await dialogs.submit(
            preview, "Preview", channel="email", template="follow-up", body="Hello **there**"
        )
    )
    assert inputs(typed)["body"]["value"] == "Hello **there**"
    assert "Hello **there**" not in json.dumps(typed["body"][-1])  # the preview shows it literally

    empty = dialog_card(await dialogs.submit(typed, "Send", channel="", template="follow-up", body=" "))
    assert "Pick how to send it" in errors(empty) and "Write the message" in errors(empty)
    assert await contacts(runtime) == 0
    sent = await dialogs.submit(empty, "Send", channel="email", template="follow-up", body="Hello")
    assert sent["task"]["type"] == "message"
    twice = await dialogs.submit(empty, "Send", channel="email", template="follow-up", body="Hello")
    assert twice["task"]["type"] == "message"
    assert await contacts(runtime) == 1
    assert (await case_row(runtime, ref)).state == "contacted"


async def test_cx_new_opens_the_new_case_dialog(
    teams: TeamsSender, dialogs: Dialogs, connector_fake: FakeConnector, runtime: Runtime
) -> None:
    await teams.post(teams.activity(CHANNEL_MESSAGE, text="<at>My Combined</at> cx new\n"))
    [reply] = connector_fake.calls("reply")
    launcher = valid(reply.body["attachments"][0]["content"])
    [button] = launcher["actions"]
    card = dialog_card(await dialogs.fetch(button))
    assert inputs(card)["team"]["value"] == "support"  # the asker's one team
    bad = dialog_card(await dialogs.submit(card, "Open case", team="support", feedback="", title=""))
    assert "Give a feedback id, or a title below" in errors(bad)
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 0
    done = await dialogs.submit(
        bad, "Open case", team="support", title="Called <at>twice</at>", description=""
    )
    assert done["task"]["type"] == "message" and "CX-" in done["task"]["value"]
    async with runtime.sessions() as session:
        case = (await session.scalars(select(Case))).one()
    assert case.team_key == "support" and "twice" in case.title


async def test_customer_history_goes_to_the_clickers_personal_chat_under_the_reveal_rule(
    teams: TeamsSender,
    runtime: Runtime,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    customer = {"id": "c-1", "name": "Ada Lovelace", "email": "ada@example.com"}
    ref, buttons = await posted_case(teams, client, worker, clock, customer=customer)
    command = buttons["Customer history"]["data"]["command"]

    def click(ident: str, sender: Any = None) -> dict:
        activity = teams.activity(
            CLICK,
            id=ident,
            value={"action": {"type": "Action.Execute", "verb": "cx", "data": {"command": command}}},
            **({"from": sender} if sender else {}),
        )
        activity["name"] = "adaptiveCard/action"
        return activity

    answer = (await teams.post(click("h:1"))).json()
    assert answer["value"] == "Sent to your personal chat with cxbot."
    sent = [c for c in connector_fake.calls("send") if "Customer" in json.dumps(c.body)]
    assert "ada@example.com" in json.dumps(sent[-1].body)  # a manager of the owning team sees it
    # A card posted before cards named the customer by row ref still runs for the case's own customer.
    assert await card_command(runtime, f"customer {ref}") == "customer cust:1"
    outsider = (await teams.post(click("h:2", OUTSIDER))).json()
    assert outsider["value"] == "Sent to your personal chat with cxbot."
    shown = [c for c in connector_fake.calls("send") if "Customer" in json.dumps(c.body)][-1]
    assert "ada@example.com" not in json.dumps(shown.body) and "Ada Lovelace" not in json.dumps(shown.body)
    assert ref  # the case the button was on


async def test_cx_home_in_the_personal_chat_is_a_card_of_my_overview(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ref, _ = await posted_case(teams, client, worker, clock, comment="**bold** [x](https://evil.example)")
    await teams.post(teams.activity(CHANNEL_MESSAGE, text=f"<at>My Combined</at> take {ref}\n"))
    clock.advance(seconds=3 * 86400)
    await teams.post(
        teams.activity(
            CHANNEL_MESSAGE, id="home-1", text="home", conversation=PERSONAL, channelData={}, entities=[]
        )
    )
    reply = connector_fake.calls("reply")[-1]
    assert connector_fake.conversation_of(reply) == "a:1me"
    card = valid(reply.body["attachments"][0]["content"])
    shown = json.dumps(card, ensure_ascii=False)
    assert "Your open cases" in shown and "Overdue in support" in shown and shown.count(ref) == 2
    assert "Scores, last 7 days" in shown and "CSAT" in shown


async def test_cx_contact_alone_answers_with_the_composers_button(
    teams: TeamsSender,
    dialogs: Dialogs,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    ref, _ = await posted_case(teams, client, worker, clock, customer={"id": "c-1", "email": "a@example.com"})
    await teams.post(teams.activity(CHANNEL_MESSAGE, text=f"<at>My Combined</at> contact {ref}\n"))
    [reply] = connector_fake.calls("reply")
    [button] = valid(reply.body["attachments"][0]["content"])["actions"]
    assert button["data"]["cxDialog"] == "contact" and button["data"]["cxCase"] == int(ref[3:])
    assert "Send" in [a["title"] for a in dialog_card(await dialogs.fetch(button))["actions"]]


async def test_home_is_a_verb_every_platform_answers_with_the_same_overview_as_text(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    item = {"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
    ref = (await client.post("/feedback", json=item)).json()["results"][0]["case"]
    manager = actor_for(runtime.config, "console", "support-manager")
    reply = await run_text(runtime, "home", actor=manager, where=Where(platform="console"))
    assert reply.ok and isinstance(reply.report, Overview)
    lines = reply.text.splitlines()
    assert lines[0] == "Your open cases:" and "Nothing assigned to you." in lines
    assert "Overdue in support:" in lines and "Scores, last 7 days:" in lines
    assert ref not in reply.text  # neither assigned to the manager nor overdue yet


async def test_a_customer_view_typed_in_a_channel_goes_to_the_askers_personal_chat(
    teams: TeamsSender,
    client: httpx.AsyncClient,
    connector_fake: FakeConnector,
    worker: OutboxWorker,
    clock: FrozenClock,
) -> None:
    customer = {"id": "c-1", "name": "Ada Lovelace", "email": "ada@example.com"}
    ref, _ = await posted_case(teams, client, worker, clock, customer=customer)
    await teams.post(teams.activity(CHANNEL_MESSAGE, text=f"<at>My Combined</at> customer {ref}\n"))
    assert connector_fake.calls("reply") == []
    [sent] = [c for c in connector_fake.calls("send") if "ada@example.com" in json.dumps(c.body)]
    assert connector_fake.conversation_of(sent).startswith("a:1fake-personal")


@pytest.mark.parametrize(
    "data",
    [
        None,
        "snooze",
        {"cxDialog": "snooze"},
        {"cxDialog": "snooze", "cxCase": "1"},
        {"cxDialog": "snooze", "cxCase": 2**70},
        {"cxDialog": "resolve", "cxCase": True},
        {"cxDialog": ["new"]},
    ],
)
async def test_a_malformed_dialog_invoke_is_answered_with_a_message(
    dialogs: Dialogs, runtime: Runtime, data: Any
) -> None:
    for name in ("task/fetch", "task/submit"):
        answer = await dialogs.send(name, data)
        assert answer["task"] == {"type": "message", "value": "This form is not one of cxbot's."}


async def test_a_dialog_for_a_case_that_does_not_exist_says_so(dialogs: Dialogs) -> None:
    for name in ("task/fetch", "task/submit"):
        answer = await dialogs.send(name, {"cxDialog": "resolve", "cxCase": 999, "outcome": "recovered"})
        assert answer["task"]["type"] == "message" and "999" in answer["task"]["value"]
