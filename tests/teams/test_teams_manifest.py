"""`python bot.py teams-manifest`: the Teams app package a team uploads (issue #13 Deliver 8, issue #16).

No Teams manifest JSON schema is among the shared fixtures, so the manifest's required fields, their
shapes and Teams' documented limits (schema 1.17) are asserted here instead. The icons are read back
from the zip with a small PNG reader (the standard library's zlib), sizes and transparency checked.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from cxbot.cli import main
from cxbot.commands.grammar import VERBS
from cxbot.config import Config, load_config
from handlers.teams.manifest import MENU_VERBS, app_package, build_manifest
from handlers.teams.manifest import app_package as teams_package
from tests.conftest import ROOT
from tests.support.fake_microsoft import APP_ID

EXAMPLE = ROOT / "cxbot.example.yaml"
PUBLIC_URL = "https://cx.northwind.test"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
REQUIRED = ("manifestVersion", "version", "id", "developer", "name", "description", "icons", "accentColor")


def read_png(data: bytes) -> tuple[int, int, list[list[tuple[int, ...]]]]:
    """Width, height and RGBA rows of an 8-bit RGBA, non-interlaced PNG whose rows use filter 0."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, idat = 8, {}, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks[kind] = body
        idat += body if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour_type, interlace) == (8, 6, 0) and b"IEND" in chunks
    raw = zlib.decompress(idat)
    stride = 1 + 4 * width
    rows = []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] == 0
        rows.append([tuple(line[1 + 4 * x : 5 + 4 * x]) for x in range(width)])
    return width, height, rows


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        return {name: package.read(name) for name in package.namelist()}


@pytest.fixture
def config() -> Config:
    return load_config(EXAMPLE)


def test_the_package_holds_the_manifest_and_both_icons_at_their_sizes(config: Config) -> None:
    files = unzip(app_package(config, app_id=APP_ID, public_url=PUBLIC_URL))
    assert set(files) == {"manifest.json", "color.png", "outline.png"}
    manifest = json.loads(files["manifest.json"])
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}

    width, height, rows = read_png(files["color.png"])
    assert (width, height) == (192, 192)
    pixels = {pixel for row in rows for pixel in row}
    assert (0xF2, 0x8C, 0x28, 255) in pixels and (255, 255, 255, 255) in pixels  # the accent, the glyph
    assert all(pixel[3] == 255 for pixel in pixels)  # a full-colour icon is opaque

    width, height, rows = read_png(files["outline.png"])
    assert (width, height) == (32, 32)
    pixels = {pixel for row in rows for pixel in row}
    # Teams' outline icon: white on transparency, nothing else.
    assert pixels == {(255, 255, 255, 255), (0, 0, 0, 0)}
    assert rows[0][0] == (0, 0, 0, 0) and rows[16][16] == (255, 255, 255, 255)

    assert app_package(config, app_id=APP_ID, public_url=PUBLIC_URL) == app_package(
        config, app_id=APP_ID, public_url=PUBLIC_URL
    )  # the same input writes the same bytes


def test_the_manifest_has_every_required_field_within_teams_limits(config: Config) -> None:
    manifest = build_manifest(config, app_id=APP_ID, public_url=PUBLIC_URL + "/")
    assert all(field in manifest for field in REQUIRED), sorted(set(REQUIRED) - set(manifest))
    assert manifest["$schema"].endswith("/v1.17/MicrosoftTeams.schema.json")
    assert manifest["manifestVersion"] == "1.17"
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert GUID.match(manifest["id"]) and manifest["id"] == APP_ID
    developer = manifest["developer"]
    assert developer["name"] and len(developer["name"]) <= 32
    for field in ("websiteUrl", "privacyUrl", "termsOfUseUrl"):
        assert developer[field].startswith("https://"), field
    assert developer["privacyUrl"] == "https://www.northwind.example.com/privacy"  # brand.privacy_url
    assert len(manifest["name"]["short"]) <= 30 and len(manifest["name"]["full"]) <= 100
    assert len(manifest["description"]["short"]) <= 80 and len(manifest["description"]["full"]) <= 4000
    assert re.fullmatch(r"#[0-9A-F]{6}", manifest["accentColor"])
    (bot,) = manifest["bots"]
    assert bot["botId"] == APP_ID
    assert sorted(bot["scopes"]) == ["groupChat", "personal", "team"]
    assert manifest["validDomains"] == ["cx.northwind.test"]


def test_the_command_menu_is_the_grammars_verbs_with_their_summaries(config: Config) -> None:
    (bot,) = build_manifest(config, app_id=APP_ID, public_url=PUBLIC_URL)["bots"]
    (menu,) = bot["commandLists"]
    assert sorted(menu["scopes"]) == ["groupChat", "personal", "team"]
    summaries = {verb.name: verb.summary for verb in VERBS}
    assert [c["title"] for c in menu["commands"]] == list(MENU_VERBS)
    assert {c["title"]: c["description"] for c in menu["commands"]} == {
        name: summaries[name] for name in MENU_VERBS
    }
    assert len(menu["commands"]) <= 10  # Teams shows at most 10 per scope
    assert all(len(c["title"]) <= 32 and len(c["description"]) <= 128 for c in menu["commands"])


def test_the_brand_names_the_app_and_without_a_brand_it_is_cxbot(config: Config) -> None:
    manifest = build_manifest(config, app_id=APP_ID, public_url=PUBLIC_URL)
    assert manifest["name"]["short"] == "Northwind Outfitters CX"
    assert "Northwind Outfitters" in manifest["name"]["full"]
    assert "Northwind Outfitters" in manifest["description"]["short"]
    assert manifest["developer"]["name"] == "Northwind Outfitters"
    assert manifest["accentColor"] == "#F28C28"

    plain = config.model_copy(update={"brand": type(config.brand)()})
    unbranded = build_manifest(plain, app_id=APP_ID, public_url=PUBLIC_URL)
    assert unbranded["name"]["short"] == "cxbot"
    assert "Northwind" not in json.dumps(unbranded)
    assert unbranded["developer"]["privacyUrl"] == PUBLIC_URL


def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env, no Teams variables from the machine: only what a test sets."""
    monkeypatch.chdir(tmp_path)
    for name in ("TEAMS_APP_ID", "CXBOT_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CXBOT_CONFIG", str(EXAMPLE))


def test_without_teams_app_id_the_verb_says_what_to_set_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env(monkeypatch, tmp_path)
    status = main(["teams-manifest", "--out", str(tmp_path / "app.zip")], teams_package=teams_package)
    captured = capsys.readouterr()
    assert status == 2
    assert "TEAMS_APP_ID is not set" in captured.err and "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "app.zip").exists()


def test_a_public_url_that_is_no_address_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("TEAMS_APP_ID", APP_ID)
    status = main(["teams-manifest", "--url", "not a url"], teams_package=teams_package)
    captured = capsys.readouterr()
    assert status == 2 and "is not an address" in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "cxbot-teams.zip").exists()


def test_bot_py_writes_the_package_from_the_environment(tmp_path: Path) -> None:
    env: dict[str, Any] = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEAMS_", "CXBOT_"))},
        "TEAMS_APP_ID": APP_ID,
        "CXBOT_PUBLIC_URL": PUBLIC_URL,
        "CXBOT_CONFIG": str(EXAMPLE),
    }
    out = tmp_path / "cxbot-teams.zip"
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "teams-manifest", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    assert "wrote " in finished.stdout and "warning" not in finished.stderr
    manifest = json.loads(unzip(out.read_bytes())["manifest.json"])
    assert manifest["bots"][0]["botId"] == APP_ID and manifest["validDomains"] == ["cx.northwind.test"]
