"""Microsoft Teams: the Bot Framework endpoint `POST /api/messages` and the Bot Connector client.

Same shape as `handlers/slack/`: `auth` checks inbound JWTs, `tokens` gets the bot's own token,
`connector` and `errors` wrap the Bot Connector REST API, `markup` renders the core's neutral text,
`cards` builds Adaptive Cards and `notifier` delivers the outbox's rows.
"""

from __future__ import annotations

from handlers.teams.app import teams_notifier, teams_routes

__all__ = ["teams_notifier", "teams_routes"]
