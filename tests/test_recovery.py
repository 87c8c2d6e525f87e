"""The recovery verdict and rate (design.md §2): pure functions, checked by example and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxbot.loop.recovery import category_level, recovery_outcome, recovery_rate
from cxbot.scores.stats import wilson_interval


@pytest.mark.parametrize(
    ("metric", "before", "after", "negative_at", "expected"),
    [
        ("nps", 6, 7, None, "recovered"),  # detractor → passive
        ("nps", 0, 10, None, "recovered"),
        ("nps", 3, 6, None, "unchanged"),  # still a detractor, however much better
        ("nps", 8, 6, None, "worse"),
        ("csat", 1, 3, None, "recovered"),  # negative → neutral
        ("csat", 2, 2, None, "unchanged"),
        ("csat", 3, 3, 3, "unchanged"),  # a team whose threshold is 3: 3 is still negative
        ("csat", 3, 4, 3, "recovered"),
        ("csat", 4, 3, None, "worse"),
        ("ces", 3, 4, None, "recovered"),  # negative → neutral
        ("ces", 4, 5, None, "recovered"),  # neutral → easy
        ("ces", 2, 1, None, "unchanged"),
    ],
)
def test_outcome_is_a_move_between_categories(
    metric: str, before: int, after: int, negative_at: int | None, expected: str
) -> None:
    assert recovery_outcome(metric, before, after, negative_at=negative_at) == expected


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="no categories"):
        category_level("comment", 1)
    with pytest.raises(ValueError, match="whole number in 1-5"):
        category_level("csat", 6)
    with pytest.raises(ValueError, match="not a recovery outcome"):
        recovery_rate(["recovered", "fixed"])


SCALES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}


@st.composite
def answer_pairs(draw: st.DrawFn) -> tuple[str, int, int]:
    metric = draw(st.sampled_from(sorted(SCALES)))
    low, high = SCALES[metric]
    return metric, draw(st.integers(low, high)), draw(st.integers(low, high))


@given(answer_pairs())
def test_swapping_the_answers_swaps_recovered_and_worse(pair: tuple[str, int, int]) -> None:
    metric, a, b = pair
    forward, backward = recovery_outcome(metric, a, b), recovery_outcome(metric, b, a)
    assert {forward, backward} in ({"unchanged"}, {"recovered", "worse"})
    if a <= b:  # a higher answer is never worse
        assert forward != "worse"


@given(st.lists(st.sampled_from(["recovered", "unchanged", "worse"]), max_size=200))
def test_rate_counts_recovered_among_answers(outcomes: list[str]) -> None:
    rate = recovery_rate(outcomes)
    assert rate.n == len(outcomes)
    assert rate.recovered == outcomes.count("recovered")
    if not outcomes:
        assert (rate.rate, rate.ci_low, rate.ci_high) == (None, None, None)
        return
    assert rate.rate == pytest.approx(100 * outcomes.count("recovered") / len(outcomes))
    assert (rate.ci_low, rate.ci_high) == wilson_interval(rate.recovered, rate.n)
    assert rate.ci_low <= rate.rate <= rate.ci_high
