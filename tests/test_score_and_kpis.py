"""`/cx score` and the case KPIs (design.md §2, §5), checked against computations written here.

First contact resolution and time to resolve are recomputed independently with the standard library
(`statistics.median`, `statistics.quantiles(method="inclusive")`, which interpolates like numpy's
default) from the same rows the test inserted.
"""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta

from cxbot.authz import Actor
from cxbot.commands.dispatch import Where, run_text
from cxbot.digest import TeamDigest, build_team_digest, render_team_digest
from cxbot.digest.text import format_duration
from cxbot.models import Case, Contact, Feedback, Resurvey
from cxbot.runtime import Runtime
from cxbot.scores.report import ScoreReport
from tests.support.clock import FrozenClock

AGENT = Actor("U0SUPAGT1", platform="console")
CONSOLE = Where(platform="console")
NOW = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)

#: (hours from creation to resolution, contact attempts before resolving, hours before NOW resolved)
RESOLVED = [(5, 1, 4), (30, 1, 49), (2, 2, 25), (70, 0, 73), (11, 1, 97), (48, 3, 121), (8, 1, 145)]


async def seed_cases(runtime: Runtime) -> list[tuple[datetime, timedelta, int]]:
    """Resolved support cases in the last 7 days, plus ones that must not count; returns the counted."""
    counted = []
    async with runtime.sessions() as session, session.begin():

        def case(created: datetime, resolved: datetime | None, n: int, team: str = "support") -> Case:
            row = Case(
                team_key=team,
                touchpoint_key="support-phone" if team == "support" else None,
                title=f"case {n}",
                state="resolved" if resolved else "acknowledged",
                routing_rule="touchpoint",
                routing_reason="test",
                created_at=created,
                resolved_at=resolved,
            )
            session.add(row)
            return row

        def contacts(row: Case, times: list[datetime]) -> None:
            for i, at in enumerate(times):
                session.add(
                    Contact(
                        case_id=row.id,
                        channel="email",
                        status="sent",
                        idempotency_key=f"{row.title}-{i}",
                        created_at=at,
                    )
                )

        for n, (hours, attempts, hours_ago) in enumerate(RESOLVED):
            resolved = NOW - timedelta(hours=hours_ago)
            created = resolved - timedelta(hours=hours)
            row = case(created, resolved, n)
            await session.flush()
            contacts(row, [created + timedelta(minutes=10 * (i + 1)) for i in range(attempts)])
            counted.append((resolved, resolved - created, attempts))
        # Not counted: resolved 9 days ago, still open, another team's, and a contact after resolving.
        case(NOW - timedelta(days=12), NOW - timedelta(days=9), 100)
        case(NOW - timedelta(days=1), None, 101)
        case(NOW - timedelta(days=2), NOW - timedelta(days=1), 102, team="billing")
        late = case(NOW - timedelta(hours=20), NOW - timedelta(hours=10), 103)
        await session.flush()
        contacts(late, [NOW - timedelta(hours=15), NOW - timedelta(hours=5)])  # one before, one after
        counted.append((NOW - timedelta(hours=10), timedelta(hours=10), 1))
    return counted


def expected(counted: list[tuple[datetime, timedelta, int]]) -> tuple[int, int, float, float]:
    seconds = [d.total_seconds() for _, d, _ in counted]
    once = sum(1 for _, _, attempts in counted if attempts == 1)
    return (
        len(counted),
        once,
        statistics.median(seconds),
        statistics.quantiles(seconds, n=10, method="inclusive")[8],
    )


async def test_case_kpis_in_score_and_digest_match_an_independent_computation(
    runtime: Runtime, clock: FrozenClock
) -> None:
    counted = await seed_cases(runtime)
    resolved, once, median, p90 = expected(counted)
    assert (resolved, once) == (8, 5)
    clock.now = NOW
    reply = await run_text(runtime, "score support 7d", actor=AGENT, where=CONSOLE)
    assert reply.ok, reply.text
    assert isinstance(reply.report, ScoreReport)
    kpis = reply.report.kpis
    assert kpis is not None
    assert (kpis.resolved, kpis.first_contact_resolved) == (resolved, once)
    assert kpis.first_contact_resolution == 100 * once / resolved
    assert kpis.median_seconds_to_resolve == median
    assert abs(kpis.p90_seconds_to_resolve - p90) < 1e-6
    assert (
        f"Cases resolved: 8 · first contact resolution 62% (5 of 8) · time to resolve median "
        f"{format_duration(median)}, p90 {format_duration(p90)}"
    ) in reply.text

    # The digest's closed-loop health: cases resolved in the 7 local days ending on the reported day.
    async with runtime.sessions() as session:
        digest = await build_team_digest(
            session,
            team=runtime.config.team("support"),
            report_date=date(2026, 11, 2),
            now=NOW,
            config=runtime.config,
        )
    # London is on GMT from 25 October 2026: the 7 local days ending 2 November are these UTC instants.
    start, end = datetime(2026, 10, 27, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
    in_digest = [row for row in counted if start <= row[0] < end]
    assert len(in_digest) == 7  # the case resolved at 05:00 on 3 November is after the reported day
    resolved, once, median, p90 = expected(in_digest)
    health = digest.cases
    assert (health.resolved_n, health.first_contact_resolved_n) == (resolved, once)
    assert health.median_seconds_to_resolve == median
    assert abs(health.p90_seconds_to_resolve - p90) < 1e-6
    assert "first contact resolution" in reply.text


async def add(runtime: Runtime, *, metric: str, scores: list[float], start: datetime, tag: str) -> None:
    async with runtime.sessions() as session, session.begin():
        session.add_all(
            Feedback(
                source="gen",
                external_id=f"{tag}-{i}",
                metric=metric,
                score=s,
                touchpoint_key="support-phone",
                team_key="support",
                is_negative=False,
                tags=[],
                received_at=start + timedelta(minutes=30 * i),
            )
            for i, s in enumerate(scores)
        )


async def test_score_compares_with_the_previous_window_and_marks_low_samples(
    runtime: Runtime, clock: FrozenClock
) -> None:
    clock.now = NOW
    week, fortnight = NOW - timedelta(days=7), NOW - timedelta(days=14)
    await add(runtime, metric="csat", scores=[5.0] * 50 + [1.0] * 50, start=fortnight, tag="c0")
    await add(runtime, metric="csat", scores=[5.0] * 90 + [1.0] * 10, start=week, tag="c1")
    await add(runtime, metric="nps", scores=[10.0] * 6 + [0.0] * 6, start=week, tag="n1")
    reply = await run_text(runtime, "score", actor=AGENT, where=CONSOLE)  # the agent's one team: support
    lines = reply.text.splitlines()
    assert lines[0] == (
        "Scores · Customer Support (team) · last 7 days to 2026-11-03 09:00 UTC, vs the 7 days before"
    )
    csat = next(line for line in lines if line.startswith("CSAT"))
    assert "90.0% (n=100" in csat and "before 50.0% (n=100): +40.0 pts, significant" in csat
    nps = next(line for line in lines if line.startswith("NPS"))
    assert "+0.0 (n=12" in nps and "[low sample]" in nps and nps.endswith("low sample")
    touchpoint = await run_text(runtime, "score 28d phone", actor=AGENT, where=CONSOLE)
    assert touchpoint.text.startswith("Scores · Phone support (touchpoint) · last 28 days")
    everyone = await run_text(runtime, "score all 1d", actor=AGENT, where=CONSOLE)
    assert everyone.text.startswith("Scores · all teams (every team) · last 1 day")
    assert "Cases resolved" not in everyone.text
    wrong = await run_text(runtime, "score nowhere", actor=AGENT, where=CONSOLE)
    assert not wrong.ok and "'nowhere' is neither a team" in wrong.text
    bad = await run_text(runtime, "score support 7d 28d", actor=AGENT, where=CONSOLE)
    assert not bad.ok and "Usage: /cx score [team|touchpoint] [1d|7d|28d|90d]" in bad.text


async def test_digest_preview_through_run_text_is_the_teams_digest_of_yesterday(
    runtime: Runtime, clock: FrozenClock
) -> None:
    clock.now = NOW
    await add(
        runtime,
        metric="csat",
        scores=[5.0] * 30 + [1.0] * 10,
        start=datetime(2026, 11, 2, 2, 0, tzinfo=UTC),
        tag="d",
    )
    reply = await run_text(runtime, "digest support preview", actor=AGENT, where=CONSOLE)
    assert reply.ok and reply.ephemeral
    assert isinstance(reply.report, TeamDigest) and reply.report.report_date == date(2026, 11, 2)
    assert reply.text == render_team_digest(reply.report)
    assert reply.text.startswith("CX digest · Customer Support · Mon 2 Nov 2026 (Europe/London)")
    assert "CSAT % satisfied (4-5): 75.0% (n=40" in reply.text
    outsider = await run_text(
        runtime, "digest support preview", actor=Actor("U0LOGAGT1", "slack"), where=CONSOLE
    )
    assert not outsider.ok and outsider.text.startswith("Not allowed: only members of support")
    nobody = await run_text(runtime, "digest preview", actor=Actor("U0STRANGER", "slack"), where=CONSOLE)
    assert not nobody.ok and nobody.text.startswith("Which team? Usage: /cx digest <team> preview")


async def test_the_digest_fills_its_recovery_slot_from_answered_resurveys(runtime: Runtime) -> None:
    answered = datetime(2026, 11, 1, 15, 0, tzinfo=UTC)
    async with runtime.sessions() as session, session.begin():
        for n, outcome in enumerate(["recovered", "unchanged", "recovered", "worse"]):
            row = Case(
                team_key="support",
                title=f"loop {n}",
                state="closed",
                routing_rule="touchpoint",
                routing_reason="test",
                created_at=answered - timedelta(days=2),
                recovery_outcome=outcome,
            )
            session.add(row)
            await session.flush()
            session.add(
                Resurvey(
                    case_id=row.id,
                    nonce=f"nonce-{n}",
                    metric="csat",
                    created_at=answered - timedelta(days=1),
                    expires_at=answered + timedelta(days=6),
                    answered_at=answered,
                )
            )
    async with runtime.sessions() as session:
        digest = await build_team_digest(
            session, team=runtime.config.team("support"), report_date=date(2026, 11, 2), now=NOW
        )
    assert (digest.cases.recovery_rate, digest.cases.resurveyed_n) == (50.0, 4)
    assert "recovery rate 50% (n=4)" in render_team_digest(digest)
