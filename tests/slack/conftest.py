"""Slack mode for every test in this folder: a fake Slack Web API on loopback and settings pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cxbot.settings import Settings
from tests.conftest import API_KEY
from tests.support.fake_slack import FakeSlack, slack_settings


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack.running() as fake:
        yield fake


@pytest.fixture
def settings(database_url: str, fake_slack: FakeSlack) -> Settings:
    """Overrides the root `settings`: Slack credentials set and SLACK_API_URL at the fake."""
    return slack_settings(database_url, fake_slack, API_KEY)
