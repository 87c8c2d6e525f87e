"""The platform-neutral digest: plain frozen dataclasses that renderers read (design.md §8).

Nothing here knows about Slack, Teams or text. Every score carries its n, CI and low-sample flag
(`cxbot.scores.stats.Score`); every comparison carries its verdict (`cxbot.scores.stats.Change`:
"significant" / "no real change" / "low sample"). A figure the data cannot support is `None`
and renders as "n/a", never as a made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from cxbot.scores.annotations import AnnotationEffect
from cxbot.scores.stats import Change, Score


@dataclass(frozen=True, slots=True)
class DayPoint:
    """One local day of a metric's trend: its score (None with no answers) and how many answers."""

    local_date: date
    score: float | None
    n: int
    low_sample: bool
    ci_low: float | None = None  # the day's 95% CI, for the chart's band
    ci_high: float | None = None


@dataclass(frozen=True, slots=True)
class MetricDigest:
    """One metric (NPS, CSAT or CES) of one team on the reported day, with its context.

    `day` is the reported local day. `vs_previous_day` compares it with the day before and
    `vs_same_weekday` with the same weekday a week earlier. `last_7_days`/`last_28_days` pool the
    answers of the 7/28 local days ending on the reported day. `daily` holds those 28 days, oldest
    first, for the sparklines (`trend_7d` is its last seven points). `day.distribution` is the
    (score value, count) table of the reported day.
    """

    metric: str
    label: str
    day: Score
    previous_day: Score
    same_weekday_last_week: Score
    vs_previous_day: Change
    vs_same_weekday: Change
    last_7_days: Score
    last_28_days: Score
    daily: tuple[DayPoint, ...]

    @property
    def low_sample(self) -> bool:
        """Show greyed and never as a trend (design.md §2)."""
        return self.day.low_sample

    @property
    def trend_7d(self) -> tuple[DayPoint, ...]:
        return self.daily[-7:]

    @property
    def trend_28d(self) -> tuple[DayPoint, ...]:
        return self.daily


@dataclass(frozen=True, slots=True)
class NegativeComment:
    """A negative answer's comment, PII already masked, cut to a chat-friendly length."""

    metric: str
    score: float | None
    text: str
    touchpoint: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Theme:
    """A word or two-word phrase that recurs in the day's negative comments, with how many mention it."""

    phrase: str
    comments: int


@dataclass(frozen=True, slots=True)
class CaseHealth:
    """Closed-loop health of a team's cases; `None` reads "n/a" (no data yet), never 0.

    `new` counts cases opened on the reported day; `open` and `overdue` are as of `as_of`.
    Durations and rates look at cases opened in the `window_days` local days ending on the
    reported day, and say on how many cases they rest (`*_n`).
    """

    as_of: datetime
    window_days: int
    new: int
    open: int
    overdue: int
    median_seconds_to_acknowledge: float | None
    acknowledged_n: int
    median_seconds_to_first_contact: float | None
    contacted_n: int
    cases_in_window: int
    contact_rate: float | None  # percent of the window's cases with a contact attempt
    # The recovery slot: percent of re-surveyed customers who moved up a category, and on how many
    # re-survey answers it rests, from `cxbot.loop.recovery.recovery_stats`.
    recovery_rate: float | None
    resurveyed_n: int
    # Case KPIs (design.md §2) over the cases *resolved* in the window: first contact resolution
    # (percent resolved after exactly one contact attempt) and time to resolve (median, p90).
    resolved_n: int = 0
    first_contact_resolved_n: int = 0
    first_contact_resolution: float | None = None
    median_seconds_to_resolve: float | None = None
    p90_seconds_to_resolve: float | None = None


@dataclass(frozen=True, slots=True)
class TeamDigest:
    """A team's daily digest for one reported local day."""

    team_key: str
    team_name: str
    timezone: str
    report_date: date
    window_start: datetime  # UTC start of the reported local day
    window_end: datetime  # UTC end (exclusive); 23, 24 or 25 hours after the start
    generated_at: datetime
    min_n: int
    responses: int  # every answer of the day, comment-only ones included
    metrics: tuple[MetricDigest, ...]  # only metrics with answers in the last 28 days
    negative_comments: tuple[NegativeComment, ...]
    negative_total: int  # negative answers of the day, with or without a comment
    themes: tuple[Theme, ...]
    cases: CaseHealth
    #: Before/after of the team's annotations of the last 90 days, newest first (design.md §8).
    annotations: tuple[AnnotationEffect, ...] = ()
    #: Whether the team asked for a trend chart image beside the digest (config `digest.charts`).
    charts: bool = False

    @property
    def quiet(self) -> bool:
        """No feedback at all on the reported day."""
        return self.responses == 0

    def metric(self, name: str) -> MetricDigest | None:
        return next((m for m in self.metrics if m.metric == name), None)


@dataclass(frozen=True, slots=True)
class LeadershipDigest:
    """All teams side by side, each on its own local reported day of the same date."""

    report_date: date
    generated_at: datetime
    teams: tuple[TeamDigest, ...]
