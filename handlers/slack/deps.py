"""What Slack listeners share, passed to each module's `register(app, deps)` instead of globals."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cxbot.runtime import Runtime
from handlers.slack.client import SlackClient

log = logging.getLogger("handlers.slack")


@dataclass(frozen=True, slots=True)
class SlackDeps:
    runtime: Runtime
    client: SlackClient
