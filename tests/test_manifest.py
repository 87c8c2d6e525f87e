"""The Slack app manifests (HTTP and Socket Mode) grant what the code calls and point where it listens.

Every Web API method called anywhere in handlers/slack must be in METHOD_SCOPES (so a new call makes
this test fail until someone looks up its scope), and the scopes it needs must be in both manifests.
Every URL in the HTTP manifest must be a POST route of the app `serve` builds with Slack configured.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cxbot.cli import main
from cxbot.config import Brand, Config
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from handlers.slack.manifest import app_name, bot_display_name, branded_manifest
from tests.conftest import ROOT

SLACK = ROOT / "handlers" / "slack"
HTTP_MANIFEST = SLACK / "manifest.yaml"
SOCKET_MANIFEST = SLACK / "manifest.socket-mode.yaml"
PUBLIC_BASE = "https://cxbot.example.com"

#: Web API method → bot scopes it needs (https://api.slack.com/methods). Views need none.
METHOD_SCOPES: dict[str, set[str]] = {
    "chat.postMessage": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.delete": {"chat:write"},
    "conversations.open": {"im:write"},
    # Read only to find a post an unrecorded attempt made (handlers/slack/notifier.py): the team
    # channels may be public or private, and reports and escalations go to direct messages.
    "conversations.history": {"channels:history", "groups:history", "im:history"},
    "conversations.replies": {"channels:history", "groups:history", "im:history"},
    "views.open": set(),
    "views.update": set(),
    "views.push": set(),
    "views.publish": set(),
    "users.info": {"users:read"},
    "files.getUploadURLExternal": {"files:write"},
    "files.completeUploadExternal": {"files:write"},
}
#: slack_sdk helpers that call several Web API methods under one name.
SDK_HELPERS: dict[str, set[str]] = {
    "files.upload_v2": {"files.getUploadURLExternal", "files.completeUploadExternal"},
}
#: Bot events → scopes (https://api.slack.com/events).
EVENT_SCOPES: dict[str, set[str]] = {"app_home_opened": set()}
#: What the slash command itself needs.
COMMAND_SCOPES = {"commands"}

_CALL = re.compile(r"""\.(?:call|api_call|read)\(\s*["']([a-z]+\.[A-Za-z.]+)["']""")
_SDK_METHOD = re.compile(
    r"\b(?:client|web)\.(chat|views|conversations|users|reactions|files)_([A-Za-z0-9_]+)\("
)


def called_methods() -> set[str]:
    """Web API methods named in handlers/slack: `call("chat.update", ...)` or `client.chat_update(...)`."""
    methods: set[str] = set()
    for path in sorted(SLACK.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        methods.update(_CALL.findall(source))
        for family, name in _SDK_METHOD.findall(source):
            method = f"{family}.{name}"
            methods.update(SDK_HELPERS.get(method, {method}))
    return methods


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def bot_scopes(manifest: dict[str, Any]) -> set[str]:
    return set(manifest["oauth_config"]["scopes"]["bot"])


def test_the_code_calls_web_api_methods_we_know_the_scopes_of() -> None:
    methods = called_methods()
    assert {"chat.postMessage", "chat.update", "views.open", "views.publish"} <= methods
    unknown = methods - METHOD_SCOPES.keys()
    assert not unknown, f"add these methods and their scopes to METHOD_SCOPES: {sorted(unknown)}"


@pytest.mark.parametrize("path", [HTTP_MANIFEST, SOCKET_MANIFEST], ids=["http", "socket-mode"])
def test_every_called_method_and_event_is_covered_by_a_scope(path: Path) -> None:
    manifest = load(path)
    needed = set(COMMAND_SCOPES)
    for method in called_methods():
        needed |= METHOD_SCOPES[method]
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    for event in events:
        assert event in EVENT_SCOPES, f"{event}: add it and its scopes to EVENT_SCOPES"
        needed |= EVENT_SCOPES[event]
    assert needed <= bot_scopes(manifest), f"missing scopes: {sorted(needed - bot_scopes(manifest))}"
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/cx" and command["should_escape"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True


def test_the_two_variants_differ_only_in_how_slack_reaches_the_bot() -> None:
    http, socket = load(HTTP_MANIFEST), load(SOCKET_MANIFEST)
    assert http["settings"]["socket_mode_enabled"] is False
    assert socket["settings"]["socket_mode_enabled"] is True
    assert bot_scopes(http) == bot_scopes(socket)
    assert http["display_information"] == socket["display_information"]

    def without_urls(manifest: dict[str, Any]) -> dict[str, Any]:
        features = {
            **manifest["features"],
            "slash_commands": [
                {k: v for k, v in c.items() if k != "url"} for c in manifest["features"]["slash_commands"]
            ],
        }
        settings = {
            "event_subscriptions": {
                k: v for k, v in manifest["settings"]["event_subscriptions"].items() if k != "request_url"
            },
            "interactivity": {
                k: v for k, v in manifest["settings"]["interactivity"].items() if k != "request_url"
            },
        }
        return {"features": features, "settings": settings}

    assert without_urls(http) == without_urls(socket)
    assert "url" not in str(socket["features"]) and "request_url" not in str(socket["settings"])


def manifest_urls(manifest: dict[str, Any]) -> set[str]:
    settings = manifest["settings"]
    return {
        *(command["url"] for command in manifest["features"]["slash_commands"]),
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    }


async def test_every_url_in_the_http_manifest_is_served(tmp_path: Path, example_config: Config) -> None:
    from tests.support.platforms import platform_routes

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=f"sqlite:///{tmp_path / 'manifest.db'}",
        SLACK_BOT_TOKEN="xoxb-test-token",
        SLACK_SIGNING_SECRET="test-signing-secret",
        SLACK_API_URL="http://127.0.0.1:9/api/",
    )
    runtime = Runtime.build(settings=settings, config=example_config)
    try:
        app = create_app(runtime, routes=platform_routes(runtime))
        served = {
            route.path: set(getattr(route, "methods", None) or ())
            for route in app.routes
            if hasattr(route, "path")
        }
    finally:
        await runtime.close()
    urls = manifest_urls(load(HTTP_MANIFEST))
    assert urls and all(url.startswith(PUBLIC_BASE + "/") for url in urls)
    for url in urls:
        path = url.removeprefix(PUBLIC_BASE)
        assert path in served, f"{url}: the server has no route {path} (it serves {sorted(served)})"
        assert "POST" in served[path], f"{path} does not accept POST"


def test_the_printed_manifest_carries_the_brand_and_changes_nothing_else(
    example_config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "slack-manifest",
            "--config",
            str(ROOT / "cxbot.example.yaml"),
            "--url",
            "https://cx.northwind.test/",
        ],
        manifest=branded_manifest,
    )
    assert status == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    original = yaml.safe_load(HTTP_MANIFEST.read_text())
    assert printed["display_information"]["name"] == "Northwind Outfitters CX"
    assert printed["features"]["bot_user"]["display_name"] == "northwind-outfitters-cx"
    assert printed["features"]["slash_commands"][0]["url"] == "https://cx.northwind.test/slack/events"
    assert printed["oauth_config"] == original["oauth_config"] and printed["settings"].keys() == (
        original["settings"].keys()
    )
    assert PUBLIC_BASE not in yaml.safe_dump(printed)

    socket = yaml.safe_load(branded_manifest(example_config, socket_mode=True, public_url="https://x.test"))
    assert socket["display_information"]["name"] == "Northwind Outfitters CX"
    assert socket == {
        **yaml.safe_load(SOCKET_MANIFEST.read_text()),
        "display_information": socket["display_information"],
        "features": socket["features"],
    }
    unbranded = example_config.model_copy(update={"brand": Brand(), "slash_command": "/feedback"})
    plain = yaml.safe_load(branded_manifest(unbranded))
    assert plain["display_information"]["name"] == "cxbot"
    assert plain["features"]["bot_user"]["display_name"] == "cxbot"
    assert plain["features"]["slash_commands"][0]["command"] == "/feedback"
    assert app_name("The Very Long Company Name Trading Ltd") == "The Very Long Company Name Trading"
    assert bot_display_name("Café Ünïcode & Co.") == "caf-n-code-co-cx"
