"""The outbox worker's statements on rows other than the one it records (cxbot.outbox.worker).

Each runs in the worker's record transaction: closing refreshes a sent card already showed, holding
what a Retry-After limits, burying a destination that does not exist, binding a case's card.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

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


#: A pending row's `result` names the hold its Retry-After put on its destination, so that every
#: worker (another replica too) sees the destination is held until the row's `next_attempt_at`:
#: rows queued after the 429 are not claimed before then, and rows claimed before it are put back.
#: (A hold on a whole platform holds the row's destination this way; `hold_rows` holds the rest.)
HOLD_KEY = "hold"


def hold_marker(hold: str | None) -> Any:
    """The `result` of a row put back to pending: the hold it carries, or none (SQL NULL)."""
    return {HOLD_KEY: hold} if hold is not None else null()


def destination_held(now: datetime) -> ColumnElement[bool]:
    """True for an outbox row whose destination a pending row holds past `now` (a Retry-After)."""
    holder = aliased(OutboxMessage)
    return exists().where(
        holder.platform == OutboxMessage.platform,
        holder.destination == OutboxMessage.destination,
        holder.status == "pending",
        holder.next_attempt_at > now,
        holder.result.is_not(None),
    )


async def hold_ends(session: AsyncSession, platform: str, destination: str, now: datetime) -> datetime | None:
    """When the Retry-After some worker got for this destination ends, if it has not yet."""
    ends = await session.scalar(
        select(func.max(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.platform == platform,
            OutboxMessage.destination == destination,
            OutboxMessage.status == "pending",
            OutboxMessage.next_attempt_at > now,
            OutboxMessage.result.is_not(None),
        )
    )
    return ends


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
