"""Events API listeners: App Home (my cases, my teams' overdue cases and scores).

Each event acts once, whatever Slack retries (design.md §9).

Bolt acknowledges events itself; the `event_id` is recorded in the listener (never in middleware,
which must not open a database session) before anything else happens.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from cxbot.authz import actor_for
from cxbot.cases.overview import overview_of
from cxbot.outbox.inbox import remember_inbound_event
from handlers.slack.deps import SlackDeps, log
from handlers.slack.errors import SlackPermanentError, SlackTransientError
from handlers.slack.renderers import home_view


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def app_home_opened(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        if not await first_delivery(deps, body):
            return
        await publish_home(deps, event["user"])

    app.event("app_home_opened")(app_home_opened)


async def first_delivery(deps: SlackDeps, body: dict[str, Any]) -> bool:
    """False when this `event_id` was handled before (a Slack retry or a replay)."""
    event_id = body.get("event_id")
    if not event_id:
        return True
    kind = (body.get("event") or {}).get("type")
    first = await remember_inbound_event(
        deps.runtime, platform="slack", event_id=event_id, kind=kind, now=deps.runtime.clock()
    )
    if not first:
        log.info("ignoring repeated Slack event %s (%s)", event_id, kind)
    return first


async def publish_home(deps: SlackDeps, user_id: str) -> None:
    """Read the user's overview in one short session, then publish with no session open."""
    runtime = deps.runtime
    async with runtime.sessions() as session:
        overview = await overview_of(
            session, actor_for(runtime.config, "slack", user_id), config=runtime.config, now=runtime.clock()
        )
    view = home_view(overview)
    try:
        await deps.client.publish_home(user_id=user_id, view=view)
    except (SlackTransientError, SlackPermanentError) as error:
        log.warning("could not publish App Home for %s: %s", user_id, error)
