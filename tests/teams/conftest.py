"""Teams mode for every test in this folder: a fake identity platform and Bot Connector on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from handlers import platform_routes
from tests.conftest import API_KEY
from tests.support.fake_microsoft import FakeConnector, FakeIdentity, TeamsSender, teams_settings


@pytest.fixture
def identity() -> Iterator[FakeIdentity]:
    with FakeIdentity.running() as fake:
        yield fake


@pytest.fixture
def connector_fake() -> Iterator[FakeConnector]:
    with FakeConnector.running() as fake:
        yield fake


@pytest.fixture
def settings(database_url: str, identity: FakeIdentity) -> Settings:
    """Overrides the root `settings`: Teams credentials set and the Microsoft endpoints at the fake."""
    return teams_settings(database_url, identity, API_KEY)


@pytest.fixture
async def teams(
    runtime: Runtime, identity: FakeIdentity, connector_fake: FakeConnector
) -> AsyncIterator[TeamsSender]:
    """The real ASGI app with the platform routes, behind a client that signs like the Bot Framework."""
    transport = httpx.ASGITransport(app=create_app(runtime, routes=platform_routes(runtime)))
    async with httpx.AsyncClient(transport=transport, base_url="http://cxbot.test") as http:
        yield TeamsSender(http, identity, connector_fake, runtime.background.drain)
