"""The outbox worker's statements on rows other than the one it records (cxbot.outbox.worker).

Each runs in the worker's record transaction: closing refreshes a sent card already showed, holding
what a Retry-After limits, burying a destination that does not exist, binding a case's card.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.db import insert_for
from cxbot.models import CasePost, OutboxMessage
from cxbot.outbox.contract import CASE_CARD, REPORT


async def later_refreshes(session: AsyncSession, row: OutboxMessage) -> list[int]:
    """Card refreshes of the same case and destination queued after `row` and not yet claimed."""
    later = await session.execute(
        select(OutboxMessage.id).where(
            OutboxMessage.kind == CASE_CARD,
            OutboxMessage.case_id == row.case_id,
            OutboxMessage.platform == row.platform,
            OutboxMessage.destination == row.destination,
            OutboxMessage.id > row.id,
            OutboxMessage.status == "pending",
        )
    )
    return list(later.scalars())


async def supersede(session: AsyncSession, row: OutboxMessage, ids: list[int], now: datetime) -> int:
    """Close refreshes that the card just sent already showed; still pending only, so none is lost."""
    closed = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending")
        .values(status="sent", sent_at=now, result={"superseded_by": row.id}, last_error=None)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    return len(closed.all())


async def hold_rows(
    session: AsyncSession, platform: str, destination: str | None, *, until: datetime
) -> None:
    """A Retry-After holds the queued rows of what it limits (one destination, or with None the whole
    platform) for every worker, not just the row that got it."""
    limited = [OutboxMessage.platform == platform]
    if destination is not None:
        limited.append(OutboxMessage.destination == destination)
    await session.execute(
        update(OutboxMessage)
        .where(
            *limited,
            OutboxMessage.status == "pending",
            OutboxMessage.next_attempt_at < until,
        )
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )


def result_ref(result: dict[str, Any] | None) -> str | None:
    ref = (result or {}).get("message_ref")
    return str(ref) if ref else None


async def bury_destination(session: AsyncSession, row: OutboxMessage, now: datetime) -> int:
    """A destination that does not exist fails every message the same way: one report, not one each."""
    buried = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.platform == row.platform,
            OutboxMessage.destination == row.destination,
            OutboxMessage.status == "pending",
            OutboxMessage.kind != REPORT,
            OutboxMessage.id != row.id,
        )
        .values(status="dead", last_error=f"destination_dead: see outbox {row.id}")
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    return len(buried.all())


async def bind_post(session: AsyncSession, row: OutboxMessage, message_ref: str, now: datetime) -> None:
    stmt = insert_for(session, CasePost).values(
        case_id=row.case_id,
        platform=row.platform,
        destination=row.destination,
        message_ref=message_ref,
        created_at=now,
        updated_at=now,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[CasePost.case_id, CasePost.platform, CasePost.destination],
            set_={"message_ref": message_ref, "updated_at": now},
        )
    )
