"""What a digest says, checked against computations written independently here (design.md §2, §8)."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from cxbot.digest import build_team_digest, render_team_digest
from cxbot.digest.content import day_boundaries, explain_window_query
from cxbot.digest.text import sparkline
from cxbot.digest.themes import extract_themes
from cxbot.ingest.csv_import import ImportOptions, import_csv
from cxbot.models import Case, Contact, Feedback
from cxbot.runtime import Runtime
from tests.conftest import FIXTURES, ROOT
from tests.support.clock import FrozenClock

SUPPORT_CSV = FIXTURES / "data" / "flipkart_csat_support_sample.csv"
#: The support team owns the channels the survey was answered on (Inbound/Outcall → phone, Email).
SUPPORT_IMPORT = ImportOptions(
    mapping={
        "external_id": "Unique id",
        "score": "CSAT Score",
        "comment": "Customer Remarks",
        "touchpoint": "channel_name",
        "received_at": "Survey_response_Date",
    },
    constants={"metric": "csat"},
)
Z = 1.96


def rows_on(day: str) -> list[dict[str, str]]:
    with SUPPORT_CSV.open(encoding="utf-8-sig", newline="") as handle:
        return [r for r in csv.DictReader(handle) if r["Survey_response_Date"] == day]


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson score interval, written out from the textbook formula."""
    p = successes / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return 100 * (centre - half), 100 * (centre + half)


async def test_support_digest_from_the_real_csat_sample_matches_an_independent_computation(
    runtime: Runtime,
) -> None:
    report = await import_csv(runtime, SUPPORT_CSV, SUPPORT_IMPORT)
    assert report.errors == []
    day_rows, next_rows = rows_on("01-Aug-23"), rows_on("02-Aug-23")
    scores = [int(r["CSAT Score"]) for r in day_rows]
    n, satisfied = len(scores), sum(1 for s in scores if s >= 4)
    now = datetime(2023, 8, 3, 8, 0, tzinfo=UTC)

    async with runtime.sessions() as session:
        digest = await build_team_digest(
            session, team=runtime.config.team("support"), report_date=date(2023, 8, 1), now=now
        )
        following = await build_team_digest(
            session, team=runtime.config.team("support"), report_date=date(2023, 8, 2), now=now
        )

    csat = digest.metric("csat")
    assert csat is not None and [m.metric for m in digest.metrics] == ["csat"]
    assert (csat.day.n, n) == (47, 47)
    assert csat.day.score == pytest.approx(100 * satisfied / n)
    low, high = wilson(satisfied, n)
    assert (csat.day.ci_low, csat.day.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert not csat.low_sample
    assert dict(csat.day.distribution) == {float(k): v for k, v in Counter(scores).items()}
    assert digest.responses == n
    # Nothing on 31 July or 25 July: the comparisons say so instead of inventing a change.
    assert csat.vs_previous_day.verdict == "low sample" and csat.vs_previous_day.delta is None
    assert csat.vs_same_weekday.verdict == "low sample"

    # 2 August against 1 August: a two-proportion comparison done here by hand.
    later = [int(r["CSAT Score"]) for r in next_rows]
    n2, s2 = len(later), sum(1 for s in later if s >= 4)
    p1, p2 = satisfied / n, s2 / n2
    delta = 100 * (p2 - p1)
    half = Z * 100 * math.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n2)
    change = following.metric("csat").vs_previous_day  # type: ignore[union-attr]
    assert change.delta == pytest.approx(delta)
    assert (change.ci_low, change.ci_high) == (pytest.approx(delta - half), pytest.approx(delta + half))
    assert change.verdict == ("significant" if abs(delta) > half else "no real change")
    assert following.metric("csat").last_7_days.n == n + n2  # type: ignore[union-attr]

    # Negative answers of the day: CSAT 1-2, plus any the sentiment model added; worst first.
    negatives = [r for r in day_rows if int(r["CSAT Score"]) <= 2]
    assert digest.negative_total >= len(negatives)
    assert digest.negative_comments and digest.negative_comments[0].score == 1.0
    text = render_team_digest(digest)
    assert "CX digest · Customer Support · Tue 1 Aug 2023 (Europe/London)" in text
    assert f"{100 * satisfied / n:.1f}% (n=47, 95% CI {low:.1f}%–{high:.1f}%)" in text
    assert "recovery rate n/a" in text


async def test_local_day_boundaries_follow_dst_in_the_query(runtime: Runtime) -> None:
    """Logistics is in New York; 1 Nov 2026 is a 25-hour day there (04:00Z to 05:00Z next day)."""
    moments = {
        "oct31-last-minute": datetime(2026, 11, 1, 3, 59, tzinfo=UTC),  # 23:59 EDT on 31 Oct
        "nov1-first-minute": datetime(2026, 11, 1, 4, 0, tzinfo=UTC),  # 00:00 EDT
        "nov1-extra-hour": datetime(2026, 11, 2, 4, 30, tzinfo=UTC),  # 23:30 EST, the 25th hour
        "nov2-first-minute": datetime(2026, 11, 2, 5, 0, tzinfo=UTC),  # 00:00 EST on 2 Nov
    }
    async with runtime.sessions() as session, session.begin():
        session.add_all(
            Feedback(source="t", external_id=k, metric="nps", score=10, team_key="logistics", received_at=v)
            for k, v in moments.items()
        )
    async with runtime.sessions() as session:
        digest = await build_team_digest(
            session, team=runtime.config.team("logistics"), report_date=date(2026, 11, 1), now=runtime.clock()
        )
    nps = digest.metric("nps")
    assert nps is not None
    assert (nps.day.n, nps.previous_day.n) == (2, 1)
    assert digest.window_end - digest.window_start == timedelta(hours=25)
    assert [p.n for p in nps.daily[-2:]] == [1, 2]


async def test_negative_comments_are_masked_and_themes_counted(runtime: Runtime) -> None:
    comments = [
        "Refund not received, call me on +44 20 7946 0000 or ada@example.com",
        "Still no refund received after two weeks",
        "Courier was rude. Refund received late",
    ]
    async with runtime.sessions() as session, session.begin():
        session.add_all(
            Feedback(
                source="t",
                external_id=str(i),
                metric="csat",
                score=1,
                comment=text,
                is_negative=True,
                team_key="support",
                received_at=datetime(2026, 6, 9, 12, i, tzinfo=UTC),
            )
            for i, text in enumerate(comments)
        )
    async with runtime.sessions() as session:
        digest = await build_team_digest(
            session, team=runtime.config.team("support"), report_date=date(2026, 6, 9), now=runtime.clock()
        )
    texts = [c.text for c in digest.negative_comments]
    assert len(texts) == 3
    rendered = render_team_digest(digest)
    assert "ada@example.com" not in rendered and "7946 0000" not in rendered
    assert any("a***@e***.com" in t and "•••00" in t for t in texts)
    # "refund" and "received" recur in all three; as neighbours in a clause, in two of them.
    assert [(t.phrase, t.comments) for t in digest.themes] == [
        ("received", 3),
        ("refund", 3),
        ("refund received", 2),
    ]


def test_themes_prefer_the_phrase_that_explains_its_words() -> None:
    themes = extract_themes(
        [
            "Delivery time was far too long",
            "long delivery time, again",
            "The delivery time is a joke and the refund is late",
            "refund late",
        ]
    )
    assert [(t.phrase, t.comments) for t in themes] == [
        ("delivery time", 3),
        ("late", 2),
        ("long", 2),
        ("refund", 2),
    ]
    # "delivery" and "time" never recur without each other, so the phrase hides them.
    assert all(t.phrase not in ("delivery", "time") for t in themes)
    assert extract_themes(["one off remark"]) == ()


def test_sparkline_scales_to_its_own_range_and_marks_missing_days() -> None:
    assert sparkline([1, None, 8]) == "▁·█"
    assert sparkline([5, 5]) == "▅▅"
    assert sparkline([None, None]) == "··"


async def test_closed_loop_health_reads_cases_and_contacts(runtime: Runtime, clock: FrozenClock) -> None:
    clock.now = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
    day = datetime(2026, 6, 9, 10, 0, tzinfo=UTC)  # 11:00 in London on the reported day
    common = {"team_key": "support", "routing_rule": "t", "routing_reason": "t"}
    async with runtime.sessions() as session, session.begin():
        acked = Case(
            title="acked and contacted",
            state="contacted",
            created_at=day,
            acknowledged_at=day + timedelta(minutes=30),
            contacted_at=day + timedelta(hours=3),
            ack_due_at=day + timedelta(hours=2),
            resolve_due_at=day + timedelta(days=3),
            **common,
        )
        waiting = Case(
            title="never acknowledged",
            state="new",
            created_at=day + timedelta(hours=1),
            ack_due_at=day + timedelta(hours=2),
            resolve_due_at=day + timedelta(days=3),
            **common,
        )
        older = Case(
            title="older, acked in 90 min, closed",
            state="closed",
            created_at=day - timedelta(days=3),
            acknowledged_at=day - timedelta(days=3) + timedelta(minutes=90),
            **common,
        )
        session.add_all([acked, waiting, older])
        await session.flush()
        session.add(
            Contact(
                case_id=older.id,
                channel="email",
                status="sent",
                idempotency_key="k1",
                created_at=day - timedelta(days=3) + timedelta(hours=5),
            )
        )
    async with runtime.sessions() as session:
        digest = await build_team_digest(
            session, team=runtime.config.team("support"), report_date=date(2026, 6, 9), now=clock.now
        )
    health = digest.cases
    assert (health.new, health.open, health.overdue) == (2, 2, 1)
    assert health.cases_in_window == 3
    assert health.median_seconds_to_acknowledge == pytest.approx(60 * 60)  # median of 30 and 90 minutes
    assert health.median_seconds_to_first_contact == pytest.approx(4 * 3600)  # median of 3 h and 5 h
    assert health.contact_rate == pytest.approx(100 * 2 / 3)
    assert health.recovery_rate is None


async def test_the_window_query_uses_the_team_time_index(runtime: Runtime) -> None:
    bounds = day_boundaries(last_day=date(2026, 6, 9), days=28, zone=ZoneInfo("Europe/London"))
    async with runtime.sessions() as session:
        if runtime.engine.dialect.name == "postgresql":
            # An empty table is cheapest to scan whole; the question is whether the index fits at all.
            await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(await explain_window_query(session, team_key="support", bounds=bounds))
    # One range of the (team_key, received_at) index on both backends: the window, not the history.
    assert "ix_feedback_team_key_received_at" in plan
    assert "ix_feedback_received_at " not in plan and "Seq Scan" not in plan and "SCAN feedback" not in plan
    if runtime.engine.dialect.name == "sqlite":
        assert "(team_key,received_at)>(?,?) AND (team_key,received_at)<(?,?)" in plan


# --------------------------------------------------------------------------- the command line


def run_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CXBOT_", "DATABASE_URL", "SLACK_"))}
    env = {**clean, "DATABASE_URL": database_url, "CXBOT_CONFIG": str(ROOT / "cxbot.example.yaml")}
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_dry_run_prints_the_digest(runtime: Runtime, database_url: str) -> None:
    await import_csv(runtime, SUPPORT_CSV, SUPPORT_IMPORT)
    done = run_cli(
        "digest", "--team", "support", "--date", "2023-08-01", "--dry-run", database_url=database_url
    )
    assert done.returncode == 0, done.stderr
    assert "CX digest · Customer Support · Tue 1 Aug 2023 (Europe/London)" in done.stdout
    assert "CSAT % satisfied (4-5): 87.2% (n=47" in done.stdout


def test_cli_refuses_an_unknown_team_and_a_bad_date() -> None:
    url = "sqlite:///" + str(ROOT / "never-created.db")
    unknown = run_cli("digest", "--team", "nobody", "--dry-run", database_url=url)
    assert unknown.returncode == 2
    assert "--team: 'nobody' is not a team (teams are: support, logistics" in unknown.stderr
    bad = run_cli("digest", "--team", "support", "--date", "2023-02-30", "--dry-run", database_url=url)
    assert bad.returncode == 2
    assert "--date: '2023-02-30' is not a date (use YYYY-MM-DD)" in bad.stderr
    assert "Traceback" not in unknown.stderr + bad.stderr
    assert not (ROOT / "never-created.db").exists()


async def test_cli_posts_through_the_same_claim_once(runtime: Runtime, database_url: str) -> None:
    await import_csv(runtime, SUPPORT_CSV, SUPPORT_IMPORT)
    first = run_cli("digest", "--team", "support", "--date", "2023-08-01", database_url=database_url)
    again = run_cli("digest", "--team", "support", "--date", "2023-08-01", database_url=database_url)
    assert first.returncode == 0, first.stderr
    assert "support 2023-08-01: sent" in first.stderr
    assert again.returncode == 0 and "support 2023-08-01: already sent earlier" in again.stderr


async def test_a_low_sample_is_flagged_and_never_called_a_change(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        session.add_all(
            Feedback(
                source="t",
                external_id=f"{day}-{i}",
                metric="nps",
                score=10 if day == 9 else 0,
                team_key="support",
                received_at=datetime(2026, 6, day, 12, i, tzinfo=UTC),
            )
            for day in (8, 9)
            for i in range(5)
        )
    async with runtime.sessions() as session:
        digest = await build_team_digest(
            session, team=runtime.config.team("support"), report_date=date(2026, 6, 9), now=runtime.clock()
        )
    nps = digest.metric("nps")
    assert nps is not None and nps.low_sample and nps.day.n == 5
    assert nps.vs_previous_day.delta == pytest.approx(200.0)  # -100 to +100, on 5 answers each
    assert nps.vs_previous_day.verdict == "low sample" and not nps.vs_previous_day.significant
    text = render_team_digest(digest)
    assert "NPS: +100.0 (n=5, 95% CI +100.0–+100.0) [low sample]" in text
    assert "low sample (+200.0 pts not judged)" in text
