"""Serving Slack: `python bot.py serve` as a real process (route wired, signed, or off), Socket Mode."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from cxbot.models import Case
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.conftest import API_KEY, ROOT
from tests.support.fake_slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    FakeSocketMode,
    sign,
    slack_settings,
)
from tests.support.server import ServerProcess


def signed_command(text: str, *, response_url: str) -> tuple[bytes, dict[str, str]]:
    body = urlencode(
        {"command": "/cx", "text": text, "user_id": "U0SUPAGT1", "channel_id": "C0SUPPORT1", "team_id": "T1"}
        | {"response_url": response_url, "trigger_id": "1.2.3", "api_app_id": "A1", "user_name": "agent"}
    )
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": sign(SIGNING_SECRET, body, stamp),
    }
    return body.encode(), headers


def test_serve_answers_a_signed_slash_command(tmp_path: Path) -> None:
    with FakeSlack.running() as fake:
        env = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
            "CXBOT_CONFIG": str(ROOT / "cxbot.example.yaml"),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
        }
        with ServerProcess(env) as server:
            body, headers = signed_command("help ack", response_url=fake.response_url("serve"))
            answered = httpx.post(f"{server.url}/slack/events", content=body, headers=headers)
            forged = httpx.post(
                f"{server.url}/slack/events", content=body, headers={**headers, "X-Slack-Signature": "v0=00"}
            )
        assert (answered.status_code, forged.status_code) == (200, 401)
        [reply] = fake.responses()
        assert reply["text"] == "/cx ack CX-42: acknowledge a case (stops the acknowledgement clock)"
        assert reply["response_type"] == "ephemeral"


def test_serve_without_slack_settings_says_so_once_and_has_no_route(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "CXBOT_CONFIG": str(ROOT / "cxbot.example.yaml"),
        "SLACK_BOT_TOKEN": "",
        "SLACK_SIGNING_SECRET": "",
    }
    with ServerProcess(env) as server:
        assert httpx.post(f"{server.url}/slack/events", content=b"{}").status_code == 404
    lines = [line for line in server.log if "Slack is off" in line]
    assert len(lines) == 1 and "SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN not set" in lines[0]
    assert not any("Traceback" in line for line in server.log)


def test_the_app_manifest_matches_what_the_app_registers() -> None:
    import yaml

    manifest = yaml.safe_load((ROOT / "handlers" / "slack" / "manifest.yaml").read_text(encoding="utf-8"))
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/cx" and command["should_escape"] is True
    settings = manifest["settings"]
    urls = {
        command["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    }
    assert {url.removeprefix("https://cxbot.example.com") for url in urls} == {"/slack/events"}
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert {"commands", "chat:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])


async def test_socket_mode_runs_the_same_command_over_a_websocket(
    runtime: Runtime, fake_slack: FakeSlack
) -> None:
    from tests.support.platforms import platform_services

    response = await runtime_post_feedback(runtime)
    ref = response["results"][0]["case"]
    async with FakeSocketMode() as socket:
        fake_slack.socket_url = socket.url
        async with platform_services(runtime):
            await asyncio.wait_for(socket.connected.wait(), timeout=10)
            command = {
                "command": "/cx",
                "text": f"ack {ref}",
                "user_id": "U0SUPMGR1",
                "channel_id": "C0SUPPORT1",
                "team_id": "T0CXBOT01",
                "response_url": fake_slack.response_url("socket"),
                "trigger_id": "1.2.3",
            }
            await socket.send(
                {
                    "envelope_id": "env-1",
                    "type": "slash_commands",
                    "accepts_response_payload": True,
                    "payload": command,
                }
            )
            ack = await asyncio.wait_for(socket.received.get(), timeout=10)
    assert ack["envelope_id"] == "env-1"
    assert [r["text"] for r in fake_slack.responses()] == [f"{ref} acknowledged"]
    [opened] = fake_slack.calls("apps.connections.open")
    assert opened.headers["authorization"] == "Bearer xapp-test-token"
    async with runtime.sessions() as session:
        assert (await session.execute(select(Case.state))).scalar_one() == "acknowledged"


async def runtime_post_feedback(runtime: Runtime) -> dict:
    from cxbot.web import create_app

    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://cxbot.test") as http:
        item = {"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
        answer = await http.post("/feedback", json=item, headers={"Authorization": f"Bearer {API_KEY}"})
        return answer.json()


@pytest.fixture
def settings(database_url: str, fake_slack: FakeSlack) -> Settings:
    """The folder's Slack settings plus an app-level token, so Socket Mode starts too."""
    return slack_settings(database_url, fake_slack, API_KEY).model_copy(
        update={"slack_app_token": "xapp-test-token"}
    )
