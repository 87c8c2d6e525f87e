"""`POST /api/messages` through the real ASGI app: signed activities built from recorded Teams traffic,
the fake identity platform and Bot Connector on loopback."""

from __future__ import annotations

import logging

import jwt
import pytest
from sqlalchemy import func, select

from cxbot.commands.dispatch import Reply
from cxbot.models import Case, ChatConversation, InboundEvent, TeamDestination
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from handlers.teams.app import build_deps, post_reply, teams_routes
from tests.conftest import API_KEY
from tests.support.fake_microsoft import APP_PASSWORD, FakeConnector, TeamsSender
from tests.teams.conftest import ADMIN

CHANNEL_MESSAGE = "20191020020553704-request"  # "<at>My Combined</at>1" in a channel
INSTALL = "20191019181214767-request"  # conversationUpdate, teamMemberAdded
CHANNEL_ROOT = "19:097e6717fd7245bdbeba6baa13840db8@thread.skype"
THREAD = CHANNEL_ROOT + ";messageid=1571537152320"
SENDER = "6b703ce3-6d14-4fe6-b90c-dc5f03657ae4"


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def mentioned(teams: TeamsSender, text: str) -> dict:
    return teams.activity(CHANNEL_MESSAGE, text=f"<at>My Combined</at> {text}\n")


async def test_a_mention_in_a_channel_runs_the_command_and_replies_in_its_thread(
    teams: TeamsSender, connector_fake: FakeConnector, runtime: Runtime
) -> None:
    response = await teams.post(mentioned(teams, "cx help"))
    assert response.status_code == 200
    [reply] = connector_fake.calls("reply")
    assert connector_fake.conversation_of(reply) == THREAD
    assert reply.path.endswith("/activities/1571537152320")
    assert reply.headers["authorization"] == "Bearer bot-token-1"
    assert reply.body["type"] == "message" and reply.body["textFormat"] == "markdown"
    assert "ack" in reply.body["text"] and "<at>" not in reply.body["text"]
    async with runtime.sessions() as session:
        stored = (await session.scalars(select(ChatConversation))).one()
    assert (stored.platform, stored.conversation_id, stored.kind) == ("msteams", CHANNEL_ROOT, "channel")
    assert stored.reference["serviceUrl"] == connector_fake.service_url
    assert stored.reference["tenantId"] == "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize("typed", ["help", "/cx help", "CX help"])
async def test_cx_is_optional(teams: TeamsSender, connector_fake: FakeConnector, typed: str) -> None:
    await teams.post(mentioned(teams, typed))
    [reply] = connector_fake.calls("reply")
    assert "ack" in reply.body["text"]


async def test_malformed_input_answers_the_usage_line(
    teams: TeamsSender, connector_fake: FakeConnector
) -> None:
    await teams.post(mentioned(teams, "ack"))
    [reply] = connector_fake.calls("reply")
    assert "Usage" in reply.body["text"] and "ack CX" in reply.body["text"].replace("\\", "")


async def test_a_redelivered_activity_acts_once(
    teams: TeamsSender, connector_fake: FakeConnector, runtime: Runtime
) -> None:
    activity = mentioned(teams, "help")
    assert (await teams.post(activity)).status_code == 200
    assert (await teams.post(activity)).status_code == 200
    assert len(connector_fake.calls("reply")) == 1
    assert await count(runtime, InboundEvent) == 1


async def test_install_stores_the_conversation_reference(
    teams: TeamsSender, connector_fake: FakeConnector, runtime: Runtime
) -> None:
    assert (await teams.post(teams.activity(INSTALL))).status_code == 200
    assert connector_fake.calls() == []
    async with runtime.sessions() as session:
        stored = (await session.scalars(select(ChatConversation))).one()
    assert stored.conversation_id == CHANNEL_ROOT
    assert stored.reference["teamId"] == CHANNEL_ROOT


async def test_a_personal_chat_is_remembered_for_its_person(
    teams: TeamsSender, connector_fake: FakeConnector, runtime: Runtime
) -> None:
    personal = {
        "conversationType": "personal",
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "id": "a:1personal",
    }
    await teams.post(
        teams.activity(CHANNEL_MESSAGE, text="list", conversation=personal, channelData={}, entities=[])
    )
    [reply] = connector_fake.calls("reply")
    assert connector_fake.conversation_of(reply) == "a:1personal"
    async with runtime.sessions() as session:
        stored = (await session.scalars(select(ChatConversation))).one()
    assert (stored.kind, stored.user_id) == ("personal", SENDER)


async def test_team_link_in_a_channel_binds_it_for_admins_only(
    teams: TeamsSender, connector_fake: FakeConnector, runtime: Runtime
) -> None:
    admin = {"id": "29:1admin", "name": "Admin", "aadObjectId": ADMIN}
    await teams.post(teams.activity(CHANNEL_MESSAGE, id="2", text="<at>My Combined</at> team link billing"))
    await teams.post(
        teams.activity(
            CHANNEL_MESSAGE, id="3", text="<at>My Combined</at> team link billing", **{"from": admin}
        )
    )
    personal = {
        "conversationType": "personal",
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "id": "a:1admin",
    }
    await teams.post(
        teams.activity(
            CHANNEL_MESSAGE,
            id="4",
            text="team link billing",
            conversation=personal,
            channelData={},
            entities=[],
            **{"from": admin},
        )
    )
    refused, linked, in_chat = (c.body["text"] for c in connector_fake.calls("reply"))
    assert "only admins" in refused and "billing" in linked and "Not allowed" not in linked
    assert "channel" in in_chat
    async with runtime.sessions() as session:
        bound = await session.scalar(
            select(TeamDestination).where(
                TeamDestination.team_key == "billing", TeamDestination.platform == "msteams"
            )
        )
    assert bound is not None and bound.address == CHANNEL_ROOT and bound.linked_by == ADMIN
    assert bound.reference["serviceUrl"] == connector_fake.service_url


REFUSED = {
    "no token": {"authorization": None},
    "not a JWT": {"authorization": "Bearer nope"},
    "wrong audience": {"aud": "another-bot"},
    "wrong issuer": {"iss": "https://sts.windows.net/evil/"},
    "expired": {"lifetime": -400},
    "serviceurl mismatch": {"serviceurl": "https://evil.example/amer/"},
    "unknown key": {"kid": "key-not-published"},
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_bad_tokens_are_401_and_change_nothing(
    teams: TeamsSender, connector_fake: FakeConnector, runtime: Runtime, case: str
) -> None:
    response = await teams.post(mentioned(teams, "help"), **REFUSED[case])
    assert response.status_code == 401
    assert "error" in response.json() and "Traceback" not in response.text
    assert connector_fake.calls() == []
    assert await count(runtime, InboundEvent) == 0
    assert await count(runtime, ChatConversation) == 0


async def test_hs256_signed_with_the_app_password_is_refused(teams: TeamsSender, runtime: Runtime) -> None:
    activity = mentioned(teams, "help")
    claims = {
        "iss": "https://api.botframework.com",
        "aud": "x",
        "exp": 4102444800,
        "serviceurl": activity["serviceUrl"],
    }
    forged = jwt.encode(claims, APP_PASSWORD, algorithm="HS256", headers={"kid": "key-1"})
    assert (await teams.post(activity, authorization=f"Bearer {forged}")).status_code == 401
    assert await count(runtime, InboundEvent) == 0


async def test_a_body_that_is_not_an_activity_is_a_400(teams: TeamsSender) -> None:
    token = teams.identity.mint(service_url=teams.connector.service_url)
    response = await teams.http.post(
        "/api/messages", content=b"{not json", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400
    response = await teams.post({"serviceUrl": teams.connector.service_url, "channelId": "msteams"})
    assert response.status_code == 400
    for bad in ({"channelData": []}, {"from": "x"}, {"conversation": {"id": 7}}, {"entities": {}}):
        response = await teams.post(mentioned(teams, "help") | bad)
        assert response.status_code == 400 and "Traceback" not in response.text


async def test_a_private_reply_in_a_channel_goes_to_the_askers_personal_chat(
    teams: TeamsSender, connector_fake: FakeConnector, runtime: Runtime
) -> None:
    deps = build_deps(runtime)
    await post_reply(deps, mentioned(teams, "reveal CX-1"), Reply("customer: ann@example.com", private=True))
    assert connector_fake.calls("reply") == []
    [created] = connector_fake.calls("create")
    assert created.body["isGroup"] is False and created.body["members"][0]["id"].startswith("29:")
    [sent] = connector_fake.calls("send")
    assert "ann@example" in sent.body["text"]


async def test_without_credentials_serve_logs_one_line_naming_them(
    runtime: Runtime, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.settings = settings.model_copy(update={"teams_app_password": None, "teams_tenant_id": None})
    with caplog.at_level(logging.INFO, logger="handlers.teams"):
        assert teams_routes(runtime) == []
    [line] = [r.getMessage() for r in caplog.records if r.name == "handlers.teams"]
    assert "TEAMS_APP_PASSWORD, TEAMS_TENANT_ID" in line


async def test_a_person_of_the_config_is_the_same_person_on_teams(
    teams: TeamsSender, connector_fake: FakeConnector, runtime: Runtime
) -> None:
    """`people.support-manager.msteams` acts through Teams as the support manager: the case records
    the person's key, and the reply mentions them as a Teams `<at>` mention of their Entra id."""
    manager = runtime.config.people["support-manager"]
    opened = await teams.http.post(
        "/feedback",
        json={"external_id": "t-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    ref = opened.json()["results"][0]["case"]
    sender = {"id": "29:1sam", "name": manager.name, "aadObjectId": manager.msteams}
    await teams.post(mentioned(teams, f"ack {ref}") | {"id": "sam-1", "from": sender})
    await teams.post(mentioned(teams, f"ack {ref}") | {"id": "sam-2", "from": sender})
    async with runtime.sessions() as session:
        case = (await session.scalars(select(Case))).one()
    assert (case.state, case.acknowledged_by) == ("acknowledged", "support-manager")
    first, again = (c.body for c in connector_fake.calls("reply"))
    assert first["text"] == f"{ref} acknowledged"
    assert again["text"] == f"{ref} was already acknowledged by <at>{manager.name}</at>"
    assert again["entities"] == [
        {
            "type": "mention",
            "text": f"<at>{manager.name}</at>",
            "mentioned": {"id": manager.msteams, "name": manager.name},
        }
    ]
