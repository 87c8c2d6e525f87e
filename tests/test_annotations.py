"""Improvement annotations (design.md §8): `/cx annotate`, then the scores before and after each one.

Data is generated with a known effect at the annotation (or none); the verdicts are checked
against a hand computation of the two windows' CSAT and the CI of their difference.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from cxbot.authz import Actor
from cxbot.commands.dispatch import Where, run_text
from cxbot.models import Annotation, Feedback
from cxbot.runtime import Runtime
from cxbot.scores.annotations import judge
from cxbot.scores.report import ScoreReport
from tests.support.clock import FrozenClock

LOGISTICS_AGENT = Actor("U0LOGAGT1", platform="console")
SUPPORT_AGENT = Actor("U0SUPAGT1", platform="console")
CONSOLE = Where(platform="console")
ANNOTATED_AT = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
Z = 1.96


async def add_csat(
    runtime: Runtime,
    *,
    touchpoint: str,
    team: str,
    start: datetime,
    satisfied: int,
    unsatisfied: int,
    tag: str,
) -> None:
    """`satisfied` answers of 5 and `unsatisfied` answers of 2, spread one an hour from `start`."""
    scores = [5.0] * satisfied + [2.0] * unsatisfied
    async with runtime.sessions() as session, session.begin():
        session.add_all(
            Feedback(
                source="gen",
                external_id=f"{tag}-{i}",
                metric="csat",
                score=score,
                touchpoint=touchpoint,
                touchpoint_key=touchpoint,
                team_key=team,
                is_negative=score <= 2,
                tags=[],
                received_at=start + timedelta(hours=i),
            )
            for i, score in enumerate(scores)
        )


def hand_change(before: tuple[int, int], after: tuple[int, int]) -> tuple[float, float, float]:
    """(delta, CI low, CI high) of CSAT after − before, in points, from (satisfied, n) pairs."""
    (s1, n1), (s2, n2) = before, after
    p1, p2 = s1 / n1, s2 / n2
    se = 100 * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    delta = 100 * (p2 - p1)
    return delta, delta - Z * se, delta + Z * se


def test_judge_matches_a_hand_computation() -> None:
    shifted = judge(metric="csat", before={5.0: 60, 2.0: 40}, after={5.0: 85, 2.0: 15}, min_n=30)
    delta, low, high = hand_change((60, 100), (85, 100))
    assert shifted.verdict == "significant" and shifted.change.direction == "up"
    assert math.isclose(shifted.change.delta, delta)
    assert math.isclose(shifted.change.ci_low, low) and math.isclose(shifted.change.ci_high, high)
    assert low > 0  # the hand computation agrees: the interval excludes zero
    flat = judge(metric="csat", before={5.0: 70, 2.0: 30}, after={5.0: 72, 2.0: 28}, min_n=30)
    delta, low, high = hand_change((70, 100), (72, 100))
    assert flat.verdict == "no real change"
    assert math.isclose(flat.change.ci_low, low) and math.isclose(flat.change.ci_high, high)
    assert low < 0 < high
    recent = judge(metric="csat", before={5.0: 40}, after={5.0: 8, 2.0: 4}, min_n=30)
    assert (recent.verdict, recent.needs) == ("too recent", 18)
    few_before = judge(metric="csat", before={5.0: 10}, after={5.0: 40}, min_n=30)
    assert (few_before.verdict, few_before.needs) == ("too few before", 0)


async def test_annotate_records_a_dated_change_for_members_of_the_owning_team(
    runtime: Runtime, clock: FrozenClock
) -> None:
    clock.now = ANNOTATED_AT
    reply = await run_text(
        runtime, "annotate shipping new returns label", actor=LOGISTICS_AGENT, where=CONSOLE
    )
    assert reply.ok, reply.text
    assert "Noted at delivery (2026-09-01 12:00 UTC)" in reply.text
    refused = await run_text(runtime, "annotate delivery faster vans", actor=SUPPORT_AGENT, where=CONSOLE)
    assert not refused.ok and refused.text.startswith("Not allowed: only members of logistics")
    unknown = await run_text(runtime, "annotate teleport beam me up", actor=LOGISTICS_AGENT, where=CONSOLE)
    assert not unknown.ok and "'teleport' is not a touchpoint" in unknown.text
    bare = await run_text(runtime, "annotate delivery", actor=LOGISTICS_AGENT, where=CONSOLE)
    assert not bare.ok and "Usage: /cx annotate <touchpoint> <what changed>" in bare.text
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Annotation))).scalars().all()
    assert [(a.touchpoint_key, a.team_key, a.text, a.created_by, a.effective_at) for a in rows] == [
        ("delivery", "logistics", "new returns label", "U0LOGAGT1", ANNOTATED_AT)
    ]


async def test_score_of_a_touchpoint_shows_a_real_effect_as_significant_and_none_as_no_real_change(
    runtime: Runtime, clock: FrozenClock
) -> None:
    clock.now = ANNOTATED_AT
    for touchpoint in ("returns", "delivery"):
        reply = await run_text(
            runtime, f"annotate {touchpoint} new policy live", actor=LOGISTICS_AGENT, where=CONSOLE
        )
        assert reply.ok
    before, after = ANNOTATED_AT - timedelta(days=28), ANNOTATED_AT
    # returns: 60% satisfied before, 85% after. delivery: 70% and 72%.
    await add_csat(
        runtime, touchpoint="returns", team="logistics", start=before, satisfied=60, unsatisfied=40, tag="rb"
    )
    await add_csat(
        runtime, touchpoint="returns", team="logistics", start=after, satisfied=85, unsatisfied=15, tag="ra"
    )
    await add_csat(
        runtime, touchpoint="delivery", team="logistics", start=before, satisfied=70, unsatisfied=30, tag="db"
    )
    await add_csat(
        runtime, touchpoint="delivery", team="logistics", start=after, satisfied=72, unsatisfied=28, tag="da"
    )
    # Outside the two 28-day windows: must not count.
    await add_csat(
        runtime,
        touchpoint="returns",
        team="logistics",
        start=before - timedelta(days=5),
        satisfied=0,
        unsatisfied=50,
        tag="old",
    )
    await add_csat(
        runtime,
        touchpoint="returns",
        team="logistics",
        start=after + timedelta(days=29),
        satisfied=50,
        unsatisfied=0,
        tag="late",
    )

    clock.now = ANNOTATED_AT + timedelta(days=40)
    shifted = await run_text(runtime, "score returns 90d", actor=SUPPORT_AGENT, where=CONSOLE)
    assert shifted.ok, shifted.text
    assert isinstance(shifted.report, ScoreReport)
    [effect] = shifted.report.annotations
    assert effect.window == timedelta(days=28)
    [csat] = effect.metrics
    assert (csat.before.n, csat.after.n) == (100, 100)
    delta, low, high = hand_change((60, 100), (85, 100))
    assert math.isclose(csat.change.delta, delta)
    assert math.isclose(csat.change.ci_low, low) and math.isclose(csat.change.ci_high, high)
    assert "2026-09-01 returns: “new policy live” (28 days before vs after)" in shifted.text
    assert "CSAT 60.0% (n=100) → 85.0% (n=100): +25.0 pts, significant" in shifted.text

    flat = await run_text(runtime, "score delivery 90d", actor=SUPPORT_AGENT, where=CONSOLE)
    assert "CSAT 70.0% (n=100) → 72.0% (n=100): +2.0 pts, no real change" in flat.text


async def test_an_annotation_too_recent_to_judge_says_how_many_more_responses_it_needs(
    runtime: Runtime, clock: FrozenClock
) -> None:
    clock.now = ANNOTATED_AT
    await run_text(runtime, "annotate returns prepaid labels", actor=LOGISTICS_AGENT, where=CONSOLE)
    await add_csat(
        runtime,
        touchpoint="returns",
        team="logistics",
        start=ANNOTATED_AT - timedelta(hours=40),
        satisfied=30,
        unsatisfied=10,
        tag="b",
    )
    await add_csat(
        runtime,
        touchpoint="returns",
        team="logistics",
        start=ANNOTATED_AT,
        satisfied=9,
        unsatisfied=3,
        tag="a",
    )
    clock.now = ANNOTATED_AT + timedelta(days=2)
    reply = await run_text(runtime, "score returns", actor=LOGISTICS_AGENT, where=CONSOLE)
    assert "(2 days before vs after)" in reply.text
    assert "too recent to judge, needs 18 more responses after it (floor n=30)" in reply.text
    # The team's digest shows the same annotation.
    digest = await run_text(runtime, "digest preview", actor=LOGISTICS_AGENT, where=CONSOLE)
    assert digest.ok, digest.text
    assert "returns: “prepaid labels”" in digest.text
    assert "needs" in digest.text
