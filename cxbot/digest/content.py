"""Building a team's digest from the database (design.md §2, §8).

Feedback is aggregated in one query per team. A CASE expression, nested as a binary search so a row
costs about five comparisons rather than up to 28, puts each `received_at` into its local day
(boundaries computed here with zoneinfo, so DST days are 23 or 25 hours long); rows are grouped by
day, metric, score and negativity. The WHERE clause is `team_key = ? AND received_at` within the 28
local days ending on the reported day, which the (team_key, received_at) index answers: the work
grows with the window, never with the history. The day before and the same weekday a week earlier
are inside those 28 days, so no second query is needed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, String, bindparam, case, func, literal, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.cases.overview import overdue
from cxbot.config import Config, Team
from cxbot.digest.model import CaseHealth, DayPoint, MetricDigest, NegativeComment, TeamDigest
from cxbot.digest.schedule import local_day_bounds
from cxbot.digest.themes import extract_themes
from cxbot.loop.recovery import recovery_stats
from cxbot.models import OPEN_CASE_STATES, Case, Contact, Feedback, UtcDateTime
from cxbot.pii import mask_text
from cxbot.scores.annotations import annotation_effects
from cxbot.scores.kpis import case_kpis
from cxbot.scores.stats import LABELS, METRICS, SCALES, Score, compare, score_from_distribution

TREND_DAYS = 28
WEEK = 7
CASE_WINDOW_DAYS = 7
TOP_COMMENTS = 5
THEMES = 5
COMMENT_CHARS = 280
#: Negative comments read per day for the top list and the themes; a day with more uses the newest.
MAX_NEGATIVE_ROWS = 2000

Distribution = dict[float, int]


def day_boundaries(*, last_day: date, days: int, zone: ZoneInfo) -> list[datetime]:
    """`days + 1` UTC instants: the local midnights that start each day and end the last one."""
    first = last_day - timedelta(days=days - 1)
    starts = [local_day_bounds(day=first + timedelta(days=i), zone=zone)[0] for i in range(days)]
    return [*starts, local_day_bounds(day=last_day, zone=zone)[1]]


def team_window(
    team_key: Any, start: Any, end: Any, *, dialect: str, ordered: bool = False
) -> tuple[Any, ...]:
    """`team_key = t AND received_at in [start, end)`, phrased so only the (team_key, received_at) index fits.

    As row values, (team_key, received_at) between (t, start) and (t, end) is one range of that index
    on both backends. Phrased as plain `received_at >= start AND received_at < end`, PostgreSQL
    (default random_page_cost, rows stored in time order) took the index on `received_at` alone and
    filtered out every other team's rows of the window: 50 ms a team instead of 3 ms. PostgreSQL also
    gets `team_key = t`, without which it estimates the range from the team column alone (a third of
    the table) and plans a parallel scan; SQLite does not, because without statistics it then seeks
    on the team alone and reads the team's whole history.

    PostgreSQL also gets the plain bounds: with the row values alone its index scan did not stop at
    the window's far end and read the team's whole history in the index (410 index pages instead of 9
    at 5M rows). An `ordered` query (ORDER BY received_at ... LIMIT) gets only the plain bounds there:
    given both, PostgreSQL walked the index backwards on the row values and again read the team's
    history, while the plain bounds alone give a window-sized scan at 1M and 5M rows.
    """
    key = tuple_(Feedback.team_key, Feedback.received_at)
    conditions = (key >= tuple_(team_key, start), key < tuple_(team_key, end))
    if dialect != "postgresql":
        return conditions
    plain = (Feedback.team_key == team_key, Feedback.received_at >= start, Feedback.received_at < end)
    return plain if ordered else (*plain, *conditions)


@lru_cache(maxsize=8)
def _window_statement(days: int, dialect: str) -> Select:
    """The statement for a window of `days` local days, built once: teams differ only in parameters."""
    bound = [bindparam(f"bound_{i}", type_=UtcDateTime) for i in range(days + 1)]

    def day_between(first: int, end: int) -> Any:
        """Index of the day in [first, end) holding received_at: a binary search, ~5 comparisons a row."""
        if end - first == 1:
            return literal(first)
        middle = (first + end) // 2
        return case(
            (Feedback.received_at < bound[middle], day_between(first, middle)),
            else_=day_between(middle, end),
        )

    day = day_between(0, days).label("day")
    rows = (
        select(day, Feedback.metric, Feedback.score, Feedback.is_negative)
        .where(*team_window(bindparam("team_key", type_=String), bound[0], bound[days], dialect=dialect))
        .subquery()
    )
    # Grouping on the subquery's columns, not on the CASE itself, keeps the GROUP BY an exact
    # match of the selected expression on every backend.
    return select(rows.c.day, rows.c.metric, rows.c.score, rows.c.is_negative, func.count()).group_by(
        rows.c.day, rows.c.metric, rows.c.score, rows.c.is_negative
    )


def bucketed_feedback_query(*, team_key: str, bounds: list[datetime], dialect: str) -> Select:
    """Counts per (local day index, metric, score, negative) over the window, in the database."""
    values: dict[str, object] = {f"bound_{i}": bound for i, bound in enumerate(bounds)}
    return _window_statement(len(bounds) - 1, dialect).params(team_key=team_key, **values)


def _pool(distributions: list[Distribution]) -> Distribution:
    pooled: Distribution = defaultdict(int)
    for distribution in distributions:
        for value, count in distribution.items():
            pooled[value] += count
    return dict(pooled)


def metric_digest(*, metric: str, daily: list[Distribution], dates: list[date], min_n: int) -> MetricDigest:
    """Scores, comparisons and trend of one metric from its per-day distributions (oldest first)."""
    scores = [score_from_distribution(metric, counts, min_n=min_n) for counts in daily]
    day, previous, week_ago = scores[-1], scores[-2], scores[-1 - WEEK]
    return MetricDigest(
        metric=metric,
        label=LABELS[metric],
        day=day,
        previous_day=previous,
        same_weekday_last_week=week_ago,
        vs_previous_day=compare(previous, day, min_n=min_n),
        vs_same_weekday=compare(week_ago, day, min_n=min_n),
        last_7_days=score_from_distribution(metric, _pool(daily[-WEEK:]), min_n=min_n),
        last_28_days=score_from_distribution(metric, _pool(daily), min_n=min_n),
        daily=tuple(
            DayPoint(
                local_date=d,
                score=s.score,
                n=s.n,
                low_sample=s.low_sample,
                ci_low=s.ci_low,
                ci_high=s.ci_high,
            )
            for d, s in zip(dates, scores, strict=True)
        ),
    )


def _severity(metric: str, score: float | None, sentiment: float | None) -> float:
    """0 = as bad as it gets; lets NPS, CSAT, CES and comment-only answers be ranked together."""
    if score is not None and metric in SCALES:
        low, high = SCALES[metric]
        return (score - low) / (high - low)
    if sentiment is not None:
        return (sentiment + 1) / 2
    return 0.5


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= COMMENT_CHARS else text[: COMMENT_CHARS - 1].rstrip() + "…"


async def _negative_comments(
    session: AsyncSession, *, team_key: str, start: datetime, end: datetime
) -> list[NegativeComment]:
    rows = await session.execute(
        select(
            Feedback.metric,
            Feedback.score,
            Feedback.comment,
            Feedback.touchpoint_key,
            Feedback.touchpoint,
            Feedback.sentiment,
            Feedback.received_at,
        )
        .where(
            *team_window(team_key, start, end, dialect=session.bind.dialect.name, ordered=True),
            Feedback.is_negative.is_(True),
            Feedback.comment.is_not(None),
            Feedback.comment != "",
        )
        .order_by(Feedback.received_at.desc())
        .limit(MAX_NEGATIVE_ROWS)
    )
    found = [
        (
            _severity(r.metric, r.score, r.sentiment),
            NegativeComment(
                metric=r.metric,
                score=r.score,
                text=_clip(mask_text(r.comment)),
                # An unknown touchpoint is whatever the survey tool sent: masked like the comment.
                touchpoint=r.touchpoint_key or (mask_text(r.touchpoint) if r.touchpoint else None),
                received_at=r.received_at,
            ),
        )
        for r in rows.all()
        if r.comment.strip()
    ]
    found.sort(key=lambda pair: (pair[0], pair[1].received_at))
    return [comment for _, comment in found]


async def case_health(
    session: AsyncSession,
    *,
    team_key: str,
    day_start: datetime,
    day_end: datetime,
    window_start: datetime,
    now: datetime,
) -> CaseHealth:
    """New, open and overdue cases, and the loop's speed and reach over the recent window."""
    is_open = Case.state.in_(OPEN_CASE_STATES)
    counts = (
        await session.execute(
            select(
                func.count().filter((Case.created_at >= day_start) & (Case.created_at < day_end)),
                func.count().filter(is_open),
                func.count().filter(overdue(now)),
            ).where(Case.team_key == team_key)
        )
    ).one()
    first_attempt = select(func.min(Contact.created_at)).where(Contact.case_id == Case.id).scalar_subquery()
    recent = (
        await session.execute(
            select(Case.created_at, Case.acknowledged_at, Case.contacted_at, first_attempt).where(
                Case.team_key == team_key, Case.created_at >= window_start, Case.created_at < day_end
            )
        )
    ).all()
    to_ack = [(ack - created).total_seconds() for created, ack, _, _ in recent if ack is not None]
    to_contact = []
    for created, _, contacted, attempted in recent:
        firsts = [t for t in (contacted, _aware(attempted)) if t is not None]
        if firsts:
            to_contact.append((min(firsts) - created).total_seconds())
    kpis = await case_kpis(session, since=window_start, until=day_end, team=team_key)
    recovery = await recovery_stats(session, team=team_key, start=window_start, end=day_end)
    return CaseHealth(
        as_of=now,
        window_days=CASE_WINDOW_DAYS,
        new=int(counts[0]),
        open=int(counts[1]),
        overdue=int(counts[2]),
        median_seconds_to_acknowledge=median(to_ack) if to_ack else None,
        acknowledged_n=len(to_ack),
        median_seconds_to_first_contact=median(to_contact) if to_contact else None,
        contacted_n=len(to_contact),
        cases_in_window=len(recent),
        contact_rate=100.0 * len(to_contact) / len(recent) if recent else None,
        recovery_rate=recovery.rate,
        resurveyed_n=recovery.n,
        resolved_n=kpis.resolved,
        first_contact_resolved_n=kpis.first_contact_resolved,
        first_contact_resolution=kpis.first_contact_resolution,
        median_seconds_to_resolve=kpis.median_seconds_to_resolve,
        p90_seconds_to_resolve=kpis.p90_seconds_to_resolve,
    )


def _aware(value: datetime | None) -> datetime | None:
    """A MIN() over a UTC column comes back naive from SQLite; it is UTC all the same."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


async def build_team_digest(
    session: AsyncSession, *, team: Team, report_date: date, now: datetime, config: Config | None = None
) -> TeamDigest:
    """The digest of `team` for its local day `report_date`, as of `now` (for open/overdue cases).

    With `config`, the team's annotations of the last 90 days (as of the end of the reported day)
    are judged before/after with the owning teams' floors.
    """
    if session.bind.dialect.name == "postgresql":
        # Plan each query for its own window. After five runs of a prepared statement PostgreSQL may
        # switch to a generic plan, blind to the bounds, and it chose to scan the whole table.
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    zone = ZoneInfo(team.timezone)
    bounds = day_boundaries(last_day=report_date, days=TREND_DAYS, zone=zone)
    dates = [report_date - timedelta(days=TREND_DAYS - 1 - i) for i in range(TREND_DAYS)]
    daily: dict[str, list[Distribution]] = {m: [{} for _ in range(TREND_DAYS)] for m in METRICS}
    responses = negative_total = 0
    for day, metric, score, negative, count in (
        await session.execute(
            bucketed_feedback_query(team_key=team.key, bounds=bounds, dialect=session.bind.dialect.name)
        )
    ).all():
        if day == TREND_DAYS - 1:
            responses += count
            negative_total += count if negative else 0
        if metric in daily and score is not None:
            daily[metric][day][float(score)] = daily[metric][day].get(float(score), 0) + count
    metrics = tuple(
        metric_digest(metric=m, daily=daily[m], dates=dates, min_n=team.min_n)
        for m in METRICS
        if any(daily[m])
    )
    day_start, day_end = bounds[-2], bounds[-1]
    negatives = await _negative_comments(session, team_key=team.key, start=day_start, end=day_end)
    health = await case_health(
        session,
        team_key=team.key,
        day_start=day_start,
        day_end=day_end,
        window_start=bounds[-1 - CASE_WINDOW_DAYS],
        now=now,
    )
    effects = (
        await annotation_effects(session, config=config, now=min(now, day_end), team=team.key)
        if config is not None
        else []
    )
    return TeamDigest(
        team_key=team.key,
        team_name=team.name,
        timezone=team.timezone,
        report_date=report_date,
        window_start=day_start,
        window_end=day_end,
        generated_at=now,
        min_n=team.min_n,
        responses=responses,
        metrics=metrics,
        negative_comments=tuple(negatives[:TOP_COMMENTS]),
        negative_total=negative_total,
        themes=extract_themes((c.text for c in negatives), limit=THEMES),
        cases=health,
        annotations=tuple(effects),
        charts=team.digest.charts,
    )


def day_score(digest: TeamDigest, metric: str) -> Score | None:
    """The reported day's score of one metric, or None when the team has no such answers."""
    found = digest.metric(metric)
    return found.day if found else None


async def explain_window_query(session: AsyncSession, *, team_key: str, bounds: list[datetime]) -> list[str]:
    """The database's plan for one team's window query (SQLite EXPLAIN QUERY PLAN, PostgreSQL EXPLAIN).

    For tests, the bench and operators checking that the (team_key, received_at) index bounds the work.
    """
    connection = await session.connection()
    dialect = connection.dialect
    query = bucketed_feedback_query(team_key=team_key, bounds=bounds, dialect=dialect.name)
    compiled = query.compile(dialect=dialect)
    values = [compiled.params[name] for name in compiled.positiontup or ()]
    if dialect.name == "sqlite":
        # The column type stores naive UTC text on SQLite; the plan does not depend on the values.
        values = [
            v.astimezone(UTC).replace(tzinfo=None).isoformat(" ") if isinstance(v, datetime) else v
            for v in values
        ]
        prefix = "EXPLAIN QUERY PLAN "
    else:
        prefix = "EXPLAIN "
    rows = await connection.exec_driver_sql(prefix + str(compiled), tuple(values))
    return [" ".join(str(part) for part in row) for row in rows.all()]
