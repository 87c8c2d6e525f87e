"""Survey scores and case KPIs with honest uncertainty (design.md §2).

Pure functions only: no I/O, no database, standard library only. The database aggregates responses
into sufficient statistics (counts, sums, sums of squares), so the core functions take those and
the list-based wrappers exist for tests, small samples and CSV previews. Every score carries its
sample size, a 95% confidence interval and a ``low_sample`` flag so a bot message can never present
a 12-response swing as a trend.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

#: 1.96 standard errors either side of the estimate gives a 95% interval.
Z_95 = 1.96

DEFAULT_MIN_N = 30

METRICS = ("nps", "csat", "ces")

#: Inclusive score range of each metric (matches ``cxbot.ingest.schema.SCORE_RANGES``).
SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

LABELS: dict[str, str] = {
    "nps": "NPS",
    "csat": "CSAT % satisfied (4-5)",
    "ces": "CES mean (1-7, 7 = easiest)",
}

VERDICT_SIGNIFICANT = "significant"
VERDICT_NO_CHANGE = "no real change"
VERDICT_LOW_SAMPLE = "low sample"

NpsCategory = Literal["promoter", "passive", "detractor"]


@dataclass(frozen=True, slots=True)
class Score:
    """One metric over one window, with the uncertainty needed to judge it.

    ``std_error`` is what :func:`compare` uses. For NPS and CES it equals the CI half width / 1.96
    (before clamping); for CSAT it is the normal-approximation √(p(1-p)/n), because the Wilson
    interval is asymmetric and has no single standard error.
    """

    metric: str  # "nps" | "csat" | "ces"
    score: float | None  # NPS points, CSAT percent, CES mean
    n: int
    ci_low: float | None
    ci_high: float | None
    low_sample: bool
    label: str
    std_error: float | None
    share_easy: float | None = None  # CES only: percent of responses >= 5
    distribution: tuple[tuple[float, int], ...] = ()  # (score value, count) when known


@dataclass(frozen=True, slots=True)
class Change:
    """Difference ``after - before`` and whether the confidence intervals back it up."""

    delta: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str  # "significant" | "no real change" | "low sample"
    direction: str | None  # "up" | "down" | None

    @property
    def significant(self) -> bool:
        """True only for a change the CIs support, so callers never re-derive the rule."""
        return self.verdict == VERDICT_SIGNIFICANT


# --------------------------------------------------------------------------- helpers


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a non-negative int, got {value!r}")


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _safe_variance(value: float) -> float:
    """Floating-point cancellation can make a zero variance come out as -1e-17; sqrt must not see it."""
    return value if value > 0.0 else 0.0


def _empty(metric: str, *, min_n: int) -> Score:
    return Score(
        metric=metric,
        score=None,
        n=0,
        ci_low=None,
        ci_high=None,
        low_sample=min_n > 0,
        label=LABELS[metric],
        std_error=None,
    )


def _check_min_n(min_n: int) -> None:
    _check_count("min_n", min_n)


# --------------------------------------------------------------------------- categories


def _check_scale(metric: str, score: float) -> None:
    low, high = SCALES[metric]
    if not (math.isfinite(score) and low <= score <= high and float(score).is_integer()):
        raise ValueError(f"{metric}: {score!r} is not a whole number in {low}-{high}")


def nps_category(score: float) -> NpsCategory:
    """Bucket a 0-10 answer the standard NPS way: 9-10 promoter, 7-8 passive, 0-6 detractor."""
    _check_scale("nps", score)
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


def csat_satisfied(score: float) -> bool:
    """CSAT counts 4 and 5 on the 1-5 scale as satisfied; 3 is not."""
    _check_scale("csat", score)
    return score >= 4


def ces_easy(score: float) -> bool:
    """CES (1-7, 7 = easiest) counts 5 and above as easy, the basis of the "% easy" figure."""
    _check_scale("ces", score)
    return score >= 5


def is_negative(metric: str, score: float) -> bool:
    """Whether a single answer deserves follow-up: an NPS detractor (0-6), CSAT 1-2, or CES 1-3.

    CSAT 3 and CES 4 are the neutral midpoints and are deliberately not flagged, so the alert
    channel is not flooded with lukewarm answers.
    """
    if metric == "nps":
        return nps_category(score) == "detractor"
    if metric == "csat":
        _check_scale("csat", score)
        return score <= 2
    if metric == "ces":
        _check_scale("ces", score)
        return score <= 3
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


# --------------------------------------------------------------------------- core (sufficient stats)


def nps_from_counts(*, promoters: int, passives: int, detractors: int, min_n: int = DEFAULT_MIN_N) -> Score:
    """NPS = %promoters − %detractors with CI ±1.96·100·√((p + d − (p−d)²)/n), clamped to ±100.

    p + d − (p−d)² is the variance of a single answer scored +1/0/−1, so the interval is the usual
    normal approximation for a mean of those.
    """
    _check_count("promoters", promoters)
    _check_count("passives", passives)
    _check_count("detractors", detractors)
    _check_min_n(min_n)
    n = promoters + passives + detractors
    if n == 0:
        return _empty("nps", min_n=min_n)
    p = promoters / n
    d = detractors / n
    score = 100.0 * (promoters - detractors) / n  # exact bounds: |promoters - detractors| <= n
    variance = _safe_variance(p + d - (p - d) ** 2)
    std_error = 100.0 * math.sqrt(variance / n)
    half = Z_95 * std_error
    return Score(
        metric="nps",
        score=score,
        n=n,
        ci_low=_clamp(score - half, -100.0, 100.0),
        ci_high=_clamp(score + half, -100.0, 100.0),
        low_sample=n < min_n,
        label=LABELS["nps"],
        std_error=std_error,
    )


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion, in percent.

    Used instead of p ± z·√(p(1-p)/n) because it stays inside [0, 100] and does not collapse to
    zero width at 0% or 100%, which small CSAT samples hit often.
    """
    _check_count("successes", successes)
    _check_count("n", n)
    if n == 0 or successes > n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n and n > 0, got {successes}/{n}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(_safe_variance(p * (1 - p) / n + z2 / (4 * n * n))) / denom
    pct = 100.0 * p
    # Mathematically the interval always contains p; min/max guard against last-bit rounding.
    low = _clamp(min(100.0 * (center - half), pct), 0.0, 100.0)
    high = _clamp(max(100.0 * (center + half), pct), 0.0, 100.0)
    return low, high


def csat_from_counts(*, satisfied: int, n: int, min_n: int = DEFAULT_MIN_N) -> Score:
    """CSAT = % of 1-5 answers that are 4 or 5, with a Wilson 95% interval.

    ``std_error`` is the normal-approximation √(p(1-p)/n) (in percent), used only by
    :func:`compare`; the displayed interval is Wilson.
    """
    _check_count("satisfied", satisfied)
    _check_count("n", n)
    _check_min_n(min_n)
    if satisfied > n:
        raise ValueError(f"satisfied ({satisfied}) cannot exceed n ({n})")
    if n == 0:
        return _empty("csat", min_n=min_n)
    p = satisfied / n
    ci_low, ci_high = wilson_interval(satisfied, n)
    return Score(
        metric="csat",
        score=100.0 * satisfied / n,
        n=n,
        ci_low=ci_low,
        ci_high=ci_high,
        low_sample=n < min_n,
        label=LABELS["csat"],
        std_error=100.0 * math.sqrt(_safe_variance(p * (1 - p)) / n),
    )


def ces_from_moments(
    *, n: int, total: float, total_squares: float, easy: int, min_n: int = DEFAULT_MIN_N
) -> Score:
    """CES = mean of 1-7 answers, CI mean ± 1.96·s/√n (s with n−1), plus the % of answers >= 5.

    Takes count, sum and sum of squares because that is what SQL can aggregate in one pass. The
    variance (Σx² − (Σx)²/n)/(n−1) can cancel to a tiny negative when all answers are equal; it is
    clamped to 0. With n < 2 there is no sample standard deviation, so the CI is None.
    """
    _check_count("n", n)
    _check_count("easy", easy)
    _check_min_n(min_n)
    if easy > n:
        raise ValueError(f"easy ({easy}) cannot exceed n ({n})")
    if not (math.isfinite(total) and math.isfinite(total_squares)):
        raise ValueError("total and total_squares must be finite")
    if n == 0:
        return _empty("ces", min_n=min_n)
    low, high = SCALES["ces"]
    mean = total / n
    if not (low - 1e-9 <= mean <= high + 1e-9):
        raise ValueError(f"CES mean {mean!r} is outside {low}-{high}; the moments are inconsistent")
    mean = _clamp(mean, low, high)
    ci_low = ci_high = std_error = None
    if n >= 2:
        variance = _safe_variance((total_squares - total * total / n) / (n - 1))
        std_error = math.sqrt(variance / n)
        half = Z_95 * std_error
        # A mean of 1-7 answers cannot leave 1-7, so neither should the displayed interval.
        ci_low = _clamp(mean - half, low, high)
        ci_high = _clamp(mean + half, low, high)
    return Score(
        metric="ces",
        score=mean,
        n=n,
        ci_low=ci_low,
        ci_high=ci_high,
        low_sample=n < min_n,
        label=LABELS["ces"],
        std_error=std_error,
        share_easy=100.0 * easy / n,
    )


# --------------------------------------------------------------------------- list-based wrapper


def score_from_values(metric: str, values: Iterable[float], *, min_n: int = DEFAULT_MIN_N) -> Score:
    """Score raw answers by reducing them to the same sufficient statistics the database produces.

    Going through the count-based functions guarantees the two paths can never disagree. Answers
    must be whole numbers on the metric's scale (as ``cxbot.ingest.schema`` stores them).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    counts: Counter[float] = Counter()
    for value in values:
        _check_scale(metric, value)
        counts[int(value)] += 1
    return score_from_distribution(metric, counts, min_n=min_n)


def score_from_distribution(metric: str, counts: Mapping[float, int], *, min_n: int = DEFAULT_MIN_N) -> Score:
    """Score a `score value -> count` table, the shape a GROUP BY in the database returns.

    Values are taken as stored: legacy five-point CES answers normalised onto 1-7 may be fractional.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    distribution = tuple(sorted((v, c) for v, c in counts.items() if c))
    n = sum(counts.values())
    if metric == "nps":
        score = nps_from_counts(
            promoters=sum(c for v, c in counts.items() if v >= 9),
            passives=sum(c for v, c in counts.items() if 7 <= v < 9),
            detractors=sum(c for v, c in counts.items() if v <= 6),
            min_n=min_n,
        )
    elif metric == "csat":
        score = csat_from_counts(satisfied=sum(c for v, c in counts.items() if v >= 4), n=n, min_n=min_n)
    else:
        # Integer sums are exact, so the variance here suffers no rounding before the final division.
        score = ces_from_moments(
            n=n,
            total=sum(v * c for v, c in counts.items()),
            total_squares=sum(v * v * c for v, c in counts.items()),
            easy=sum(c for v, c in counts.items() if v >= 5),
            min_n=min_n,
        )
    return replace(score, distribution=distribution)


# --------------------------------------------------------------------------- comparison


def compare(before: Score, after: Score, *, min_n: int = DEFAULT_MIN_N) -> Change:
    """Change from ``before`` to ``after``, called significant only when the CIs say so.

    delta = after − before with CI delta ± 1.96·√(se_a² + se_b²). The change is "significant" iff
    both windows have n >= min_n and that CI excludes 0; otherwise "no real change", or "low sample"
    when either side is below the floor or empty. Delta and its CI are still filled in for a low
    sample when they can be computed, so a message can show them with the caveat.
    """
    if before.metric != after.metric:
        raise ValueError(f"cannot compare {before.metric!r} with {after.metric!r}")
    _check_min_n(min_n)
    if before.score is None or after.score is None:
        return Change(delta=None, ci_low=None, ci_high=None, verdict=VERDICT_LOW_SAMPLE, direction=None)
    delta = after.score - before.score
    ci_low = ci_high = None
    if before.std_error is not None and after.std_error is not None:
        half = Z_95 * math.sqrt(before.std_error**2 + after.std_error**2)
        ci_low, ci_high = delta - half, delta + half
    # Without a CI (CES with n < 2) nothing can be claimed, whatever min_n says.
    if before.n < min_n or after.n < min_n or ci_low is None or ci_high is None:
        return Change(delta=delta, ci_low=ci_low, ci_high=ci_high, verdict=VERDICT_LOW_SAMPLE, direction=None)
    if ci_low > 0:
        return Change(
            delta=delta, ci_low=ci_low, ci_high=ci_high, verdict=VERDICT_SIGNIFICANT, direction="up"
        )
    if ci_high < 0:
        return Change(
            delta=delta, ci_low=ci_low, ci_high=ci_high, verdict=VERDICT_SIGNIFICANT, direction="down"
        )
    return Change(delta=delta, ci_low=ci_low, ci_high=ci_high, verdict=VERDICT_NO_CHANGE, direction=None)


def responses_needed(score: Score, *, min_n: int = DEFAULT_MIN_N) -> int:
    """How many more responses until the score clears the floor, for "needs N more" hints."""
    _check_min_n(min_n)
    return max(0, min_n - score.n)


# --------------------------------------------------------------------------- case KPIs


def percentile(values: Sequence[float], q: float) -> float | None:
    """q-th percentile (0-100) with linear interpolation, matching numpy's default 'linear' method.

    Returns None for no values, so an empty window reads as "no data" rather than 0.
    """
    if not (math.isfinite(q) and 0 <= q <= 100):
        raise ValueError(f"q must be within 0-100, got {q!r}")
    data = sorted(float(v) for v in values)
    if any(math.isnan(v) for v in data):
        raise ValueError("values must not contain NaN")
    if not data:
        return None
    position = (len(data) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(data) - 1)
    a, b = data[lower], data[upper]
    result = a + (b - a) * (position - lower)
    # Guard against last-bit overshoot so the result never leaves its bracketing values.
    return _clamp(result, a, b)


def median(values: Sequence[float]) -> float | None:
    """50th percentile; None for no values."""
    return percentile(values, 50)


def duration_stats(seconds: Iterable[float | timedelta]) -> tuple[float | None, float | None]:
    """(median, p90) in seconds for "time to resolve"-style KPIs.

    Accepts timedeltas or plain seconds because callers have either, depending on whether they
    subtracted datetimes in Python or epochs in SQL. The p90 shows the tail that a median hides.
    """
    data = [v.total_seconds() if isinstance(v, timedelta) else float(v) for v in seconds]
    return percentile(data, 50), percentile(data, 90)
