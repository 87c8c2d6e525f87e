"""The Slack app manifest with the company's name on it: `python bot.py slack-manifest` (issue #16).

The manifests in this folder name the app `cxbot`. A team creating its app prints one with its
`brand.name` (the app's name "<company> CX" and the bot's display name), its `slash_command`, and in
HTTP mode its public address in place of https://cxbot.example.com. Without a brand the files are
printed as they are, names included; everything else (scopes, events, settings) is never changed,
so tests/test_manifest.py's checks of the files hold for the printed manifest too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cxbot.config import Config

FOLDER = Path(__file__).resolve().parent
HTTP_MANIFEST = FOLDER / "manifest.yaml"
SOCKET_MANIFEST = FOLDER / "manifest.socket-mode.yaml"
PLACEHOLDER_URL = "https://cxbot.example.com"
#: Slack's limits: an app's name, and a bot user's display name (a-z, 0-9, '-', '_', '.').
APP_NAME_LIMIT = 35
BOT_NAME_LIMIT = 80


def app_name(company: str) -> str:
    """`Northwind Outfitters CX`, shortened to Slack's 35 characters when the name is long."""
    name = f"{company} CX"
    return name if len(name) <= APP_NAME_LIMIT else company[:APP_NAME_LIMIT].rstrip()


def bot_display_name(company: str) -> str:
    """`northwind-outfitters-cx`: the characters Slack allows in a bot's display name."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", company.lower()).strip("-._")
    return f"{slug}-cx"[:BOT_NAME_LIMIT] if slug else "cxbot"


def _with_url(value: Any, url: str) -> Any:
    if isinstance(value, str):
        return value.replace(PLACEHOLDER_URL, url)
    if isinstance(value, list):
        return [_with_url(item, url) for item in value]
    if isinstance(value, dict):
        return {key: _with_url(item, url) for key, item in value.items()}
    return value


def branded_manifest(config: Config, *, socket_mode: bool = False, public_url: str | None = None) -> str:
    """The manifest as YAML, with the brand's names, the slash command and (HTTP mode) the address."""
    source = SOCKET_MANIFEST if socket_mode else HTTP_MANIFEST
    manifest = yaml.safe_load(source.read_text(encoding="utf-8"))
    company = config.brand.name
    if company:
        manifest["display_information"]["name"] = app_name(company)
        manifest["features"]["bot_user"]["display_name"] = bot_display_name(company)
    for command in manifest["features"].get("slash_commands", []):
        command["command"] = config.slash_command
    if public_url and not socket_mode:
        manifest = _with_url(manifest, public_url.rstrip("/"))
    header = f"# Slack app manifest printed by `python bot.py slack-manifest` from {source.name}.\n"
    return header + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)
