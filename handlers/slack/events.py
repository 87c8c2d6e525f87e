"""Events API listeners: App Home (my cases, my teams' overdue cases and scores).

Each event acts once, whatever Slack retries (design.md §9).

Bolt acknowledges events itself; the `event_id` is recorded in the listener (never in middleware,
which must not open a database session) before anything else happens.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from sqlalchemy import select

from cxbot.authz import Actor, teams_of
from cxbot.cases.view import CaseView, load_case_view
from cxbot.models import OPEN_CASE_STATES, Case
from cxbot.outbox.inbox import remember_inbound_event
from cxbot.scores.queries import window_scores
from handlers.slack.deps import SlackDeps, log
from handlers.slack.errors import SlackPermanentError, SlackTransientError
from handlers.slack.renderers import home_view

HOME_LIST_LIMIT = 40
SCORE_WINDOW = timedelta(days=7)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def app_home_opened(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        if not await first_delivery(deps, body):
            return
        await publish_home(deps, event["user"])

    app.event("app_home_opened")(app_home_opened)


async def first_delivery(deps: SlackDeps, body: dict[str, Any]) -> bool:
    """False when this `event_id` was handled before (a Slack retry or a replay)."""
    event_id = body.get("event_id")
    if not event_id:
        return True
    kind = (body.get("event") or {}).get("type")
    first = await remember_inbound_event(
        deps.runtime, platform="slack", event_id=event_id, kind=kind, now=deps.runtime.clock()
    )
    if not first:
        log.info("ignoring repeated Slack event %s (%s)", event_id, kind)
    return first


async def publish_home(deps: SlackDeps, user_id: str) -> None:
    """Read the user's cases in one short session, then publish with no session open."""
    runtime = deps.runtime
    now = runtime.clock()
    teams = teams_of(runtime.config, Actor(user_id, "slack"))
    async with runtime.sessions() as session:
        open_cases = select(Case.id).where(Case.state.in_(OPEN_CASE_STATES)).order_by(Case.id.desc())
        mine_ids = (
            await session.execute(open_cases.where(Case.assignee == user_id).limit(HOME_LIST_LIMIT))
        ).scalars()
        overdue_ids = (
            await session.execute(
                open_cases.where(
                    Case.team_key.in_(teams),
                    ((Case.state == "new") & (Case.ack_due_at < now)) | (Case.resolve_due_at < now),
                ).limit(HOME_LIST_LIMIT)
            )
        ).scalars()
        mine = await _views(session, list(mine_ids), runtime, now)
        overdue = await _views(session, list(overdue_ids), runtime, now)
        scores = []
        for team in teams:
            spec = runtime.config.team(team)
            by_metric = await window_scores(
                session, since=now - SCORE_WINDOW, until=now, team=team, min_n=spec.min_n
            )
            scores.append((spec.name, by_metric))
    view = home_view(mine=mine, overdue=overdue, teams=teams, scores=scores)
    try:
        await deps.client.publish_home(user_id=user_id, view=view)
    except (SlackTransientError, SlackPermanentError) as error:
        log.warning("could not publish App Home for %s: %s", user_id, error)


async def _views(session: Any, ids: list[int], runtime: Any, now: Any) -> list[CaseView]:
    views = []
    for case_id in ids:
        view = await load_case_view(session, case_id, config=runtime.config, now=now)
        if view is not None:
            views.append(view)
    return views
