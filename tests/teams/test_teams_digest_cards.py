"""Digests on Teams as Adaptive Cards 1.5, delivered by the notifier to the fake Bot Connector from the
digest JSON the outbox row carries: valid against the schema, under Teams' message size with the
trend chart as a data-URI PNG (shrunk, or left out with a line saying so), the leadership digest at
2,500 teams summarised and clipped, and every piece of outside text shown literally."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from cxbot.db import transaction
from cxbot.digest.model import LeadershipDigest, TeamDigest, Theme
from cxbot.digest.posting import deliver_digest
from cxbot.digest.serialize import digest_to_json, slim_for_table
from cxbot.digest.text import render_team_digest
from cxbot.models import OutboxMessage
from cxbot.outbox.contract import Delivery
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from cxbot.scores.stats import VERDICT_SIGNIFICANT, Change
from handlers.teams.connector import BotConnector
from handlers.teams.digest_cards import NO_CHART_ROOM, team_digest_activity
from handlers.teams.notifier import TeamsNotifier
from handlers.teams.tokens import TokenProvider
from tests.support.adaptive_cards import (
    activity_bytes,
    assert_literal,
    assert_valid_activity,
    strings,
    visible,
    visible_texts,
)
from tests.support.clock import FrozenClock
from tests.support.fake_microsoft import (
    APP_ID,
    APP_PASSWORD,
    TENANT_ID,
    FakeConnector,
    FakeIdentity,
    TeamsSender,
)
from tests.support.leaks import LeakScanner
from tests.support.platforms import platform_notifiers
from tests.teams.conftest import TEAMS_CHANNEL
from tests.test_digest_blocks import DAY, NOW, team_digest

INSTALL = "20191019181214767-request"  # conversationUpdate: the bot added to the recordings' team
CHANNEL = "19:2f7c0d1e5b2a4c4f9a1e3b0c6d5e4f3a@thread.tacv2"
#: Outside text that Adaptive Cards markdown would render: a link, bold, italics, code, lists.
PLANTED = "[win](https://evil.example) **PWNED** _it_ `x`\n- item\n1. one"
MARKS = ("[win](https://evil.example)", "**PWNED**", "_it_", "`x`", "\n- item", "\n1. one")


@pytest.fixture
async def notifier(identity: FakeIdentity, connector_fake: FakeConnector) -> AsyncIterator[TeamsNotifier]:
    async with httpx.AsyncClient() as http:
        tokens = TokenProvider(
            http, login_url=identity.login_url, tenant_id=TENANT_ID, app_id=APP_ID, password=APP_PASSWORD
        )

        async def no_reference(conversation_id: str) -> dict[str, Any] | None:
            return None

        yield TeamsNotifier(
            BotConnector(http, tokens),
            channel_reference=no_reference,
            personal_reference=no_reference,
            service_url=connector_fake.service_url,
            tenant_id=TENANT_ID,
            bot_id=f"28:{APP_ID}",
        )


def digest_row(digest: TeamDigest | LeadershipDigest, text: str = "the digest as text") -> Delivery:
    """The outbox row as cxbot.digest.posting queues it: the text, and the digest as JSON."""
    data = digest_to_json(slim_for_table(digest) if isinstance(digest, LeadershipDigest) else digest)
    payload = {"text": text, "scope": "support", "digest": json.loads(json.dumps(data))}
    return Delivery(id=1, kind="digest", platform="msteams", destination=CHANNEL, payload=payload, attempt=1)


def planted_digest(**changes: Any) -> TeamDigest:
    """The largest team digest, with outside text carrying markup in every field that has any."""
    digest = team_digest("support", name=f"Support {PLANTED}", annotations=5)
    comments = tuple(
        replace(c, text=f"{PLANTED} {c.text}", touchpoint=PLANTED) for c in digest.negative_comments
    )
    annotations = tuple(replace(a, text=PLANTED, touchpoint=PLANTED) for a in digest.annotations)
    return replace(
        digest,
        negative_comments=comments,
        themes=(Theme(phrase=PLANTED, comments=3), *digest.themes),
        annotations=annotations,
        timezone="Europe/London",
        **changes,
    )


async def sent_activity(notifier: TeamsNotifier, connector: FakeConnector, row: Delivery) -> dict[str, Any]:
    await notifier.deliver(row)
    [sent] = connector.calls("send")
    assert connector.conversation_of(sent) == CHANNEL
    return sent.body


async def test_a_team_digest_is_a_valid_card_with_its_chart_under_the_size_limit(
    notifier: TeamsNotifier, connector_fake: FakeConnector
) -> None:
    digest = replace(team_digest("support"), charts=True)
    activity = await sent_activity(notifier, connector_fake, digest_row(digest))
    [card] = assert_valid_activity(activity, cards=1)
    assert activity_bytes(activity) < 28_000
    [image] = [e for e in card["body"] if e["type"] == "Image"]
    prefix = "data:image/png;base64,"
    assert image["url"].startswith(prefix) and "28-day trend" in image["altText"]
    with Image.open(io.BytesIO(base64.b64decode(image["url"][len(prefix) :]))) as png:
        assert png.format == "PNG" and 300 <= png.width <= 560
    texts = " ".join(text for _, text in strings(card))
    assert "CX digest · Team support · Mon 2 Nov 2026" in texts
    assert "vs previous day" in texts and "95% CI" in texts and "Closed loop" in texts
    assert card["fallbackText"].startswith("CX digest · Team support")


async def test_without_charts_there_is_no_image(
    notifier: TeamsNotifier, connector_fake: FakeConnector
) -> None:
    activity = await sent_activity(notifier, connector_fake, digest_row(team_digest("support")))
    [card] = assert_valid_activity(activity, cards=1)
    assert not [e for e in card["body"] if e["type"] == "Image"]
    assert NO_CHART_ROOM not in json.dumps(card, ensure_ascii=False)


def test_a_chart_that_cannot_fit_is_left_out_with_a_line_saying_so() -> None:
    digest = replace(team_digest("support"), charts=True)
    activity = team_digest_activity(digest, [b"\x89PNG" + b"\0" * 30_000])
    [card] = assert_valid_activity(activity, cards=1)
    assert not [e for e in card["body"] if e["type"] == "Image"]
    assert NO_CHART_ROOM in [e.get("text") for e in card["body"]]


async def test_every_piece_of_outside_text_in_a_digest_is_shown_literally(
    notifier: TeamsNotifier, connector_fake: FakeConnector
) -> None:
    digest = planted_digest(charts=True)
    activity = await sent_activity(notifier, connector_fake, digest_row(digest, render_team_digest(digest)))
    [card] = assert_valid_activity(activity, cards=1)
    assert_literal(card, MARKS)
    shown = json.dumps(card, ensure_ascii=False).replace("\u200b", "")
    assert shown.count("PWNED") >= 5 + 5 + 1  # the comments, the annotations, the theme: there, inert
    assert LeakScanner().scan(activity, chat=False) == []


async def test_a_quiet_day_and_a_low_sample_say_so(
    notifier: TeamsNotifier, connector_fake: FakeConnector
) -> None:
    quiet = replace(team_digest("support"), responses=0, metrics=(), negative_comments=(), themes=())
    low = team_digest("thin", per_day=12)
    await notifier.deliver(digest_row(quiet))
    await notifier.deliver(digest_row(low))
    quiet_card, low_card = (assert_valid_activity(c.body, cards=1)[0] for c in connector_fake.calls("send"))
    assert "A quiet day: no feedback received." in visible_texts(quiet_card)
    grey = [t for t in map(visible, subtle_texts(low_card)) if "low sample (n=" in t]
    assert len(grey) == 3 and not [e for e in low_card["body"] if e["type"] == "FactSet"][:-1]
    assert not any("▁" in t or "█" in t for t in grey)  # a low sample is never a trend


def subtle_texts(card: dict[str, Any]) -> list[str]:
    return [e["text"] for e in card["body"] if e.get("isSubtle")]


def with_a_drop(digest: TeamDigest) -> TeamDigest:
    """The team's CSAT fell significantly since the previous day."""
    fall = Change(delta=-9.0, ci_low=-14.0, ci_high=-4.0, verdict=VERDICT_SIGNIFICANT, direction="down")
    metrics = tuple(replace(m, vs_previous_day=fall) if m.metric == "csat" else m for m in digest.metrics)
    return replace(digest, metrics=metrics)


def leadership(teams: int) -> LeadershipDigest:
    """`teams` teams, every third a low sample, every 500th (from the 7th) with a significant CSAT drop."""
    full, thin = team_digest("full"), team_digest("thin", per_day=10)
    digest = LeadershipDigest(
        report_date=DAY,
        generated_at=NOW,
        teams=tuple(
            replace(
                thin if i % 3 == 0 else full,
                team_key=f"t{i}",
                team_name=f"Team number {i} with a long name" + (f" {PLANTED}" if i == 1 else ""),
                cases=replace(full.cases, overdue=i % 17),
            )
            for i in range(teams)
        ),
    )
    teams_ = tuple(with_a_drop(t) if int(t.team_key[1:]) % 500 == 7 else t for t in digest.teams)
    return replace(digest, teams=teams_)


def table_of(card: dict[str, Any]) -> list[list[str]]:
    [table] = [e for e in card["body"] if e["type"] == "Table"]
    return [[cell["items"][0]["text"] for cell in row["cells"]] for row in table["rows"]]


async def test_a_small_leadership_digest_shows_every_team_in_order(
    notifier: TeamsNotifier, connector_fake: FakeConnector
) -> None:
    activity = await sent_activity(notifier, connector_fake, digest_row(leadership(5)))
    [card] = assert_valid_activity(activity, cards=1)
    rows = table_of(card)
    assert rows[0][:4] == ["Team", "NPS", "CSAT", "CES"]
    assert [r[0].replace("\u200b", "").split(" with")[0] for r in rows[1:]] == [
        f"Team number {i}" for i in range(5)
    ]
    assert rows[1][1] == "—" or rows[1][1].startswith("(")  # team 0 is a low sample: never judged
    assert_literal(card, MARKS)


async def test_the_leadership_digest_at_2500_teams_is_summarised_and_clipped_under_the_limit(
    notifier: TeamsNotifier, connector_fake: FakeConnector
) -> None:
    digest = leadership(2500)
    activity = await sent_activity(notifier, connector_fake, digest_row(digest))
    [card] = assert_valid_activity(activity, cards=1)
    size = activity_bytes(activity)
    assert 20_000 < size < 28_000  # the room is used, and never overrun
    rows = table_of(card)[1:]
    assert 30 <= len(rows) < 2500
    summary = next(e for e in card["body"] if e["type"] == "FactSet")
    facts = {f["title"]: f["value"] for f in summary["facts"]}
    assert facts["Teams"].startswith("2500 (")
    assert facts["Responses"] == str(sum(t.responses for t in digest.teams))
    note = next(e["text"] for e in card["body"] if "Showing" in e.get("text", ""))
    assert f"Showing {len(rows)} of 2500 teams" in note
    # What needs attention comes first: the significant drops (a low sample's never counts: 507 and
    # 2007 are thin teams), then the most overdue cases.
    names = [visible(r[0]) for r in rows]
    assert set(names[:3]) == {f"Team number {i} with a long name" for i in (7, 1007, 1507)}
    assert all("▼" in row[2] for row in rows[:3])
    overdue = [int(r[5].split("/")[2]) for r in rows[3:]]
    assert overdue == sorted(overdue, reverse=True) and overdue[0] == 16
    assert visible(facts["Significant drops"]).startswith("3 teams: Team number")
    assert_literal(card, MARKS)


async def test_a_digest_queued_by_the_scheduler_reaches_the_teams_channel_as_a_card_once(
    teams: TeamsSender, runtime: Runtime, clock: FrozenClock, connector_fake: FakeConnector
) -> None:
    """The whole way: the claiming transaction queues the digest (cxbot.digest.posting), the outbox
    worker hands the row to the Teams notifier, the card with its chart goes to the team's channel."""
    await teams.post(teams.activity(INSTALL))  # the bot is in the team: support's channel is known
    digest = replace(team_digest("support", name="Customer Support"), charts=True)
    async with transaction(runtime.sessions) as session:
        await deliver_digest(session, scope="support", digest=digest, now=clock.now)
    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    await worker.run_once(now=clock.now)
    await worker.run_once(now=clock.now)
    [sent] = connector_fake.calls("send")
    assert connector_fake.conversation_of(sent) == TEAMS_CHANNEL
    [card] = assert_valid_activity(sent.body, cards=1)
    assert [e["type"] for e in card["body"]][:3] == ["TextBlock", "TextBlock", "Image"]
    assert visible(card["body"][0]["text"]) == "CX digest · Customer Support · Mon 2 Nov 2026"
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(OutboxMessage.kind, OutboxMessage.status).where(OutboxMessage.platform == "msteams")
            )
        ).all()
    assert [tuple(r) for r in rows] == [("digest", "sent")]


async def test_a_row_whose_digest_does_not_decode_posts_its_text(
    notifier: TeamsNotifier, connector_fake: FakeConnector
) -> None:
    row = digest_row(team_digest("support"), "Support: CSAT 82% <b>up</b>")
    row.payload["digest"] = {"kind": "team", "data": {"team_key": "support"}}  # fields missing
    activity = await sent_activity(notifier, connector_fake, row)
    assert "attachments" not in activity and "&lt;b&gt;up&lt;/b&gt;" in activity["text"]
