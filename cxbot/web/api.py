"""`GET /api/scores`, `GET /api/cases`, and `/healthz` for dashboards and operators."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from cxbot.commands.grammar import case_ref
from cxbot.ingest.service import ingestor_for
from cxbot.limits import parse_id
from cxbot.loop.recovery import recovery_stats
from cxbot.models import CASE_STATES, Case
from cxbot.pii import mask_text
from cxbot.scores.queries import WINDOWS, list_cases, parse_window, window_scores
from cxbot.scores.stats import METRICS, Change, Score, compare
from cxbot.web.common import HttpError, require_api_key, runtime_of

log = logging.getLogger(__name__)


def _score_json(score: Score) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": score.label,
        "score": None if score.score is None else round(score.score, 2),
        "n": score.n,
        "ci_low": None if score.ci_low is None else round(score.ci_low, 2),
        "ci_high": None if score.ci_high is None else round(score.ci_high, 2),
        "low_sample": score.low_sample,
    }
    if score.share_easy is not None:
        out["share_easy"] = round(score.share_easy, 2)
    return out


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "delta": None if change.delta is None else round(change.delta, 2),
        "verdict": change.verdict,
        "direction": change.direction,
    }


async def get_scores(request: Request) -> JSONResponse:
    """Scores for a window and the equal window before it, with the verdict on the change."""
    runtime = runtime_of(request)
    require_api_key(request)
    params = request.query_params
    team = params.get("team") or None
    touchpoint = params.get("touchpoint") or None
    metric = params.get("metric") or None
    if team is not None and team not in runtime.config.team_keys:
        raise HttpError(
            400, f"team: {team!r} is not a team (teams are: {', '.join(runtime.config.team_keys)})"
        )
    if touchpoint is not None:
        found = ingestor_for(runtime.config).router.touchpoint(touchpoint)
        if found is None:
            raise HttpError(400, f"touchpoint: {touchpoint!r} is not a configured touchpoint")
        touchpoint = found.key
        # A touchpoint belongs to one team, so its answers are judged against that team's floor.
        owner = team or found.team
    else:
        owner = team
    if metric is not None and metric not in METRICS:
        raise HttpError(400, f"metric: {metric!r} is not one of {', '.join(METRICS)}")
    window_name = params.get("window") or "28d"
    try:
        window = parse_window(window_name)
    except ValueError as error:
        raise HttpError(400, str(error)) from None
    min_n = runtime.config.team(owner).min_n if owner else 30
    metrics = (metric,) if metric else METRICS
    until = runtime.clock()
    async with runtime.sessions() as session:
        current = await window_scores(
            session,
            since=until - window,
            until=until,
            team=team,
            touchpoint=touchpoint,
            metrics=metrics,
            min_n=min_n,
        )
        previous = await window_scores(
            session,
            since=until - 2 * window,
            until=until - window,
            team=team,
            touchpoint=touchpoint,
            metrics=metrics,
            min_n=min_n,
        )
        # Re-surveyed customers who answered in the window, and the share who moved up a category.
        recovery = await recovery_stats(
            session, team=team, start=until - window, end=until, touchpoint=touchpoint
        )
    return JSONResponse(
        {
            "team": team,
            "touchpoint": touchpoint,
            "window": window_name,
            "from": (until - window).isoformat(),
            "to": until.isoformat(),
            "min_n": min_n,
            "recovery": recovery.as_dict(),
            "scores": {
                m: {
                    **_score_json(current[m]),
                    "previous": _score_json(previous[m]),
                    "change": _change_json(compare(previous[m], current[m], min_n=min_n)),
                }
                for m in metrics
            },
        }
    )


#: Every field of a case answer that holds words someone typed (a customer, a member, a survey tool):
#: masked like a card (design.md §11: PII never appears here unmasked). Ids and timestamps are ours.
CASE_FREE_TEXT = ("title", "routing_reason", "routing_rule", "touchpoint", "assignee")


def _case_json(case: Case) -> dict[str, Any]:
    def stamp(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    out = {
        "id": case.ref,
        "state": case.state,
        "team": case.team_key,
        "touchpoint": case.touchpoint_key,
        "title": case.title,
        "priority": case.priority,
        "assignee": case.assignee,
        "escalation_level": case.escalation_level,
        "routing_rule": case.routing_rule,
        "routing_reason": case.routing_reason,
        "feedback_id": case.feedback_id,
        "created_at": stamp(case.created_at),
        "acknowledged_at": stamp(case.acknowledged_at),
        "contacted_at": stamp(case.contacted_at),
        "resolved_at": stamp(case.resolved_at),
        "closed_at": stamp(case.closed_at),
        "ack_due_at": stamp(case.ack_due_at),
        "resolve_due_at": stamp(case.resolve_due_at),
        "snoozed_until": stamp(case.snoozed_until),
    }
    return out | {key: mask_text(out[key]) for key in CASE_FREE_TEXT if isinstance(out[key], str)}


MAX_CASES_PER_PAGE = 1000


async def get_cases(request: Request) -> JSONResponse:
    """Cases newest first, paginated with `before` (the last id seen); no PII."""
    runtime = runtime_of(request)
    require_api_key(request)
    params = request.query_params
    team = params.get("team") or None
    state = params.get("state") or None
    if team is not None and team not in runtime.config.team_keys:
        raise HttpError(
            400, f"team: {team!r} is not a team (teams are: {', '.join(runtime.config.team_keys)})"
        )
    if state is not None and state not in (*CASE_STATES, "open"):
        raise HttpError(400, f"state: {state!r} is not one of open, {', '.join(CASE_STATES)}")
    raw_limit, before = params.get("limit", "100").strip(), params.get("before")
    before_id = case_ref(before) if before else None
    # Ids and counts are ASCII digits within range (cxbot.limits): `before=` past 2**63 is a 400 too.
    if not (raw_limit.isascii() and raw_limit.isdigit()) or (before and before_id is None):
        raise HttpError(400, "limit and before must be whole numbers (before may be a case id like CX-42)")
    limit = parse_id(raw_limit)
    if limit is None or limit > MAX_CASES_PER_PAGE:
        raise HttpError(400, f"limit: must be between 1 and {MAX_CASES_PER_PAGE}")
    async with runtime.sessions() as session:
        cases = await list_cases(session, team=team, state=state, limit=limit, before_id=before_id)
    body: dict[str, Any] = {"cases": [_case_json(c) for c in cases]}
    if len(cases) == limit:
        body["next_before"] = cases[-1].ref
    return JSONResponse(body)


async def healthz(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any database failure is reported as unhealthy, details only in the log
        log.exception("health check: database unavailable")
        return JSONResponse({"status": "error", "database": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


__all__ = ["WINDOWS", "get_cases", "get_scores", "healthz"]
