"""The bot's outbound side: client-credentials tokens and the Bot Connector client, against fakes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from handlers.teams.connector import BotConnector
from handlers.teams.errors import (
    TeamsActivityNotFound,
    TeamsPermanentError,
    TeamsRateLimited,
    TeamsServerError,
)
from handlers.teams.tokens import SCOPE, TokenProvider
from tests.support.fake_microsoft import (
    APP_ID,
    APP_PASSWORD,
    TENANT_ID,
    Answer,
    FakeConnector,
    FakeIdentity,
    connector_error,
    recording,
)

CHANNEL = "19:097e6717fd7245bdbeba6baa13840db8@thread.skype;messageid=1571537152320"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def tokens(identity: FakeIdentity, clock: Clock) -> AsyncIterator[TokenProvider]:
    async with httpx.AsyncClient() as http:
        yield TokenProvider(
            http, login_url=identity.login_url, tenant_id=TENANT_ID, app_id=APP_ID, password=APP_PASSWORD,
            monotonic=clock,
        )  # fmt: skip


@pytest.fixture
async def connector(tokens: TokenProvider) -> AsyncIterator[BotConnector]:
    async with httpx.AsyncClient(timeout=2.0) as http:
        yield BotConnector(http, tokens)


async def test_the_token_is_asked_once_and_cached_until_shortly_before_expiry(
    identity: FakeIdentity, tokens: TokenProvider, clock: Clock
) -> None:
    first = await asyncio.gather(*(tokens.token() for _ in range(5)))
    assert set(first) == {"bot-token-1"}
    [call] = identity.calls("token")
    assert call.path == f"/{TENANT_ID}/oauth2/v2.0/token"
    assert call.body == {
        "grant_type": "client_credentials",
        "client_id": APP_ID,
        "client_secret": APP_PASSWORD,
        "scope": SCOPE,
    }
    clock.now += 3600 - 301
    assert await tokens.token() == "bot-token-1"
    clock.now += 2
    assert await tokens.token() == "bot-token-2"


async def test_a_wrong_secret_is_a_credentials_error(identity: FakeIdentity) -> None:
    async with httpx.AsyncClient() as http:
        tokens = TokenProvider(
            http, login_url=identity.login_url, tenant_id=TENANT_ID, app_id=APP_ID, password="x"
        )
        with pytest.raises(TeamsPermanentError) as refused:
            await tokens.token()
    assert (refused.value.scope, refused.value.code) == ("credentials", "invalid_client")


async def test_a_login_outage_is_transient(identity: FakeIdentity, tokens: TokenProvider) -> None:
    identity.script("token", Answer(503, {"error": "temporarily_unavailable"}))
    with pytest.raises(TeamsServerError):
        await tokens.token()
    assert await tokens.token() == "bot-token-1"


async def test_the_four_calls_hit_the_swagger_routes_with_the_bot_token(
    connector_fake: FakeConnector, connector: BotConnector
) -> None:
    url = connector_fake.service_url
    created = await connector.create_conversation(
        url,
        {
            "isGroup": True,
            "channelData": {"channel": {"id": "19:c@thread.tacv2"}},
            "activity": {"type": "message", "text": "hi"},
        },
    )
    sent = await connector.send_to_conversation(url, CHANNEL, {"type": "message", "text": "one"})
    replied = await connector.reply_to_activity(
        url, CHANNEL, "1571537152320", {"type": "message", "text": "two"}
    )
    updated = await connector.update_activity(url, CHANNEL, sent["id"], {"type": "message", "text": "three"})
    assert created["id"] and created["activityId"] and sent["id"] and replied["id"]
    assert updated == {"id": sent["id"]}
    calls = connector_fake.calls()
    assert [c.route for c in calls] == ["create", "send", "reply", "update"]
    assert {c.headers["authorization"] for c in calls} == {"Bearer bot-token-1"}
    assert {connector_fake.conversation_of(c) for c in calls[1:]} == {CHANNEL}
    assert calls[2].body["replyToId"] == "1571537152320" and calls[3].body["id"] == sent["id"]


async def test_paths_are_escaped_as_in_the_recorded_traffic(
    connector_fake: FakeConnector, connector: BotConnector
) -> None:
    recorded = recording("20191020020554539-reply")
    await connector.reply_to_activity(
        connector_fake.service_url, CHANNEL, "1571537152320", {"type": "message"}
    )
    [call] = connector_fake.calls("reply")
    assert call.path == recorded["path"]  # both under the regional prefix /amer/


@pytest.mark.parametrize(
    ("answer", "kind", "scope"),
    [
        (connector_error(429, "TooManyRequests", retry_after=7), TeamsRateLimited, None),
        (connector_error(412, "PreconditionFailed"), TeamsServerError, None),
        (connector_error(502, "BadGateway"), TeamsServerError, None),
        (connector_error(504, "GatewayTimeout"), TeamsServerError, None),
        (connector_error(403, "MessageWritesBlocked"), TeamsPermanentError, "destination"),
        (connector_error(404, "ConversationNotFound"), TeamsPermanentError, "destination"),
        (connector_error(400, "BadSyntax"), TeamsPermanentError, "message"),
        (Answer(413, "too big"), TeamsPermanentError, "message"),
    ],
)
async def test_connector_failures_are_typed(
    connector_fake: FakeConnector, connector: BotConnector, answer: Answer, kind: type, scope: str | None
) -> None:
    connector_fake.script("send", answer)
    with pytest.raises(kind) as failed:
        await connector.send_to_conversation(connector_fake.service_url, CHANNEL, {"type": "message"})
    if scope is None:
        assert failed.value.retry_after == (7 if answer.status == 429 else None)
    else:
        assert failed.value.scope == scope


async def test_a_401_gets_a_new_token_once_then_is_a_credentials_error(
    identity: FakeIdentity, connector_fake: FakeConnector, connector: BotConnector
) -> None:
    connector_fake.script("send", connector_error(401, "Unauthorized"))
    await connector.send_to_conversation(connector_fake.service_url, CHANNEL, {"type": "message"})
    assert [c.headers["authorization"] for c in connector_fake.calls("send")] == [
        "Bearer bot-token-1", "Bearer bot-token-2",
    ]  # fmt: skip
    connector_fake.script("send", connector_error(401, "Unauthorized"), connector_error(401, "Unauthorized"))
    with pytest.raises(TeamsPermanentError) as failed:
        await connector.send_to_conversation(connector_fake.service_url, CHANNEL, {"type": "message"})
    assert failed.value.scope == "credentials"


async def test_updating_a_deleted_activity_says_so(
    connector_fake: FakeConnector, connector: BotConnector
) -> None:
    connector_fake.script("update", connector_error(404, "NotFound"))
    with pytest.raises(TeamsActivityNotFound):
        await connector.update_activity(connector_fake.service_url, CHANNEL, "1:gone", {"type": "message"})


async def test_a_timeout_is_transient(tokens: TokenProvider) -> None:
    with socket.socket() as silent:  # listens, never answers: the read times out
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/amer/"
        await tokens.token()
        async with httpx.AsyncClient(timeout=0.05) as http:
            with pytest.raises(TeamsServerError, match="timed out"):
                await BotConnector(http, tokens).send_to_conversation(url, CHANNEL, {"type": "message"})
