"""Tests for cxbot.scores.stats: hand-computed examples plus hypothesis properties (design.md §2)."""

from __future__ import annotations

import math
import statistics
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxbot.scores.stats import (
    Change,
    Score,
    ces_easy,
    ces_from_moments,
    compare,
    csat_from_counts,
    csat_satisfied,
    duration_stats,
    is_negative,
    median,
    nps_category,
    nps_from_counts,
    percentile,
    responses_needed,
    score_from_values,
    wilson_interval,
)

approx = pytest.approx
EPS = 1e-9

counts = st.integers(min_value=0, max_value=400)
min_ns = st.integers(min_value=0, max_value=60)
nps_values = st.lists(st.integers(min_value=0, max_value=10), max_size=200)
csat_values = st.lists(st.integers(min_value=1, max_value=5), max_size=200)
ces_values = st.lists(st.integers(min_value=1, max_value=7), max_size=200)
metric_values = st.one_of(
    st.tuples(st.just("nps"), nps_values),
    st.tuples(st.just("csat"), csat_values),
    st.tuples(st.just("ces"), ces_values),
)


def _width(score: Score) -> float:
    assert score.ci_low is not None and score.ci_high is not None
    return score.ci_high - score.ci_low


# =========================================================================== hand-computed: NPS


def test_nps_small_sample_hand_computed() -> None:
    # n=10, 5 promoters, 3 passives, 2 detractors -> p=0.5, d=0.2, NPS = 100*(0.5-0.2) = 30
    # var = p+d-(p-d)^2 = 0.5+0.2-0.09 = 0.61
    # se = 100*sqrt(0.61/10) = 100*0.246982 = 24.6982
    # half width = 1.96*24.6982 = 48.4084 -> CI [-18.4084, 78.4084]; n=10 < 30 -> low sample
    s = nps_from_counts(promoters=5, passives=3, detractors=2)
    assert s.metric == "nps"
    assert s.label == "NPS"
    assert s.score == approx(30.0)
    assert s.n == 10
    assert s.std_error == approx(24.6982, abs=1e-4)
    assert s.ci_low == approx(-18.4084, abs=1e-4)
    assert s.ci_high == approx(78.4084, abs=1e-4)
    assert s.low_sample is True
    assert s.distribution == ()
    assert s.share_easy is None


def test_nps_large_sample_hand_computed() -> None:
    # n=100, 60 promoters, 25 passives, 15 detractors -> NPS = 60-15 = 45
    # var = 0.60+0.15-0.45^2 = 0.75-0.2025 = 0.5475
    # se = 100*sqrt(0.5475/100) = 100*0.073993 = 7.3993; half = 1.96*7.3993 = 14.5027
    # CI [30.4973, 59.5027]; n=100 >= 30 -> not low sample
    s = nps_from_counts(promoters=60, passives=25, detractors=15)
    assert s.score == approx(45.0)
    assert s.std_error == approx(7.3993, abs=1e-4)
    assert s.ci_low == approx(30.4973, abs=1e-4)
    assert s.ci_high == approx(59.5027, abs=1e-4)
    assert s.low_sample is False


def test_nps_ci_is_clamped_to_100() -> None:
    # n=10, 9 promoters, 1 passive -> NPS 90; var = 0.9+0-0.81 = 0.09
    # half = 1.96*100*sqrt(0.09/10) = 1.96*100*0.0948683 = 18.5942
    # CI [71.4058, 108.5942] -> high clamped to 100
    s = nps_from_counts(promoters=9, passives=1, detractors=0)
    assert s.score == approx(90.0)
    assert s.ci_low == approx(71.4058, abs=1e-4)
    assert s.ci_high == 100.0
    # std_error is the unclamped one: 100*sqrt(0.009) = 9.4868
    assert s.std_error == approx(9.4868, abs=1e-4)


def test_nps_all_detractors_has_zero_width() -> None:
    # n=3, all detractors -> NPS -100; var = 0+1-(-1)^2 = 0 -> CI [-100, -100]
    s = nps_from_counts(promoters=0, passives=0, detractors=3)
    assert s.score == -100.0
    assert s.ci_low == -100.0
    assert s.ci_high == -100.0
    assert s.std_error == 0.0


def test_nps_empty() -> None:
    s = nps_from_counts(promoters=0, passives=0, detractors=0)
    assert s.score is None
    assert s.ci_low is None and s.ci_high is None and s.std_error is None
    assert s.n == 0
    assert s.low_sample is True


def test_nps_from_values_fills_distribution() -> None:
    # values 10,9,9,8,7,6,0 -> promoters 3, passives 2, detractors 2, n=7
    # NPS = 100*(3-2)/7 = 14.2857
    s = score_from_values("nps", [10, 9, 9, 8, 7, 6, 0], min_n=5)
    assert s.score == approx(100 / 7)
    assert s.n == 7
    assert s.low_sample is False
    assert s.distribution == ((0, 1), (6, 1), (7, 1), (8, 1), (9, 2), (10, 1))


# =========================================================================== hand-computed: CSAT


def test_csat_wilson_hand_computed() -> None:
    # 40 of 50 satisfied -> p = 0.8 -> CSAT 80%
    # z^2 = 3.8416, z^2/n = 0.076832, denom = 1.076832
    # center = (0.8 + 3.8416/100) / 1.076832 = 0.838416/1.076832 = 0.778594
    # half = 1.96*sqrt(0.8*0.2/50 + 3.8416/(4*2500)) / 1.076832
    #      = 1.96*sqrt(0.0032 + 0.00038416) / 1.076832 = 1.96*0.0598679/1.076832 = 0.108969
    # CI = [66.9626, 88.7564] percent
    # std_error (normal approx, for compare) = 100*sqrt(0.16/50) = 5.6569
    s = csat_from_counts(satisfied=40, n=50)
    assert s.metric == "csat"
    assert s.label == "CSAT % satisfied (4-5)"
    assert s.score == approx(80.0)
    assert s.ci_low == approx(66.9626, abs=1e-4)
    assert s.ci_high == approx(88.7564, abs=1e-4)
    assert s.std_error == approx(5.6569, abs=1e-4)
    assert s.low_sample is False


def test_csat_wilson_at_zero_is_not_degenerate() -> None:
    # 0 of 10: p = 0; denom = 1 + 3.8416/10 = 1.38416
    # center = (0 + 3.8416/20)/1.38416 = 0.19208/1.38416 = 0.138770
    # half = 1.96*sqrt(0 + 3.8416/400)/1.38416 = 1.96*0.098/1.38416 = 0.138770
    # CI = [0, 27.754] percent, unlike the normal approximation's [0, 0]
    s = csat_from_counts(satisfied=0, n=10)
    assert s.score == 0.0
    assert s.ci_low == approx(0.0, abs=1e-9)
    assert s.ci_high == approx(27.754, abs=1e-3)
    assert s.std_error == 0.0
    assert s.low_sample is True


def test_csat_from_values() -> None:
    # 5,4,4,3,1 -> satisfied (4-5) = 3 of 5 = 60%
    s = score_from_values("csat", [5, 4, 4, 3, 1])
    assert s.score == approx(60.0)
    assert s.distribution == ((1, 1), (3, 1), (4, 2), (5, 1))
    assert (s.ci_low, s.ci_high) == approx(wilson_interval(3, 5))


# =========================================================================== hand-computed: CES


def test_ces_hand_computed() -> None:
    # values 7,6,5,4,3: n=5, total=25, sum of squares = 49+36+25+16+9 = 135
    # mean = 5; s^2 = (135 - 25^2/5)/4 = (135-125)/4 = 2.5; s = 1.5811
    # se = s/sqrt(5) = 0.7071; half = 1.96*0.7071 = 1.3859 -> CI [3.6141, 6.3859]
    # easy (>=5) = 3 of 5 = 60%
    s = ces_from_moments(n=5, total=25, total_squares=135, easy=3)
    assert s.metric == "ces"
    assert s.label == "CES mean (1-7, 7 = easiest)"
    assert s.score == approx(5.0)
    assert s.std_error == approx(0.7071, abs=1e-4)
    assert s.ci_low == approx(3.6141, abs=1e-4)
    assert s.ci_high == approx(6.3859, abs=1e-4)
    assert s.share_easy == approx(60.0)
    assert s.low_sample is True
    assert score_from_values("ces", [7, 6, 5, 4, 3]) == Score(
        metric="ces",
        score=s.score,
        n=5,
        ci_low=s.ci_low,
        ci_high=s.ci_high,
        low_sample=True,
        label=s.label,
        std_error=s.std_error,
        share_easy=s.share_easy,
        distribution=((3, 1), (4, 1), (5, 1), (6, 1), (7, 1)),
    )


def test_ces_ci_is_clamped_to_scale() -> None:
    # values 1,1,7,7: n=4, total=16, squares=100, mean=4
    # s^2 = (100 - 256/4)/3 = 36/3 = 12; se = sqrt(12/4) = 1.7321; half = 3.3948
    # raw CI [0.6052, 7.3948] -> clamped to [1, 7]; easy = 2/4 = 50%
    s = ces_from_moments(n=4, total=16, total_squares=100, easy=2)
    assert s.score == approx(4.0)
    assert s.std_error == approx(1.7321, abs=1e-4)
    assert (s.ci_low, s.ci_high) == (1.0, 7.0)
    assert s.share_easy == approx(50.0)


def test_ces_single_response_has_no_ci() -> None:
    s = ces_from_moments(n=1, total=6, total_squares=36, easy=1)
    assert s.score == 6.0
    assert s.ci_low is None and s.ci_high is None and s.std_error is None
    assert s.share_easy == 100.0


def test_ces_constant_answers_variance_clamped_to_zero() -> None:
    # 1000 answers of 3.0 given as floats whose squares cancel exactly or to a tiny negative
    s = ces_from_moments(n=1000, total=3000.0, total_squares=8999.999999999998, easy=0)
    assert s.std_error == 0.0
    assert s.ci_low == s.ci_high == approx(3.0)


def test_ces_empty() -> None:
    s = ces_from_moments(n=0, total=0, total_squares=0, easy=0)
    assert s.score is None and s.share_easy is None and s.ci_low is None


# =========================================================================== hand-computed: compare


def test_compare_significant_up_hand_computed() -> None:
    # before: 40 P, 30 passive, 30 D (n=100) -> NPS 10; var = 0.7-0.01 = 0.69; se = 100*sqrt(0.0069) = 8.3066
    # after:  70 P, 20 passive, 10 D (n=100) -> NPS 60; var = 0.8-0.36 = 0.44; se = 100*sqrt(0.0044) = 6.6332
    # delta = 50; se_diff = sqrt(69 + 44) = sqrt(113) = 10.6301; half = 1.96*10.6301 = 20.8351
    # CI [29.1649, 70.8351] excludes 0 -> significant, up
    before = nps_from_counts(promoters=40, passives=30, detractors=30)
    after = nps_from_counts(promoters=70, passives=20, detractors=10)
    c = compare(before, after)
    assert c.delta == approx(50.0)
    assert c.ci_low == approx(29.1649, abs=1e-4)
    assert c.ci_high == approx(70.8351, abs=1e-4)
    assert c.verdict == "significant"
    assert c.direction == "up"
    assert c.significant is True


def test_compare_significant_down_ces_hand_computed() -> None:
    # before: n=40, mean 6, s=1 -> total 240, squares = 40*36 + 39*1 = 1479
    # after:  n=40, mean 5, s=1 -> total 200, squares = 40*25 + 39*1 = 1039
    # se each = 1/sqrt(40) = 0.158114; se_diff = sqrt(2/40) = 0.223607; half = 0.438270
    # delta = -1 -> CI [-1.438270, -0.561730] -> significant, down
    before = ces_from_moments(n=40, total=240, total_squares=1479, easy=30)
    after = ces_from_moments(n=40, total=200, total_squares=1039, easy=20)
    assert before.std_error == approx(0.158114, abs=1e-6)
    c = compare(before, after)
    assert c.delta == approx(-1.0)
    assert c.ci_low == approx(-1.438270, abs=1e-6)
    assert c.ci_high == approx(-0.561730, abs=1e-6)
    assert (c.verdict, c.direction) == ("significant", "down")


def test_compare_no_real_change_csat_hand_computed() -> None:
    # CSAT 40/50 = 80% -> se = 100*sqrt(0.8*0.2/50) = 5.6569 (normal approximation, not Wilson)
    # CSAT 42/50 = 84% -> se = 100*sqrt(0.84*0.16/50) = 5.1846
    # delta = 4; se_diff = sqrt(32 + 26.88) = sqrt(58.88) = 7.6733; half = 15.0397
    # CI [-11.0397, 19.0397] contains 0 -> no real change
    c = compare(csat_from_counts(satisfied=40, n=50), csat_from_counts(satisfied=42, n=50))
    assert c.delta == approx(4.0)
    assert c.ci_low == approx(-11.0397, abs=1e-4)
    assert c.ci_high == approx(19.0397, abs=1e-4)
    assert c.verdict == "no real change"
    assert c.direction is None
    assert c.significant is False


def test_compare_low_sample_even_when_ci_excludes_zero() -> None:
    # before: 20 responses, all detractors -> -100, se 0; after: 50 all promoters -> +100, se 0
    # delta = 200 with CI [200, 200], but before.n = 20 < 30 -> low sample, not significant
    before = nps_from_counts(promoters=0, passives=0, detractors=20)
    after = nps_from_counts(promoters=50, passives=0, detractors=0)
    c = compare(before, after)
    assert c.delta == approx(200.0)
    assert (c.ci_low, c.ci_high) == approx((200.0, 200.0))
    assert c.verdict == "low sample"
    assert c.direction is None
    assert not c.significant
    # With a lower floor the same data is significant.
    assert compare(before, after, min_n=20).verdict == "significant"


def test_compare_empty_side_is_low_sample() -> None:
    empty = csat_from_counts(satisfied=0, n=0)
    full = csat_from_counts(satisfied=40, n=50)
    for c in (compare(empty, full), compare(full, empty)):
        assert c == Change(delta=None, ci_low=None, ci_high=None, verdict="low sample", direction=None)


def test_compare_rejects_mixed_metrics() -> None:
    with pytest.raises(ValueError):
        compare(csat_from_counts(satisfied=1, n=2), nps_from_counts(promoters=1, passives=0, detractors=0))


def test_responses_needed() -> None:
    assert responses_needed(csat_from_counts(satisfied=5, n=12)) == 18
    assert responses_needed(csat_from_counts(satisfied=5, n=12), min_n=10) == 0
    assert responses_needed(nps_from_counts(promoters=0, passives=0, detractors=0)) == 30
    assert responses_needed(csat_from_counts(satisfied=40, n=50)) == 0


# =========================================================================== hand-computed: KPIs


def test_percentile_hand_computed() -> None:
    # [1,2,3,4], q=90: position = (4-1)*0.9 = 2.7 -> 3 + 0.7*(4-3) = 3.7 (numpy 'linear' gives 3.7)
    assert percentile([4, 1, 3, 2], 90) == approx(3.7)
    # q=25: position = 0.75 -> 1 + 0.75*1 = 1.75
    assert percentile([1, 2, 3, 4], 25) == approx(1.75)
    assert percentile([1, 2, 3, 4], 0) == 1.0
    assert percentile([1, 2, 3, 4], 100) == 4.0
    # median of even-length list: position 1.5 -> 2 + 0.5*1 = 2.5; odd: middle value
    assert median([1, 2, 3, 4]) == approx(2.5)
    assert median([5, 1, 3]) == 3.0
    assert percentile([7.0], 90) == 7.0
    assert percentile([], 50) is None
    assert median([]) is None


def test_percentile_rejects_bad_q() -> None:
    for q in (-1, 101, math.nan):
        with pytest.raises(ValueError):
            percentile([1.0, 2.0], q)


def test_duration_stats_hand_computed() -> None:
    # seconds sorted: 60, 120, 180, 600, 3600 (1m, 2m, 3m, 10m, 1h)
    # median: position 2 -> 180
    # p90: position (5-1)*0.9 = 3.6 -> 600 + 0.6*(3600-600) = 600 + 1800 = 2400
    as_timedeltas = [timedelta(hours=1), timedelta(minutes=1), timedelta(minutes=3), timedelta(minutes=10)]
    as_timedeltas.append(timedelta(minutes=2))
    assert duration_stats(as_timedeltas) == approx((180.0, 2400.0))
    assert duration_stats([3600, 60, 180, 600, 120]) == approx((180.0, 2400.0))
    assert duration_stats([]) == (None, None)


# =========================================================================== categories


def test_categories() -> None:
    assert [nps_category(v) for v in (0, 6, 7, 8, 9, 10)] == [
        "detractor",
        "detractor",
        "passive",
        "passive",
        "promoter",
        "promoter",
    ]
    assert [csat_satisfied(v) for v in (1, 2, 3, 4, 5)] == [False, False, False, True, True]
    assert [ces_easy(v) for v in (1, 4, 5, 7)] == [False, False, True, True]
    assert is_negative("nps", 6) and not is_negative("nps", 7)
    assert is_negative("csat", 2) and not is_negative("csat", 3)
    assert is_negative("ces", 3) and not is_negative("ces", 4)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError):
        nps_category(11)
    with pytest.raises(ValueError):
        csat_satisfied(4.5)
    with pytest.raises(ValueError):
        is_negative("comment", 1)
    with pytest.raises(ValueError):
        score_from_values("csat", [0])
    with pytest.raises(ValueError):
        score_from_values("sentiment", [1])
    with pytest.raises(ValueError):
        csat_from_counts(satisfied=3, n=2)
    with pytest.raises(ValueError):
        nps_from_counts(promoters=-1, passives=0, detractors=0)
    with pytest.raises(ValueError):
        ces_from_moments(n=2, total=20, total_squares=200, easy=2)  # mean 10 is off the 1-7 scale


# =========================================================================== properties


@given(promoters=counts, passives=counts, detractors=counts)
def test_prop_nps_bounded_and_ci_contains_score(promoters: int, passives: int, detractors: int) -> None:
    s = nps_from_counts(promoters=promoters, passives=passives, detractors=detractors)
    if s.n == 0:
        assert s.score is None and s.ci_low is None
        return
    assert s.score is not None and s.ci_low is not None and s.ci_high is not None
    assert -100.0 <= s.ci_low <= s.score <= s.ci_high <= 100.0
    assert s.std_error is not None and s.std_error >= 0.0


@given(promoters=counts, passives=counts, detractors=counts, times=st.integers(min_value=2, max_value=5))
def test_prop_nps_ci_shrinks_when_sample_duplicated(
    promoters: int, passives: int, detractors: int, times: int
) -> None:
    base = nps_from_counts(promoters=promoters, passives=passives, detractors=detractors)
    more = nps_from_counts(
        promoters=promoters * times, passives=passives * times, detractors=detractors * times
    )
    if base.n == 0:
        return
    assert more.score == approx(base.score)
    assert _width(more) <= _width(base) + EPS


@given(satisfied=counts, extra=counts, times=st.integers(min_value=2, max_value=5))
def test_prop_csat_ci_shrinks_when_sample_duplicated(satisfied: int, extra: int, times: int) -> None:
    n = satisfied + extra
    if n == 0:
        return
    base = csat_from_counts(satisfied=satisfied, n=n)
    more = csat_from_counts(satisfied=satisfied * times, n=n * times)
    assert _width(more) <= _width(base) + EPS


@given(values=st.lists(st.integers(min_value=1, max_value=7), min_size=2, max_size=200))
def test_prop_ces_ci_shrinks_when_sample_duplicated(values: list[int]) -> None:
    base = score_from_values("ces", values)
    more = score_from_values("ces", values * 2)
    assert _width(more) <= _width(base) + EPS


@given(mv=metric_values, min_n=min_ns)
def test_prop_list_and_count_based_agree(mv: tuple[str, list[int]], min_n: int) -> None:
    metric, values = mv
    from_list = score_from_values(metric, values, min_n=min_n)
    if metric == "nps":
        from_counts = nps_from_counts(
            promoters=sum(v >= 9 for v in values),
            passives=sum(7 <= v <= 8 for v in values),
            detractors=sum(v <= 6 for v in values),
            min_n=min_n,
        )
    elif metric == "csat":
        from_counts = csat_from_counts(satisfied=sum(v >= 4 for v in values), n=len(values), min_n=min_n)
    else:
        # Float moments, as a database SUM would hand them over.
        from_counts = ces_from_moments(
            n=len(values),
            total=float(sum(values)),
            total_squares=float(sum(v * v for v in values)),
            easy=sum(v >= 5 for v in values),
            min_n=min_n,
        )
    for field in ("metric", "n", "low_sample", "label"):
        assert getattr(from_list, field) == getattr(from_counts, field)
    for field in ("score", "ci_low", "ci_high", "std_error", "share_easy"):
        a, b = getattr(from_list, field), getattr(from_counts, field)
        assert (a is None) == (b is None)
        if a is not None:
            assert a == approx(b, abs=1e-9)
    assert sum(c for _, c in from_list.distribution) == len(values)
    assert [v for v, _ in from_list.distribution] == sorted(set(values))


@given(values=st.lists(st.integers(min_value=1, max_value=7), min_size=2, max_size=200))
def test_prop_ces_matches_statistics_module(values: list[int]) -> None:
    s = score_from_values("ces", values)
    assert s.score == approx(statistics.fmean(values))
    assert s.std_error == approx(statistics.stdev(values) / math.sqrt(len(values)), abs=1e-12)


@given(satisfied=counts, extra=counts)
def test_prop_csat_wilson_contains_estimate_and_bounded(satisfied: int, extra: int) -> None:
    n = satisfied + extra
    s = csat_from_counts(satisfied=satisfied, n=n)
    if n == 0:
        assert s.score is None
        return
    assert s.score is not None and s.ci_low is not None and s.ci_high is not None
    assert 0.0 <= s.ci_low <= s.score <= s.ci_high <= 100.0


@given(values=ces_values)
def test_prop_ces_mean_in_scale(values: list[int]) -> None:
    s = score_from_values("ces", values)
    if not values:
        assert s.score is None
        return
    assert s.score is not None and 1.0 <= s.score <= 7.0
    assert s.share_easy is not None and 0.0 <= s.share_easy <= 100.0
    if s.ci_low is not None and s.ci_high is not None:
        assert 1.0 <= s.ci_low <= s.score <= s.ci_high <= 7.0


@given(mv=metric_values, min_n=min_ns)
def test_prop_compare_with_itself_never_significant(mv: tuple[str, list[int]], min_n: int) -> None:
    metric, values = mv
    s = score_from_values(metric, values, min_n=min_n)
    c = compare(s, s, min_n=min_n)
    assert not c.significant
    assert c.direction is None
    if s.score is not None:
        assert c.delta == 0.0


@st.composite
def _score_pairs(draw: st.DrawFn) -> tuple[Score, Score]:
    metric = draw(st.sampled_from(["nps", "csat", "ces"]))
    low, high = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}[metric]
    values = st.lists(st.integers(min_value=low, max_value=high), max_size=120)
    return score_from_values(metric, draw(values)), score_from_values(metric, draw(values))


@given(pair=_score_pairs(), min_n=min_ns)
def test_prop_compare_antisymmetric(pair: tuple[Score, Score], min_n: int) -> None:
    a, b = pair
    ab, ba = compare(a, b, min_n=min_n), compare(b, a, min_n=min_n)
    assert ab.verdict == ba.verdict
    if ab.delta is None:
        assert ba.delta is None
        return
    assert ba.delta == -ab.delta
    if ab.ci_low is not None:
        assert ba.ci_high == approx(-ab.ci_low)
        assert ba.ci_low == approx(-ab.ci_high)
    flip = {"up": "down", "down": "up", None: None}
    assert ba.direction == flip[ab.direction]
    if ab.significant:
        assert ab.direction == ("up" if ab.delta > 0 else "down")


@given(pair=_score_pairs(), min_n=min_ns)
def test_prop_significant_requires_floor_and_ci_excluding_zero(pair: tuple[Score, Score], min_n: int) -> None:
    a, b = pair
    c = compare(a, b, min_n=min_n)
    if a.n < min_n or b.n < min_n or a.n == 0 or b.n == 0:
        assert c.verdict == "low sample"
    if c.significant:
        assert c.ci_low is not None and c.ci_high is not None
        assert c.ci_low > 0 or c.ci_high < 0


@given(mv=metric_values, min_n=min_ns)
def test_prop_low_sample_exactly_below_floor(mv: tuple[str, list[int]], min_n: int) -> None:
    metric, values = mv
    s = score_from_values(metric, values, min_n=min_n)
    assert s.low_sample == (len(values) < min_n)
    assert responses_needed(s, min_n=min_n) == max(0, min_n - len(values))
    assert (s.score is None) == (len(values) == 0)


@given(
    values=st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=100),
    q1=st.floats(min_value=0, max_value=100),
    q2=st.floats(min_value=0, max_value=100),
)
@settings(max_examples=200)
def test_prop_percentile_monotone_and_bounded(values: list[float], q1: float, q2: float) -> None:
    lo_q, hi_q = sorted((q1, q2))
    p_lo, p_hi = percentile(values, lo_q), percentile(values, hi_q)
    assert p_lo is not None and p_hi is not None
    assert min(values) <= p_lo <= p_hi <= max(values)
    assert percentile(values, 0) == min(values)
    assert percentile(values, 100) == max(values)


@given(values=st.lists(st.integers(min_value=-1000, max_value=1000), min_size=1, max_size=100))
def test_prop_median_matches_statistics_module(values: list[int]) -> None:
    assert median(values) == approx(statistics.median(values))
