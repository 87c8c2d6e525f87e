"""The example config with its contact providers pointed at :class:`FakeProviders`, and their secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cxbot.config import Config, parse_config

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "SENDGRID_API_KEY": "SG.test-sendgrid-key",
    "MAILGUN_API_KEY": "test-mailgun-key",
    "TWILIO_AUTH_TOKEN": "test-twilio-token",
    "HELPDESK_WEBHOOK_SECRET": "test-helpdesk-secret",
}
#: Short enough that a held request times out at once in a test, long enough for a loopback answer.
TIMEOUT = 1.0


def contact_config(base: str) -> Config:
    raw: dict[str, Any] = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    for spec in raw["contact_providers"].values():
        spec["timeout"] = TIMEOUT
        if spec["type"] == "webhook":
            spec["url"] = f"{base}/hooks/cxbot"
        else:
            spec["base_url"] = base
    return parse_config(raw, source="test")


def set_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
