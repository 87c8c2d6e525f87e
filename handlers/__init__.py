"""Platform packages (Slack, Microsoft Teams): each turns platform requests into core commands and
renders core results back. `platform_routes` is the one place `bot.py` asks for their HTTP routes,
`platform_notifiers` the one place the outbox worker gets their ways out, and `platform_services` the
background work `serve` runs beside the HTTP app (the outbox worker, the provider fetch queue).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger("handlers")


def platform_routes(runtime: Any) -> Sequence[Any]:
    """ASGI routes of every configured platform, mounted beside the core's routes."""
    from handlers.slack import slack_routes
    from handlers.teams import teams_routes

    routes: list[Any] = []
    routes.extend(slack_routes(runtime))
    routes.extend(teams_routes(runtime))
    return routes


def slack_manifest(config: Any, *, socket_mode: bool = False, public_url: str | None = None) -> str:
    """The Slack app manifest with the brand's name (imports Slack only when asked for)."""
    from handlers.slack.manifest import branded_manifest

    return branded_manifest(config, socket_mode=socket_mode, public_url=public_url)


def teams_package(config: Any, *, app_id: str, public_url: str) -> bytes:
    """The Teams app package (zip) with the brand's name (imports Teams only when asked for)."""
    from handlers.teams.manifest import app_package

    return app_package(config, app_id=app_id, public_url=public_url)


def platform_notifiers(runtime: Any) -> dict[str, Any]:
    """Notifiers by platform for the outbox worker; unconfigured platforms are absent."""
    from handlers.slack import slack_notifier
    from handlers.teams import teams_notifier

    notifiers: dict[str, Any] = {}
    slack = slack_notifier(runtime)
    if slack is not None:
        notifiers[slack.platform] = slack
    teams = teams_notifier(runtime)
    if teams is not None:
        notifiers[teams.platform] = teams
    # Customer contacts (email, SMS, helpdesk webhook) are the core's own way out, beside the chats.
    from cxbot.loop.contact.notifier import contact_notifier

    contact = contact_notifier(runtime)
    if contact is not None:
        notifiers[contact.platform] = contact
    return notifiers


@asynccontextmanager
async def platform_services(runtime: Any, *, idle_seconds: float = 2.0) -> AsyncIterator[None]:
    """Background work for `serve` while the context is open: the outbox worker, and Slack Socket
    Mode when SLACK_APP_TOKEN is set."""
    from cxbot.ingest.fetch_queue import FetchWorker, fetch_sources
    from cxbot.outbox.worker import OutboxWorker
    from handlers.slack import socket_mode_handler

    stop = asyncio.Event()
    # Responses that webhooks only named (SurveyMonkey, Qualtrics), fetched from the provider's API.
    fetcher = FetchWorker(runtime, fetch_sources(runtime.config))
    fetch_task = asyncio.create_task(fetcher.run_forever(stop, idle_seconds=idle_seconds), name="cxbot-fetch")
    notifiers = platform_notifiers(runtime)
    worker_task = None
    if notifiers:
        worker = OutboxWorker(runtime, notifiers)
        worker_task = asyncio.create_task(
            worker.run_forever(stop, idle_seconds=idle_seconds), name="cxbot-outbox"
        )
    else:
        log.info("no chat platform configured: the outbox keeps messages queued until one is")
    socket_mode = socket_mode_handler(runtime)
    try:
        if socket_mode is not None:
            await socket_mode.connect_async()
            log.info("Slack Socket Mode connected")
        yield
    finally:
        if socket_mode is not None:
            await socket_mode.close_async()
        # Requests answered before their work was done (Slack's acknowledgement): finish that work
        # while the database is still open, and let the worker deliver what it queued.
        await runtime.background.drain()
        stop.set()
        await fetch_task
        if worker_task is not None:
            await worker_task
