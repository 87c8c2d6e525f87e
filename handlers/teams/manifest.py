"""The Teams app package: `python bot.py teams-manifest [--out cxbot-teams.zip]` (issues #13, #16).

A Teams app is uploaded as a zip of `manifest.json` and two icons. The manifest names the bot by its
Entra app id (`TEAMS_APP_ID`), allows it in teams, group chats and personal chats, lists the main
verbs in the command menu with the one-line summaries of the core grammar's `VERBS` (so the menu and
`help` never disagree), allows the public address's domain, and carries the brand's company name the
way the Slack manifest does (`<company> CX`). The icons are drawn here, as PNGs written with zlib:
a colour icon (192x192, the brand's accent behind a white speech bubble) and an outline icon (32x32,
the same bubble in white on a transparent background), as Teams requires.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

from cxbot.brand import DEFAULT_ACCENT
from cxbot.commands.grammar import VERBS, Verb
from cxbot.config import Config

SCHEMA_VERSION = "1.17"
SCHEMA_URL = (
    f"https://developer.microsoft.com/json-schemas/teams/v{SCHEMA_VERSION}/MicrosoftTeams.schema.json"
)
COLOR_ICON, OUTLINE_ICON = "color.png", "outline.png"
COLOR_SIZE, OUTLINE_SIZE = 192, 32
SCOPES = ("team", "personal", "groupChat")
#: The command menu: Teams shows at most 10 commands per scope, so the verbs people use most.
MENU_VERBS = ("help", "list", "show", "ack", "take", "note", "resolve", "score", "digest", "new")
#: Teams' limits (manifest schema 1.17).
MENU_LIMIT, TITLE_LIMIT, DESCRIPTION_LIMIT = 10, 32, 128
SHORT_NAME_LIMIT, FULL_NAME_LIMIT = 30, 100
SHORT_DESCRIPTION_LIMIT, FULL_DESCRIPTION_LIMIT = 80, 4000
DEFAULT_NAME = "cxbot"
DEFAULT_DEVELOPER = "cxbot contributors"
FIXED_TIME = (2026, 1, 1, 0, 0, 0)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def menu_verbs(names: Sequence[str] = MENU_VERBS) -> list[Verb]:
    """The grammar's verbs for the command menu, in the menu's order."""
    by_name = {verb.name: verb for verb in VERBS}
    return [by_name[name] for name in names]


def command_list() -> list[dict[str, str]]:
    """The menu entries: each verb's name and its summary from the grammar."""
    return [
        {"title": verb.name[:TITLE_LIMIT], "description": _clip(verb.summary, DESCRIPTION_LIMIT)}
        for verb in menu_verbs()[:MENU_LIMIT]
    ]


def package_version() -> str:
    """The app's version: cxbot's (Teams wants a new version number for each upload of a change)."""
    try:
        return version("cxbot")
    except PackageNotFoundError:
        return "0.1.0"


def domain_of(public_url: str) -> str:
    """`cx.example.com` of `https://cx.example.com/…` (validDomains take host names, no scheme)."""
    host = urlsplit(public_url).hostname
    if not host:
        raise ValueError(f"the public address {public_url!r} is not an address (expected https://host)")
    return host


def build_manifest(config: Config, *, app_id: str, public_url: str) -> dict[str, Any]:
    """manifest.json as a dict: the bot, its scopes and command menu, the brand's names."""
    company = config.brand.name
    short = _clip(f"{company} CX" if company else DEFAULT_NAME, SHORT_NAME_LIMIT)
    full = _clip(f"{company} Customer Experience (cxbot)" if company else "cxbot", FULL_NAME_LIMIT)
    for_whom = f" for {company}" if company else ""
    website = public_url.rstrip("/")
    privacy = str(config.brand.privacy_url) if config.brand.privacy_url else website
    commands = command_list()
    return {
        "$schema": SCHEMA_URL,
        "manifestVersion": SCHEMA_VERSION,
        "version": package_version(),
        "id": app_id,
        "developer": {
            "name": _clip(company or DEFAULT_DEVELOPER, 32),
            "websiteUrl": website,
            "privacyUrl": privacy,
            "termsOfUseUrl": website,
        },
        "name": {"short": short, "full": full},
        "description": {
            "short": _clip(f"Customer feedback, cases and follow-ups{for_whom}", SHORT_DESCRIPTION_LIMIT),
            "full": _clip(
                f"{short} brings survey feedback{for_whom} into Teams: daily score digests per team, "
                "cases routed from negative feedback with acknowledgement and escalation, recovery "
                "contacts and re-surveys that close the loop. Type `help` to the bot, or @mention it "
                "in a channel.",
                FULL_DESCRIPTION_LIMIT,
            ),
        },
        "icons": {"color": COLOR_ICON, "outline": OUTLINE_ICON},
        "accentColor": "#{:02X}{:02X}{:02X}".format(*_rgb(config.brand.accent_colour or DEFAULT_ACCENT)),
        "bots": [
            {
                "botId": app_id,
                "scopes": list(SCOPES),
                "supportsFiles": False,
                "isNotificationOnly": False,
                "commandLists": [{"scopes": list(SCOPES), "commands": commands}],
            }
        ],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [domain_of(public_url)],
    }


# -- icons -----------------------------------------------------------------------------------------


def png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int, int]]) -> bytes:
    """An RGBA PNG (8 bits per channel, no filter) of `pixel(x, y)`."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def _in_bubble(u: float, v: float) -> bool:
    """A speech bubble in the unit square: a rounded body and a tail at its lower left."""
    left, right, top, bottom, radius = 0.18, 0.82, 0.2, 0.68, 0.12
    cx = min(max(u, left + radius), right - radius)
    cy = min(max(v, top + radius), bottom - radius)
    if left <= u <= right and top <= v <= bottom and (u - cx) ** 2 + (v - cy) ** 2 <= radius**2:
        return True
    # The tail: a triangle under the body, from (0.3, 0.66) and (0.46, 0.66) down to (0.28, 0.84).
    if 0.66 <= v <= 0.84:
        depth = (v - 0.66) / 0.18
        return 0.3 - 0.02 * depth <= u <= 0.46 - 0.18 * depth
    return False


def _rgb(colour: str) -> tuple[int, int, int]:
    digits = colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def color_icon(accent: str) -> bytes:
    """192x192: the accent filling the square, a white bubble on it (Teams rounds the corners)."""
    fill = (*_rgb(accent), 255)
    white = (255, 255, 255, 255)

    def pixel(x: int, y: int) -> tuple[int, int, int, int]:
        return white if _in_bubble(x / COLOR_SIZE, y / COLOR_SIZE) else fill

    return png(COLOR_SIZE, COLOR_SIZE, pixel)


def outline_icon() -> bytes:
    """32x32: the bubble in white on transparency (Teams tints it in its bars)."""
    white, clear = (255, 255, 255, 255), (0, 0, 0, 0)

    def pixel(x: int, y: int) -> tuple[int, int, int, int]:
        return white if _in_bubble((x + 0.5) / OUTLINE_SIZE, (y + 0.5) / OUTLINE_SIZE) else clear

    return png(OUTLINE_SIZE, OUTLINE_SIZE, pixel)


def app_package(config: Config, *, app_id: str, public_url: str) -> bytes:
    """The zip Teams uploads: manifest.json and the two icons at its root."""
    manifest = build_manifest(config, app_id=app_id, public_url=public_url)
    buffer = io.BytesIO()
    files = {
        "manifest.json": (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        COLOR_ICON: color_icon(manifest["accentColor"]),
        OUTLINE_ICON: outline_icon(),
    }
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as package:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=FIXED_TIME)  # the same input gives the same zip
            entry.external_attr = 0o644 << 16
            package.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
