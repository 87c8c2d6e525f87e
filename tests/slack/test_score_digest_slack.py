"""`/cx score`, `/cx digest … preview` and the posted digest on Slack (Block Kit, trend chart upload).

Signed slash commands go through the real ASGI app; replies land on the fake Slack's response URLs.
Digests are posted by the outbox worker to the fake Web API, whose files_upload_v2 endpoints
(`files.getUploadURLExternal`, the upload URL on loopback, `files.completeUploadExternal`) record
the chart's bytes.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cxbot.config import Config, load_config
from cxbot.digest.posting import tick
from cxbot.models import OutboxMessage
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender
from tests.support.platforms import platform_notifiers

ROOT = Path(__file__).resolve().parents[2]
MANAGER, AGENT = "U0SUPMGR1", "U0SUPAGT1"
# 09:00 in London on 3 November 2026: support's digest (and billing's, 09:30 Berlin) are due.
SENDS = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def example_config() -> Config:
    """The example config with the trend chart turned on for support only (billing keeps it off)."""
    config = load_config(ROOT / "cxbot.example.yaml")
    teams = [
        team.model_copy(update={"digest": team.digest.model_copy(update={"charts": True})})
        if team.key == "support"
        else team
        for team in config.teams
    ]
    return config.model_copy(update={"teams": teams})


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def feed(slack: SlackSender) -> None:
    """A day of support and billing answers on 2 November, enough for a chart and a judged score."""
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    items = [
        {
            "external_id": f"{touchpoint}-{i}",
            "source": "t",
            "metric": "csat",
            "score": 5 if i % 4 else 2,
            "touchpoint": touchpoint,
            "received_at": (start + timedelta(minutes=10 * i)).isoformat(),
        }
        for touchpoint in ("Inbound", "refunds")
        for i in range(40)
    ]
    response = await slack.http.post("/feedback", json=items)
    assert response.status_code == 200


async def test_score_through_the_slash_command_answers_the_caller_only(
    slack: SlackSender, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    await feed(slack)
    clock.now = SENDS
    response = await slack.command("score phone 7d", user=AGENT)
    assert response.status_code == 200
    [reply] = fake_slack.responses()
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("Scores · Phone support (touchpoint) · last 7 days")
    assert "CSAT % satisfied (4-5): 75.0% (n=40" in reply["text"]
    assert "Cases resolved: none in this window" in reply["text"]
    title, csat, kpis, annotations = reply["blocks"]
    assert title["text"]["text"].startswith("*Scores · Phone support (touchpoint)")
    assert csat["text"]["text"] == "*CSAT % satisfied (4-5)*"
    assert [f["text"] for f in csat["fields"][:2]] == ["*Score*\n75.0%", "*n*\n40"]
    assert csat["fields"][3]["text"].startswith("*vs the window before*\nlow sample")  # none before
    assert kpis["text"]["text"].startswith("Cases resolved: none")
    assert annotations["elements"][0]["text"] == "Annotations: none in the last 90 days."


async def test_digest_preview_is_ephemeral_and_exactly_what_the_channel_gets(
    slack: SlackSender, fake_slack: FakeSlack, clock: FrozenClock, runtime: Runtime
) -> None:
    await feed(slack)
    clock.now = SENDS
    await slack.command("digest support preview", user=MANAGER)
    [preview] = fake_slack.responses()
    assert preview["response_type"] == "ephemeral"
    assert preview["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "CX digest · Customer Support · Mon 2 Nov 2026"},
    }
    refused = await slack.command("digest billing preview", user=AGENT)
    assert refused.status_code == 200
    assert fake_slack.responses()[-1]["text"].startswith("Not allowed: only members of billing")

    await tick(runtime, now=SENDS)
    await OutboxWorker(runtime, platform_notifiers(runtime)).run_once(now=SENDS)
    [posted] = digest_posts(fake_slack, "C0SUPPORT1")
    assert posted["blocks"] == preview["blocks"]
    assert posted["text"] == preview["text"]


def digest_posts(fake: FakeSlack, channel: str) -> list[dict]:
    """The digests posted to `channel` (the case cards of the day's negative answers go there too)."""
    return [
        c.body
        for c in fake.calls("chat.postMessage")
        if c.body["channel"] == channel
        and (c.body.get("blocks") or [{}])[0].get("text", {}).get("text", "").startswith("CX digest")
    ]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


async def test_the_digest_chart_is_uploaded_into_the_digests_thread_as_a_png(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    pytest.importorskip("matplotlib")
    await feed(slack)
    await tick(runtime, now=SENDS)
    await OutboxWorker(runtime, platform_notifiers(runtime)).run_once(now=SENDS)

    [support] = digest_posts(fake_slack, "C0SUPPORT1")
    assert len(digest_posts(fake_slack, "C0BILLING1")) == 1
    [asked] = fake_slack.calls("files.getUploadURLExternal")  # support only: billing has charts off
    [upload] = fake_slack.calls("upload")
    [done] = fake_slack.calls("files.completeUploadExternal")
    assert upload.path == "/upload/F0CXFILE01"  # the URL files.getUploadURLExternal gave, on loopback
    data = fake_slack.uploads["F0CXFILE01"]
    assert int(asked.body["length"]) == len(data) > 10_000
    width, height = png_size(data)
    assert width >= 600 and height >= 200
    assert asked.body["filename"] == "cx-trend-support-2026-11-02.png"
    assert done.body["channel_id"] == "C0SUPPORT1"
    assert '"id": "F0CXFILE01"' in done.body["files"]
    async with runtime.sessions() as session:
        results = {
            row.destination: row.result
            for row in (
                await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "digest"))
            ).scalars()
        }
    assert results["C0SUPPORT1"]["chart"] == "F0CXFILE01"
    assert results["C0SUPPORT1"]["ts"] == done.body["thread_ts"]
    assert "chart" not in results["C0BILLING1"]
    assert support["blocks"][0]["type"] == "header"


async def test_without_matplotlib_the_digest_still_posts_without_a_chart(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An entry of None in sys.modules makes `import matplotlib…` fail as if it were not installed.
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)
    await feed(slack)
    await tick(runtime, now=SENDS)
    stats = await OutboxWorker(runtime, platform_notifiers(runtime)).run_once(now=SENDS)
    assert stats.dead == 0
    assert len(digest_posts(fake_slack, "C0SUPPORT1")) == 1
    assert fake_slack.calls("files.getUploadURLExternal") == []
    async with runtime.sessions() as session:
        support = (
            await session.execute(
                select(OutboxMessage).where(
                    OutboxMessage.kind == "digest", OutboxMessage.destination == "C0SUPPORT1"
                )
            )
        ).scalar_one()
    assert support.status == "sent" and support.result["chart"] == "unavailable"
