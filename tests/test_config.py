"""`cxbot.yaml` validation: every error at once, each with its path (design.md §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cxbot.config import ConfigError, load_config, parse_config, parse_duration
from tests.conftest import ROOT


def example() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "cxbot.example.yaml").read_text())


def errors_of(raw: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value.errors


def test_example_config_is_valid_and_large_enough_for_the_demo() -> None:
    config = load_config(ROOT / "cxbot.example.yaml")
    assert len(config.teams) >= 4
    assert len(config.touchpoints) >= 12
    assert config.routing.fallback_team in config.team_keys


def test_invalid_time_zone_is_reported_with_its_path() -> None:
    raw = example()
    raw["teams"][2]["timezone"] = "Europe/Lodnon"
    assert errors_of(raw) == ["teams[2].timezone: 'Europe/Lodnon' is not a time zone"]


def test_every_error_is_listed_at_once() -> None:
    raw = example()
    raw["teams"][0]["timezone"] = "Mars/Olympus"
    raw["teams"][1]["digest"]["time"] = "25:99"
    raw["teams"][1]["sla_policy"] = "platinum"
    raw["touchpoints"][3]["team"] = "warehouse"
    raw["routing"]["fallback_team"] = "nobody"
    raw["thresholds"]["nps"] = 11
    raw["sla_policies"]["standard"]["acknowledge"] = "soon"
    raw["teams"][3]["colour"] = "blue"
    errors = errors_of(raw)
    assert "teams[0].timezone: 'Mars/Olympus' is not a time zone" in errors
    assert "teams[1].digest.time: '25:99' is not a time of day (HH:MM)" in errors
    assert "teams[1].sla_policy: 'platinum' is not defined in sla_policies" in errors
    assert any(e.startswith("touchpoints[3].team: 'warehouse' is not a team") for e in errors)
    assert any(e.startswith("routing.fallback_team: 'nobody' is not a team") for e in errors)
    assert any(e.startswith("thresholds.nps: ") for e in errors)
    assert any(e.startswith("sla_policies.standard.acknowledge: 'soon' is not a duration") for e in errors)
    assert "teams[3].colour: unknown key" in errors
    assert len(errors) == 8


def test_duplicate_keys_and_clashing_aliases() -> None:
    raw = example()
    raw["teams"].append(dict(raw["teams"][0]))
    raw["touchpoints"][1]["aliases"] = ["Inbound"]
    errors = errors_of(raw)
    assert "teams[5].key: 'support' is used by another team" in errors
    assert "touchpoints[1]: 'Inbound' is also a name of touchpoint 'support-phone'" in errors


def test_missing_sections_and_wrong_shapes() -> None:
    assert errors_of({}) == ["teams: required", "routing: required"]
    assert errors_of(["not", "a", "mapping"]) == [
        "(top level): expected a mapping of sections (teams, touchpoints, ...)"
    ]


def test_webhook_options_are_checked_against_the_provider() -> None:
    raw = example()
    raw["webhooks"] = {"delighted": {"metric": "stars"}, "surveyfoo": {}}
    errors = errors_of(raw)
    assert any(e.startswith("webhooks.delighted.metric: ") for e in errors)
    assert any(e.startswith("webhooks.surveyfoo: unknown provider") for e in errors)


def test_unquoted_clock_time_in_yaml_is_understood(tmp_path: Path) -> None:
    # YAML 1.1 reads 09:30 as the number 570; the config still means half past nine.
    text = (ROOT / "cxbot.example.yaml").read_text().replace('time: "09:30"', "time: 09:30")
    path = tmp_path / "cxbot.yaml"
    path.write_text(text)
    assert load_config(path).team("billing").digest.time == "09:30"


def test_unreadable_and_broken_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path / "nope.yaml")
    assert missing.value.errors == ["file not found (copy cxbot.example.yaml to start)"]
    broken = tmp_path / "broken.yaml"
    broken.write_text("teams:\n  - key: a\n    name: [unclosed\n")
    with pytest.raises(ConfigError) as invalid:
        load_config(broken)
    assert invalid.value.source == str(broken)
    assert invalid.value.errors[0].startswith("line 4, column 1: not valid YAML")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("2h", 7200), ("1h30m", 5400), ("3d", 259200), ("1w", 604800), (90, 90)],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 parsecs", "-3h", "2h later"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_thresholds_layer_touchpoint_over_team_over_default() -> None:
    config = load_config(ROOT / "cxbot.example.yaml")
    assert config.threshold("nps", team="billing", touchpoint="checkout") == 5
    assert config.threshold("csat", team="billing", touchpoint="refunds") == 3
    assert config.threshold("csat", team="support", touchpoint="support-phone") == 2
    assert config.threshold("ces", team="support", touchpoint=None) == 3


def test_business_hours_need_at_least_one_day() -> None:
    raw = example()
    raw["sla_policies"]["office-hours"]["business_hours"]["days"] = []
    errors = errors_of(raw)
    assert len(errors) == 1
    assert errors[0].startswith("sla_policies.office-hours.business_hours.days: ")


def test_brand_errors_are_listed_with_their_paths() -> None:
    raw = example()
    raw["brand"] = {
        "name": "",
        "logo": "ftp://logo.example.com/a.png",
        "accent_colour": "orange",
        "privacy_url": "www.example.com/privacy",
        "colour": "#fff",
    }
    raw["teams"][1]["brand"] = {"accent_colour": "#12345", "logo": "data:text/html;base64,PGgxPg=="}
    assert errors_of(raw) == [
        "teams[1].brand.logo: a data URI logo must be data:image/<png|jpeg|gif|webp|svg+xml>;base64,...",
        "teams[1].brand.accent_colour: '#12345' is not a colour (#rrggbb or #rgb, e.g. '#0b57d0')",
        "brand.name: String should have at least 1 character",
        "brand.logo: 'ftp://logo.example.com/a.png' is neither a web address (https://...) "
        "nor a data:image URI",
        "brand.accent_colour: 'orange' is not a colour (#rrggbb or #rgb, e.g. '#0b57d0')",
        "brand.privacy_url: 'www.example.com/privacy' is not a web address (https://...)",
        "brand.colour: unknown key",
    ]
    raw["brand"] = {"accent_colour": "#ABC"}
    del raw["teams"][1]["brand"]
    assert parse_config(raw).brand.accent_colour == "#abc"
