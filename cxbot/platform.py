"""What a chat platform package hands the core (design.md §10).

Each package under `handlers/` defines one :class:`Platform` in its `platform` module: its HTTP routes,
its way out for the outbox, and a connection it keeps open while `serve` runs (Slack's Socket Mode).
`bot.py` passes the platforms in, so the core runs its own workers without importing a platform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from cxbot.outbox.contract import Notifier

#: A platform's routes for the runtime (Starlette routes, mounted beside the core's).
RoutesOf = Callable[[Any], Sequence[Any]]
NotifierOf = Callable[[Any], Notifier | None]
#: Something to keep open while serving; entered after the HTTP app starts, left before it stops.
ConnectionOf = Callable[[Any], AbstractAsyncContextManager[None] | None]


def no_connection(_runtime: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Platform:
    """A chat platform, as the composition root wires it: each hook returns nothing when the
    platform is not configured (its settings say why, in one log line)."""

    name: str
    routes: RoutesOf
    notifier: NotifierOf
    connection: ConnectionOf = no_connection
