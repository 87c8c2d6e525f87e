"""Teams mode for every test in this folder: a fake identity platform and Bot Connector on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import yaml

from cxbot.config import Config, parse_config
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.conftest import API_KEY, ROOT
from tests.support.fake_microsoft import FakeConnector, FakeIdentity, TeamsSender, teams_settings
from tests.support.platforms import platform_routes


@pytest.fixture
def identity() -> Iterator[FakeIdentity]:
    with FakeIdentity.running() as fake:
        yield fake


@pytest.fixture
def connector_fake() -> Iterator[FakeConnector]:
    """The fake Bot Connector; every call a test made must be a route of the Connector API's Swagger."""
    with FakeConnector.running() as fake:
        yield fake
    outside = [f"{c.method} {c.path}" for c in fake.calls() if c.route is None]
    assert not outside, f"calls to routes the Bot Connector does not have: {outside}"


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


TEAMS_CHANNEL = "19:097e6717fd7245bdbeba6baa13840db8@thread.skype"  # the recordings' team channel
MEMBER = "6b703ce3-6d14-4fe6-b90c-dc5f03657ae4"  # the recordings' sender (Entra object id)
ADMIN = "e830a11b-50fe-465a-810c-5c308099ca2b"  # the member the install recording adds


@pytest.fixture
def example_config() -> Config:
    """The example configuration, with support's Teams channel, the recordings' sender a manager
    of support and the member the install adds an admin."""
    raw = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    support = next(team for team in raw["teams"] if team["key"] == "support")
    support["msteams"] = {"channel": TEAMS_CHANNEL}
    support["managers"] = [*support.get("managers", []), MEMBER]
    raw["admins"] = [*raw.get("admins", []), ADMIN]
    return parse_config(raw)
