"""The ASGI application: ingest, API, health and metrics, plus whatever routes the platforms add.

`bot.py` passes the Slack and Teams routes in, so this package never imports a chat library.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cxbot.runtime import Runtime
from cxbot.web.api import get_cases, get_scores, healthz
from cxbot.web.common import BodyLimit, HttpError
from cxbot.web.ingest import post_feedback, post_webhook
from cxbot.web.metrics import metrics
from cxbot.web.resurvey import get_resurvey, post_resurvey

log = logging.getLogger(__name__)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HttpError)
    request.app.state.runtime.counters.inc(
        "cxbot_http_requests_total", route=request.url.path.split("/")[1] or "/", status=str(error.status)
    )
    return error.response()


async def _unexpected(request: Request, error: Exception) -> Response:
    # Never a traceback to a caller: log it here, answer with a plain reason.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal error; the server log has the details"}, status_code=500)


def create_app(
    runtime: Runtime,
    *,
    routes: Sequence[BaseRoute] = (),
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """Build the app around a runtime; `routes` come from the platform packages."""
    app = Starlette(
        routes=[
            Route("/feedback", post_feedback, methods=["POST"]),
            Route("/webhooks/{provider}", post_webhook, methods=["POST", "HEAD"]),
            Route("/api/scores", get_scores, methods=["GET"]),
            Route("/api/cases", get_cases, methods=["GET"]),
            Route("/r/{token}", get_resurvey, methods=["GET"]),
            Route("/r/{token}", post_resurvey, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *routes,
        ],
        exception_handlers={HttpError: _http_error, Exception: _unexpected},
        # One body limit for every route, those the platforms add included (issue #11).
        middleware=[Middleware(BodyLimit, limit=runtime.settings.max_body_bytes)],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app


__all__ = ["AsyncIterator", "create_app"]
