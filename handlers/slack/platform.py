"""Slack as the composition root wires it in (cxbot.platform)."""

from __future__ import annotations

from cxbot.platform import Platform
from handlers.slack.app import slack_notifier, slack_routes, socket_mode

PLATFORM = Platform(name="slack", routes=slack_routes, notifier=slack_notifier, connection=socket_mode)
