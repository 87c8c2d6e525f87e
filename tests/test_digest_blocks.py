"""Block Kit digests: validated by slack_sdk, within Slack's limits at the largest sizes, low samples grey.

Also: the digest survives the outbox's JSON round trip unchanged, so what is posted is what was built.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from cxbot.digest.content import metric_digest
from cxbot.digest.model import CaseHealth, LeadershipDigest, NegativeComment, TeamDigest, Theme
from cxbot.digest.serialize import digest_from_json, digest_to_json, slim_for_table
from cxbot.scores.annotations import AnnotationEffect, judge
from handlers.slack.blocks import (
    MAX_BLOCKS,
    MAX_HEADER,
    MAX_TEXT,
)
from handlers.slack.digest_blocks import digest_message, leadership_rows

DAY = date(2026, 11, 2)
NOW = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def distributions(metric: str, per_day: int) -> list[dict[float, int]]:
    """28 days of answers with a slow drift, so scores and changes differ from day to day."""
    days = []
    for i in range(28):
        if metric == "nps":
            days.append({10.0: per_day // 2 + i % 5, 8.0: per_day // 4, 3.0: per_day // 4 + (i * 7) % 6})
        elif metric == "csat":
            days.append({5.0: per_day // 2 + i % 7, 4.0: per_day // 4, 1.0: per_day // 4 + i % 3})
        else:
            days.append({7.0: per_day // 2, 4.0: per_day // 4 + i % 4, 2.0: per_day // 4})
    return days


def health() -> CaseHealth:
    return CaseHealth(
        as_of=NOW,
        window_days=7,
        new=12345,
        open=67890,
        overdue=4321,
        median_seconds_to_acknowledge=4000.0,
        acknowledged_n=999,
        median_seconds_to_first_contact=90000.0,
        contacted_n=888,
        cases_in_window=1000,
        contact_rate=88.8,
        recovery_rate=42.0,
        resurveyed_n=50,
        resolved_n=700,
        first_contact_resolved_n=400,
        first_contact_resolution=57.1,
        median_seconds_to_resolve=100000.0,
        p90_seconds_to_resolve=400000.0,
    )


def effect(i: int) -> AnnotationEffect:
    metrics = tuple(
        judge(metric=m, before={5.0: 40, 2.0: 20}, after={5.0: 10 * i, 2.0: 3}, min_n=30)
        for m in ("csat", "ces")
    )
    return AnnotationEffect(
        id=i,
        touchpoint=f"touchpoint-{i}-" + "x" * 40,
        team="support",
        text="a long description of what changed <b>&</b> " * 11,
        created_by="U0SUPMGR1",
        effective_at=NOW - timedelta(days=10 * i),
        window=timedelta(days=min(28, 10 * i)),
        metrics=metrics,
        needs=0,
        min_n=30,
    )


def team_digest(key: str, *, per_day: int = 60, name: str | None = None, annotations: int = 0) -> TeamDigest:
    dates = [DAY - timedelta(days=27 - i) for i in range(28)]
    metrics = tuple(
        metric_digest(metric=m, daily=distributions(m, per_day), dates=dates, min_n=30)
        for m in ("nps", "csat", "ces")
    )
    comment = "Refund never arrived, call me at jo****@ex****.com <!channel> & *bold* " * 5
    return TeamDigest(
        team_key=key,
        team_name=name or f"Team {key}",
        timezone="Europe/London",
        report_date=DAY,
        window_start=datetime(2026, 11, 2, tzinfo=UTC),
        window_end=datetime(2026, 11, 3, tzinfo=UTC),
        generated_at=NOW,
        min_n=30,
        responses=sum(sum(m.day.distribution[i][1] for i in range(len(m.day.distribution))) for m in metrics),
        metrics=metrics,
        negative_comments=tuple(
            NegativeComment(
                metric="csat", score=1.0, text=comment[:280], touchpoint="support-phone", received_at=NOW
            )
            for _ in range(5)
        ),
        negative_total=99,
        themes=tuple(Theme(phrase=f"theme number {i}", comments=10 - i) for i in range(5)),
        cases=health(),
        annotations=tuple(effect(i + 1) for i in range(annotations)),
    )


def texts(value: object) -> list[str]:
    if isinstance(value, dict):
        found = [value["text"]] if isinstance(value.get("text"), str) else []
        return found + [
            t for k, v in value.items() if k != "text" or not isinstance(v, str) for t in texts(v)
        ]
    if isinstance(value, list):
        return [t for item in value for t in texts(item)]
    return []


def assert_within_limits(message: dict) -> None:
    blocks = message["blocks"]
    assert 0 < len(blocks) <= MAX_BLOCKS
    assert len(message["text"]) <= 4000
    assert all(len(text) <= MAX_TEXT for text in texts(blocks))
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER
        if block["type"] == "section":
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
    json.dumps(message)  # plain JSON, ready for the Web API


def test_the_largest_team_digest_is_valid_and_within_limits() -> None:
    digest = team_digest("support", name="A very long team name " * 10, annotations=5)
    message = digest_message(digest)
    assert_within_limits(message)
    blocks = message["blocks"]
    assert blocks[0]["type"] == "header" and blocks[0]["text"]["text"].startswith("CX digest · A very long")
    sections = [b for b in blocks if b["type"] == "section" and b.get("fields")]
    nps = next(b for b in sections if b["text"]["text"] == "*NPS*")
    titles = [f["text"].split("\n")[0] for f in nps["fields"]]
    assert titles == [
        "*Score*",
        "*n*",
        "*95% CI*",
        "*vs previous day*",
        "*vs Mon 26 Oct*",
        "*7 days*",
        "*28 days*",
    ]
    verdicts = " ".join(f["text"] for f in nps["fields"][3:5])
    assert "significant" in verdicts or "no real change" in verdicts
    everything = json.dumps(blocks, ensure_ascii=False)
    assert "<!channel>" not in everything and "&lt;!channel&gt;" in everything  # escaped, never a ping
    assert "First contact resolution" in everything and "57% (n=700)" in everything
    assert "median 1d 3h · p90 4d 15h (n=700)" in everything
    assert "Before / after annotations" in everything


def test_a_low_sample_is_a_grey_context_line_with_no_trend() -> None:
    digest = team_digest("support", per_day=12)
    blocks = digest_message(digest)["blocks"]
    metric_sections = [
        b for b in blocks if b["type"] == "section" and b.get("fields") and "Closed" not in b["text"]["text"]
    ]
    assert metric_sections == []  # no score dressed as a trend
    grey = [b["elements"][0]["text"] for b in blocks if b["type"] == "context"]
    low = [t for t in grey if "low sample (n=" in t]
    assert len(low) == 3
    n = digest.metric("csat").day.n
    assert any(f"low sample (n={n} < 30), no trend" in t for t in low)
    assert not any("▁" in t or "█" in t for t in low)  # no sparkline


@pytest.mark.parametrize("teams", [50, 2500])
def test_the_leadership_table_puts_all_teams_side_by_side_within_limits(teams: int) -> None:
    full, thin = team_digest("full"), team_digest("thin", per_day=10)
    digest = LeadershipDigest(
        report_date=DAY,
        generated_at=NOW,
        teams=tuple(
            replace(
                thin if i % 3 == 0 else full, team_key=f"t{i}", team_name=f"Team number {i} with a long name"
            )
            for i in range(teams)
        ),
    )
    message = digest_message(digest)
    assert_within_limits(message)
    tables = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert all(t.startswith("```\nTeam") for t in tables)
    rows = leadership_rows(digest)
    assert rows[0].split() == ["Team", "NPS", "CSAT", "CES", "Responses", "Cases", "new/open/overdue"]
    assert len({len(r) for r in rows[1:]}) <= 2  # columns line up (the last column may be ragged)
    assert "(" in rows[1]  # team 0 has a low sample: parenthesised, not judged
    shown = sum(t.count("\n") - 2 for t in tables)
    if teams == 50:
        assert shown == 50
    else:
        assert shown < teams and "more teams (cut at Slack's limit)" in json.dumps(
            message["blocks"], ensure_ascii=False
        )


def test_a_digest_survives_the_outbox_json_round_trip() -> None:
    digest = team_digest("support", annotations=2)
    payload = json.loads(json.dumps(digest_to_json(digest)))
    assert digest_from_json(payload) == digest
    leadership = slim_for_table(LeadershipDigest(report_date=DAY, generated_at=NOW, teams=(digest,)))
    assert digest_from_json(json.loads(json.dumps(digest_to_json(leadership)))) == leadership
    assert len(json.dumps(digest_to_json(leadership))) < 8000
