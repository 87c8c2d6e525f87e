"""Issue #11 on the console: a customer whose id is their email is shown masked everywhere it prints.

The console prints case cards, thread lines, escalations, digests and replies as the chat platforms
would post them; everything it prints in a session is scanned by :class:`tests.support.leaks.LeakScanner`.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from cxbot.authz import Actor
from cxbot.clock import ManualClock
from cxbot.config import Config
from cxbot.db import transaction
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from handlers.console.commands import Console
from tests.support.leaks import LeakScanner

ADA_EMAIL, ADA_PHONE = "ada.lovelace@example.com", "+44 20 7946 0958"
ADMIN, MANAGER, OUTSIDER = "U0ADMIN01", "U0SUPMGR1", "U0NOBODY1"


@pytest.fixture
async def leaky_runtime(settings: Settings, example_config: Config) -> AsyncIterator[Runtime]:
    """Support's CX-1 for a customer whose id is their email, with their phone in the comment."""
    clock = ManualClock(datetime(2026, 11, 17, 8, 0, tzinfo=UTC))
    built = Runtime.build(settings=settings, config=example_config, clock=clock)
    await built.sync_directory()
    item = {
        "external_id": "leak-console-1",
        "source": "test",
        "metric": "nps",
        "score": 2,
        "touchpoint": "support-phone",
        "comment": f"Waited an hour; call {ADA_PHONE} or write {ADA_EMAIL}",
        "customer": {"id": ADA_EMAIL, "name": "Ada Lovelace", "email": ADA_EMAIL, "phone": ADA_PHONE},
    }
    async with transaction(built.sessions) as session:
        [result] = await ingest_items(session, ingestor_for(built.config), [item], now=clock())
    assert result.case == "CX-1"
    try:
        yield built
    finally:
        await built.close()


async def test_the_console_never_prints_an_address_id_in_clear(leaky_runtime: Runtime) -> None:
    out = io.StringIO()
    clock = leaky_runtime.clock
    assert isinstance(clock, ManualClock)
    admin = Console(leaky_runtime, Actor(user_id=ADMIN, platform="console"), out=out, clock=clock)
    await admin.handle("/cx team link support")
    manager = Console(leaky_runtime, Actor(user_id=MANAGER, platform="console"), out=out, clock=clock)
    outsider = Console(leaky_runtime, Actor(user_id=OUTSIDER, platform="console"), out=out, clock=clock)
    for line in ("list all", "show CX-1", f"customer {ADA_EMAIL}", "customer CX-1"):
        await outsider.handle(line)
    for line in ("show CX-1", "digest support preview", "note CX-1 she wrote from a new address"):
        await manager.handle(line)
    await manager.handle(":advance 2h")  # the card, its thread, the escalation and the digest print
    printed = out.getvalue()
    assert "case card" in printed and "ESCALATION" in printed and "daily digest" in printed
    assert "Customer a***@e***.com · A. L." in printed
    LeakScanner(phones=[ADA_PHONE]).assert_clean([("console", printed)], chat=False)
