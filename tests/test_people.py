"""`people:` (design.md §1, §4): role lists name people, `check-config` finds wrong keys and shared ids
with their paths, and an escalation reaches each person at their own id on each platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from cxbot.cases.escalation import tick
from cxbot.cli import main
from cxbot.config import Config, parse_config
from cxbot.models import OutboxMessage
from cxbot.outbox.contract import ESCALATION_DM
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.test_config import errors_of, example

MANAGER_GUID = "48d8bd80-b8be-5f0b-9182-ac7d40966ded"
TEAMS_CHANNEL = "19:support@thread.tacv2"


def test_role_lists_name_people_or_bare_slack_ids_and_every_mistake_has_its_path() -> None:
    raw = example()
    people = raw["people"]
    people["support-agent-2"]["slack"] = "U0SUPAGT1"  # support-agent-1's Slack id as well
    people["billing-agent"]["msteams"] = people["admin"]["msteams"]
    people["travel-manager"]["msteams"] = "not-a-guid"
    people["Bad Key"] = {"name": "Nobody"}
    raw["admins"] = ["admin", "amdin", "U0OLDADMIN"]  # a bare Slack id is still fine
    raw["teams"][0]["managers"] = ["support-manger"]
    raw["teams"][1]["members"] = ["logistics-agent", "Bob"]
    raw["teams"][1]["escalation"]["contacts"] = ["head-of-cs"]
    errors = errors_of(raw)
    assert errors[:4] == [
        "people.travel-manager.msteams: 'not-a-guid' is not a Microsoft Entra object id (a GUID)",
        "people.Bad Key: 'Bad Key' is not a key (lower-case letters, digits, '-' or '_')",
        "people.support-agent-2.slack: 'U0SUPAGT1' is also the id of people.support-agent-1",
        f"people.billing-agent.msteams: {people['admin']['msteams']!r} is also the id of people.admin",
    ]
    assert [e.split(" (people are")[0] for e in errors[4:]] == [
        "admins[1]: 'amdin' is not in people",
        "teams[0].managers[0]: 'support-manger' is not in people",
        "teams[1].members[1]: 'Bob' is not in people",
        "teams[1].escalation.contacts[0]: 'head-of-cs' is not in people",
    ]
    listing = "(people are: Bad Key, admin, billing-agent, billing-manager, head-of-cx, "
    assert all(listing in e and e.endswith(" and 3 more)") for e in errors[4:]), errors[4:]


def test_check_config_lists_people_errors_without_starting(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = example()
    raw["teams"][2]["managers"] = ["greta"]
    path = tmp_path / "cxbot.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["check-config", str(path)]) != 0
    printed = capsys.readouterr()
    assert "teams[2].managers[0]: 'greta' is not in people" in printed.out + printed.err


def test_a_person_resolves_from_each_platform_and_bare_ids_stay_themselves() -> None:
    config = parse_config(example())
    assert config.person_for("slack", "U0SUPMGR1") == "support-manager"
    assert config.person_for("msteams", MANAGER_GUID) == "support-manager"
    assert config.person_for("msteams", "U0SUPMGR1") == "U0SUPMGR1"  # a Slack id is nobody on Teams
    assert config.person_for("console", "support-manager") == "support-manager"
    assert config.person_for("console", "U0SUPMGR1") == "support-manager"
    assert config.person_for("slack", "U0STRANGER") == "U0STRANGER"
    assert config.aliases("support-manager") == ("support-manager", "U0SUPMGR1", MANAGER_GUID)
    assert config.platform_id("support-manager", "msteams") == MANAGER_GUID
    assert config.platform_id("U0STRANGER", "slack") == "U0STRANGER"
    assert config.platform_id("U0STRANGER", "msteams") is None


def on_both_platforms() -> Config:
    """Support on Slack and Teams; its escalation contact has no Teams id, and a bare Slack id
    (someone not in `people:`) is a second manager."""
    raw = example()
    raw["teams"][0]["msteams"] = {"channel": TEAMS_CHANNEL}
    raw["teams"][0]["managers"] = ["support-manager", "U0LEGACY01"]
    del raw["people"]["head-of-cx"]["msteams"]
    return parse_config(raw)


@pytest.fixture
async def both(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    built = Runtime.build(settings=settings, config=on_both_platforms(), clock=clock)
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


async def test_escalation_reaches_each_person_at_their_id_on_each_platform(both: Runtime) -> None:
    transport = httpx.ASGITransport(app=create_app(both))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://cxbot.test", headers={"Authorization": f"Bearer {API_KEY}"}
    ) as http:
        item = {"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
        assert (await http.post("/feedback", json=item)).status_code == 200
    for minute in (30, 59, 60):  # level 1 at 12:30, level 2 at 13:00 (urgent policy: every 30 min)
        await tick(both, now=datetime(2026, 11, 2, 12 + minute // 60, minute % 60, tzinfo=UTC))
    async with both.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.platform, OutboxMessage.destination)
            .where(OutboxMessage.kind == ESCALATION_DM)
            .order_by(OutboxMessage.id)
        )
        dms = [tuple(r) for r in rows.all()]
    assert dms == [
        ("msteams", MANAGER_GUID),  # level 1: the managers; the bare Slack id has no Teams id
        ("slack", "U0SUPMGR1"),
        ("slack", "U0LEGACY01"),
        ("slack", "U0HEADCX1"),  # level 2: the contact, who has no Teams id
    ]
