"""Slack: Bolt's AsyncApp over HTTP at `POST /slack/events`, and the notifier the outbox uses.

Same shape as every platform package: `commands` (the slash command), `actions` (buttons, selects,
modals), `events` (App Home), `renderers` (Block Kit) and `notifier` (outbox delivery); `app` builds
the Bolt app and registers each module's listeners explicitly; `client` and `errors` wrap the Web API.
"""

from __future__ import annotations

from handlers.slack.app import slack_notifier, slack_routes, socket_mode_handler

__all__ = ["slack_notifier", "slack_routes", "socket_mode_handler"]
