"""The inbox side of the outbox: inbound event ids remembered so a platform's retries never act twice."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.db import insert_for, transaction
from cxbot.models import InboundEvent

if TYPE_CHECKING:  # runtime → ingest → outbox: only the type is needed here
    from cxbot.runtime import Runtime


#: Slack retries an event for about an hour at most; a day of event ids is plenty to deduplicate.
KEEP_INBOUND_EVENTS = timedelta(days=1)


async def forget_inbound_events(runtime: Runtime, *, before: datetime) -> int:
    """Drop remembered event ids older than any retry (Slack retries for minutes, not days)."""
    async with transaction(runtime.sessions) as session:
        deleted = await session.execute(
            delete(InboundEvent).where(InboundEvent.received_at < before).returning(InboundEvent.id)
        )
        return len(deleted.all())


async def remember_inbound_event(
    runtime: Runtime, *, platform: str, event_id: str, kind: str | None, now: datetime
) -> bool:
    """The inbox side of the same idea: True the first time an event id is seen, False on a retry."""
    async with transaction(runtime.sessions) as session:
        return await first_time(session, platform=platform, event_id=event_id, kind=kind, now=now)


async def first_time(
    session: AsyncSession, *, platform: str, event_id: str, kind: str | None, now: datetime
) -> bool:
    """Record an event id in the caller's transaction: True the first time, False on a retry. In the
    transaction of the work the event asks for, the record and the work commit (or roll back) together."""
    inserted = await session.execute(
        insert_for(session, InboundEvent)
        .values(platform=platform, event_id=event_id, kind=kind, received_at=now)
        .on_conflict_do_nothing(index_elements=[InboundEvent.platform, InboundEvent.event_id])
        .returning(InboundEvent.id)
    )
    return inserted.first() is not None
