"""The Teams notifier's proactive messages against the fake Bot Connector: escalation notices to a
person's 1:1 chat (created when none is stored), digests and reports as text in the channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cxbot import markup
from cxbot.outbox.contract import Delivery, PermanentDeliveryError
from handlers.teams.connector import BotConnector
from handlers.teams.notifier import TeamsNotifier
from handlers.teams.tokens import TokenProvider
from tests.support.fake_microsoft import APP_ID, APP_PASSWORD, TENANT_ID, FakeConnector, FakeIdentity

PERSON = "c87bdf38-be54-466a-bd67-4029da348cc4"
CHANNEL = "19:2f7c0d1e5b2a4c4f9a1e3b0c6d5e4f3a@thread.tacv2"


def delivery(kind: str, destination: str | None, **payload: Any) -> Delivery:
    return Delivery(id=1, kind=kind, platform="msteams", destination=destination, payload=payload, attempt=1)


@pytest.fixture
async def notifier_for(identity: FakeIdentity, connector_fake: FakeConnector) -> AsyncIterator[Any]:
    async with httpx.AsyncClient() as http:
        tokens = TokenProvider(
            http, login_url=identity.login_url, tenant_id=TENANT_ID, app_id=APP_ID, password=APP_PASSWORD
        )

        def build(personal: dict[str, Any] | None = None) -> TeamsNotifier:
            async def channel_reference(conversation_id: str) -> dict[str, Any] | None:
                return None  # never spoken to there: the configured service URL is used

            async def personal_reference(user_id: str) -> dict[str, Any] | None:
                return personal

            return TeamsNotifier(
                BotConnector(http, tokens),
                channel_reference=channel_reference,
                personal_reference=personal_reference,
                service_url=connector_fake.service_url,
                tenant_id=TENANT_ID,
                bot_id=f"28:{APP_ID}",
            )

        yield build


async def test_an_escalation_to_a_person_without_a_chat_creates_one(
    notifier_for: Any, connector_fake: FakeConnector
) -> None:
    text = f"{markup.alert('urgent')} CX-7 is overdue: {markup.person(PERSON)} please look"
    result = await notifier_for().deliver(delivery("escalation.dm", PERSON, case_id=7, event_id=1, text=text))
    [created] = connector_fake.calls("create")
    assert created.body["isGroup"] is False and created.body["members"] == [{"id": PERSON}]
    assert created.body["tenantId"] == TENANT_ID and created.body["bot"] == {"id": f"28:{APP_ID}"}
    [sent] = connector_fake.calls("send")
    assert connector_fake.conversation_of(sent) == result["conversation"]
    assert sent.body["text"].startswith("🚨 CX-7 is overdue: <at>")
    assert sent.body["entities"][0]["mentioned"]["id"] == PERSON


async def test_an_escalation_to_a_known_chat_reuses_it(
    notifier_for: Any, connector_fake: FakeConnector
) -> None:
    known = {"serviceUrl": connector_fake.service_url, "conversation": {"id": "a:1known"}}
    await notifier_for(known).deliver(delivery("escalation.dm", PERSON, text="CX-7 is overdue"))
    assert connector_fake.calls("create") == []
    [sent] = connector_fake.calls("send")
    assert connector_fake.conversation_of(sent) == "a:1known"


async def test_digests_and_reports_are_text_in_the_channel(
    notifier_for: Any, connector_fake: FakeConnector
) -> None:
    notifier = notifier_for()
    await notifier.deliver(delivery("digest", CHANNEL, text="Support: CSAT 82% <b>up</b>", scope="support"))
    await notifier.deliver(delivery("report", CHANNEL, text="a message could not be delivered", dead_id=3))
    sent = connector_fake.calls("send")
    assert [connector_fake.conversation_of(c) for c in sent] == [CHANNEL, CHANNEL]
    assert "&lt;b&gt;up&lt;/b&gt;" in sent[0].body["text"]


async def test_a_row_without_destination_is_permanent(notifier_for: Any) -> None:
    with pytest.raises(PermanentDeliveryError) as failed:
        await notifier_for().deliver(delivery("report", None, text="x"))
    assert failed.value.scope == "destination"
