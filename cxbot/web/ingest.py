"""`POST /feedback` and `POST /webhooks/<provider>` (design.md §5 "HTTP API", §11)."""

from __future__ import annotations

import os

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cxbot.db import retrying, transaction
from cxbot.ingest.common import ItemResult
from cxbot.ingest.fetch_queue import queue_fetches
from cxbot.ingest.providers import PROVIDERS, PayloadError, SignatureError
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.limits import MAX_ITEMS_PER_DELIVERY
from cxbot.runtime import Runtime
from cxbot.web.common import HttpError, parse_form, parse_json, read_body, require_api_key, runtime_of

MAX_ITEMS_PER_REQUEST = MAX_ITEMS_PER_DELIVERY


async def _store(runtime: Runtime, items: list, *, default_source: str | None = None) -> list[ItemResult]:
    """Store the items in one transaction, run again if the database went away meanwhile: an item
    is keyed by its source and external id, so a second run stores nothing twice."""

    async def store() -> list[ItemResult]:
        async with transaction(runtime.sessions) as session:
            return await ingest_items(
                session,
                ingestor_for(runtime.config),
                items,
                now=runtime.clock(),
                default_source=default_source,
            )

    results = await retrying(store)
    for result in results:
        runtime.counters.inc("cxbot_feedback_items_total", status=result.status)
    return results


def _check_item_count(items: list) -> None:
    """One cap on items per delivery, for `/feedback` and every webhook alike."""
    if len(items) > MAX_ITEMS_PER_REQUEST:
        raise HttpError(413, f"{len(items)} items in one request; send at most {MAX_ITEMS_PER_REQUEST}")


async def post_feedback(request: Request) -> JSONResponse:
    """Generic JSON ingest: one object or a list of objects, one result per item."""
    runtime = runtime_of(request)
    require_api_key(request)
    payload = parse_json(await read_body(request, limit=runtime.settings.max_body_bytes))
    items = payload if isinstance(payload, list) else [payload]
    if not isinstance(payload, list | dict):
        raise HttpError(
            422, f"body must be a feedback object or a list of them, not {type(payload).__name__}"
        )
    if not items:
        raise HttpError(422, "body is an empty list")
    _check_item_count(items)
    results = await _store(runtime, items)
    return JSONResponse({"results": [r.as_dict() for r in results]})


async def post_webhook(request: Request) -> JSONResponse:
    """A survey tool's native webhook, verified with that provider's signature over the raw body."""
    runtime = runtime_of(request)
    name = request.path_params["provider"]
    provider = PROVIDERS.get(name)
    if provider is None:
        raise HttpError(404, f"unknown provider {name!r} (known: {', '.join(sorted(PROVIDERS))})")
    try:
        options = provider.options_model.model_validate(runtime.config.webhooks.get(name) or {})
    except ValidationError as error:
        # Only a provider left out of cxbot.yaml gets here (check-config validates the ones present):
        # the server is not set up for it, which is not the sender's fault.
        detail = "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())
        raise HttpError(
            503,
            f"webhooks.{name} in the server's configuration is missing or incomplete, "
            f"so {name} webhooks are disabled ({detail})",
        ) from None
    parts = []
    for variable in options.signing_env():
        value = os.environ.get(variable)
        if not value:
            raise HttpError(503, f"{variable} is not set on the server, so {name} webhooks are disabled")
        parts.append(value)
    secret = "&".join(parts)
    if request.method == "HEAD":  # SurveyMonkey checks the URL answers before it saves the webhook
        return Response(status_code=200)
    body = await read_body(request, limit=runtime.settings.max_body_bytes)
    try:
        provider.verify(headers=request.headers, body=body, secret=secret, now=runtime.clock())
    except SignatureError as error:
        runtime.counters.inc("cxbot_webhook_rejected_total", provider=name, reason="signature")
        raise HttpError(401, f"{name} signature rejected: {error}") from None
    payload = parse_form(body) if provider.body_format == "form" else parse_json(body)
    try:
        items = provider.parse(payload=payload, options=options)
    except PayloadError as error:
        runtime.counters.inc("cxbot_webhook_rejected_total", provider=name, reason="payload")
        raise HttpError(422, f"not a {name} payload: {error}") from None
    if not items:
        return JSONResponse({"results": [], "note": "event carries no survey response; ignored"})
    _check_item_count(items)
    if provider.fetcher is not None:
        # Only ids arrived: answer now, fetch the response through the durable queue.
        async def queue() -> int:  # keyed by provider and response id: a second run queues nothing twice
            async with transaction(runtime.sessions) as session:
                return await queue_fetches(session, name, items, now=runtime.clock())

        queued = await retrying(queue)
        return JSONResponse({"queued": queued, "already_queued": len(items) - queued}, status_code=202)
    results = await _store(runtime, items, default_source=name)
    body_out = {"results": [r.as_dict() for r in results]}
    # A delivery whose every item is unusable is the sender's error; retrying it will not help.
    status = 422 if all(r.status == "error" for r in results) else 200
    return JSONResponse(body_out, status_code=status)
