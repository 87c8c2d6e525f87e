"""Platform packages (Slack, Microsoft Teams): each turns platform requests into core commands and
renders core results back. `platform_routes` is the one place `bot.py` asks for their HTTP routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def platform_routes(runtime: Any) -> Sequence[Any]:
    """ASGI routes of every configured platform, mounted beside the core's routes."""
    routes: list[Any] = []
    return routes
