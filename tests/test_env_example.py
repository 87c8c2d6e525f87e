"""`.env.example` lists every environment variable cxbot reads, each with a comment and a fake value."""

from __future__ import annotations

import re
from typing import Any

import yaml

from cxbot.settings import Settings
from tests.conftest import ROOT

ASSIGNMENT = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def documented() -> dict[str, tuple[str, bool]]:
    """Variable → (its value, whether a comment line sits in the block above it)."""
    found: dict[str, tuple[str, bool]] = {}
    commented = False
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            found.setdefault(match.group(1), (match.group(2), commented))
        elif line.startswith("#"):
            commented = True
        elif not line.strip():
            commented = False
    return found


def env_names_in(value: Any) -> set[str]:
    """Every `*_env: NAME` in the example configuration: secrets the operator puts in the environment."""
    if isinstance(value, dict):
        names = {v for k, v in value.items() if str(k).endswith("_env") and isinstance(v, str)}
        return names.union(*(env_names_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(env_names_in(v) for v in value))
    return set()


def test_every_setting_and_configured_secret_is_in_env_example() -> None:
    variables = documented()
    settings = {info.alias for info in Settings.model_fields.values() if info.alias}
    configured = env_names_in(yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8")))
    assert settings and configured
    missing = (settings | configured) - variables.keys()
    assert not missing, f"add to .env.example: {sorted(missing)}"
    for name in settings | configured:
        value, commented = variables[name]
        assert value.strip(), f"{name} has no example value"
        assert commented, f"{name} has no comment above it"
