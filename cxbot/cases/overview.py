"""What a person's overview shows, on any platform: my open cases, my teams' overdue cases, scores.

Slack's App Home renders it today and Teams' personal tab later: the read is here once, so both show
the same cases. `overdue` is the one definition of an overdue case for lists, digests and overviews.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.authz import Actor, mine, teams_of
from cxbot.cases.view import CaseView, load_case_view
from cxbot.config import Config
from cxbot.models import OPEN_CASE_STATES, Case
from cxbot.scores.queries import window_scores
from cxbot.scores.stats import Score

OVERVIEW_LIST_LIMIT = 40
SCORE_WINDOW = timedelta(days=7)


def overdue(now: datetime) -> ColumnElement[bool]:
    """An open case past a deadline: not acknowledged in time while new, or not resolved in time."""
    return Case.state.in_(OPEN_CASE_STATES) & (
        ((Case.state == "new") & (Case.ack_due_at < now)) | (Case.resolve_due_at < now)
    )


@dataclass(frozen=True, slots=True)
class TeamScores:
    name: str
    by_metric: dict[str, Score]


@dataclass(frozen=True, slots=True)
class Overview:
    mine: list[CaseView]
    overdue: list[CaseView]
    teams: list[str]
    scores: list[TeamScores]


async def overview_of(session: AsyncSession, actor: Actor, *, config: Config, now: datetime) -> Overview:
    """The overview of `actor`: newest first, at most OVERVIEW_LIST_LIMIT cases in each list."""
    teams = teams_of(config, actor)
    open_cases = select(Case.id).where(Case.state.in_(OPEN_CASE_STATES)).order_by(Case.id.desc())
    mine_ids = await session.execute(
        open_cases.where(Case.assignee.in_(mine(config, actor))).limit(OVERVIEW_LIST_LIMIT)
    )
    overdue_ids = await session.execute(
        open_cases.where(Case.team_key.in_(teams), overdue(now)).limit(OVERVIEW_LIST_LIMIT)
    )
    scores = []
    for team in teams:
        spec = config.team(team)
        by_metric = await window_scores(
            session, since=now - SCORE_WINDOW, until=now, team=team, min_n=spec.min_n
        )
        scores.append(TeamScores(spec.name, by_metric))
    return Overview(
        mine=await _views(session, list(mine_ids.scalars()), config, now),
        overdue=await _views(session, list(overdue_ids.scalars()), config, now),
        teams=list(teams),
        scores=scores,
    )


async def _views(session: AsyncSession, ids: list[int], config: Config, now: datetime) -> list[CaseView]:
    views = []
    for case_id in ids:
        view = await load_case_view(session, case_id, config=config, now=now)
        if view is not None:
            views.append(view)
    return views
