"""`GET /metrics`: the Prometheus text an operator scrapes to see where users wait (issue #15).

Counters and histograms are kept in process as things happen (`runtime.counters`, the background
work's own); gauges are read here at scrape time: open cases, the background queue, and for each
platform the outbox rows due and how long the oldest of them has been due (the outbox's lag).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from cxbot.models import OPEN_CASE_STATES, Case, OutboxMessage
from cxbot.observability import Gauges
from cxbot.outbox.contract import OPEN_STATUSES
from cxbot.runtime import Runtime
from cxbot.web.common import runtime_of


async def metrics(request: Request) -> PlainTextResponse:
    runtime = runtime_of(request)
    now = runtime.clock()
    async with runtime.sessions() as session:
        gauges = {**await _case_gauges(session), **await _outbox_gauges(session, now)}
    gauges.update(_background_gauges(runtime))
    work = runtime.background
    counters = {
        "cxbot_background_refused_total": (
            "Work refused because the background queue was full, by work.",
            [({"work": name}, float(n)) for name, n in sorted(work.refused.items())],
        ),
        "cxbot_background_told_busy_total": (
            "Users told their command is queued because it waited, by work.",
            [({"work": name}, float(n)) for name, n in sorted(work.told_busy.items())],
        ),
    }
    histograms = {"cxbot_background_wait_seconds": work.waited, "cxbot_reply_seconds": work.took}
    body = runtime.counters.render(gauges, counters=counters, histograms=histograms)
    return PlainTextResponse(body, media_type="text/plain; version=0.0.4")


async def _case_gauges(session: AsyncSession) -> Gauges:
    rows = await session.execute(
        select(Case.team_key, func.count()).where(Case.state.in_(OPEN_CASE_STATES)).group_by(Case.team_key)
    )
    open_cases = [({"team": team}, float(count)) for team, count in rows.all()]
    return {"cxbot_open_cases": ("Cases not yet resolved, by team.", open_cases)}


async def _outbox_gauges(session: AsyncSession, now: datetime) -> Gauges:
    oldest = func.min(OutboxMessage.next_attempt_at, type_=OutboxMessage.next_attempt_at.type)
    rows = await session.execute(
        select(OutboxMessage.platform, func.count(), oldest)
        .where(OutboxMessage.status.in_(OPEN_STATUSES), OutboxMessage.next_attempt_at <= now)
        .group_by(OutboxMessage.platform)
    )
    due = rows.all()
    return {
        "cxbot_outbox_due": (
            "Outbox messages due and not yet delivered, by platform.",
            [({"platform": platform}, float(count)) for platform, count, _ in due],
        ),
        "cxbot_outbox_lag_seconds": (
            "How long the oldest due outbox message has waited past its time, by platform.",
            [({"platform": platform}, max(0.0, (now - since).total_seconds())) for platform, _, since in due],
        ),
    }


def _background_gauges(runtime: Runtime) -> Gauges:
    work = runtime.background
    return {
        "cxbot_background_queued": (
            "Work handed off by requests and waiting for a slot.",
            [({}, work.waiting)],
        ),
        "cxbot_background_running": ("Work handed off by requests and running now.", [({}, work.running)]),
    }
