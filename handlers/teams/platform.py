"""Microsoft Teams as the composition root wires it in (cxbot.platform)."""

from __future__ import annotations

from cxbot.platform import Platform
from handlers.teams.app import teams_notifier, teams_routes

PLATFORM = Platform(name="msteams", routes=teams_routes, notifier=teams_notifier)
