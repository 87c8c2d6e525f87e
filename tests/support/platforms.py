"""The platforms wired as `bot.py` wires them, for tests that run the app, the worker or `serve`'s
background work with every configured platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cxbot.outbox.contract import Notifier
from cxbot.runtime import Runtime
from cxbot.services import outbox_notifiers, serving
from cxbot.services import platform_routes as routes_of
from handlers import load_platforms


def platform_routes(runtime: Runtime) -> list[Any]:
    return routes_of(runtime, load_platforms())


def platform_notifiers(runtime: Runtime) -> dict[str, Notifier]:
    return outbox_notifiers(runtime, load_platforms())


@asynccontextmanager
async def platform_services(runtime: Runtime, *, idle_seconds: float = 2.0) -> AsyncIterator[None]:
    async with serving(runtime, load_platforms(), idle_seconds=idle_seconds):
        yield
