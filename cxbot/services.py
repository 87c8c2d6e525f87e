"""What `serve` runs beside the HTTP app: the outbox worker (chat platforms and customer contacts),
the provider fetch queue, and each platform's open connection. Started and stopped by the command
line's `serve`, with the platforms the composition root (`bot.py`) passed in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from cxbot.ingest.fetch_queue import FetchWorker, fetch_sources
from cxbot.loop.contact.notifier import contact_notifier
from cxbot.outbox.contract import Notifier
from cxbot.outbox.worker import OutboxWorker
from cxbot.platform import Platform
from cxbot.runtime import Runtime

log = logging.getLogger("cxbot.services")


def platform_routes(runtime: Runtime, platforms: Sequence[Platform]) -> list[Any]:
    """The HTTP routes of every configured platform."""
    return [route for platform in platforms for route in platform.routes(runtime)]


def outbox_notifiers(runtime: Runtime, platforms: Sequence[Platform]) -> dict[str, Notifier]:
    """Every way out the outbox has, by platform: the configured chats, and customer contacts
    (email, SMS, helpdesk webhook), which are the core's own."""
    notifiers: dict[str, Notifier] = {}
    for platform in platforms:
        notifier = platform.notifier(runtime)
        if notifier is not None:
            notifiers[notifier.platform] = notifier
    contact = contact_notifier(runtime)
    if contact is not None:
        notifiers[contact.platform] = contact
    return notifiers


@asynccontextmanager
async def serving(
    runtime: Runtime, platforms: Sequence[Platform], *, idle_seconds: float = 2.0
) -> AsyncIterator[None]:
    """The background work while the context is open; on leaving, requests already answered finish
    their work (Slack's acknowledgement) and the worker delivers what they queued."""
    stop = asyncio.Event()
    # Responses that webhooks only named (SurveyMonkey, Qualtrics), fetched from the provider's API.
    fetcher = FetchWorker(runtime, fetch_sources(runtime.config))
    tasks = [asyncio.create_task(fetcher.run_forever(stop, idle_seconds=idle_seconds), name="cxbot-fetch")]
    notifiers = outbox_notifiers(runtime, platforms)
    if notifiers:
        # SQLite has one connection for requests and outbox alike: a claim only once a round is done.
        rolling = runtime.engine.dialect.name != "sqlite"
        worker = OutboxWorker(runtime, notifiers, paced=True, rolling=rolling)
        tasks.append(
            asyncio.create_task(worker.run_forever(stop, idle_seconds=idle_seconds), name="cxbot-outbox")
        )
    else:
        log.info("no chat platform configured: the outbox keeps messages queued until one is")
    try:
        async with AsyncExitStack() as connections:
            for platform in platforms:
                connection = platform.connection(runtime)
                if connection is not None:
                    await connections.enter_async_context(connection)
            yield
    finally:
        await runtime.background.drain()
        stop.set()
        await asyncio.gather(*tasks)
