"""The outbox worker's statements on rows other than the one it records (cxbot.outbox.worker).

Each runs in the worker's record transaction: closing refreshes a sent card already showed, holding
what a Retry-After limits, burying a destination that does not exist, binding a case's card.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.db import insert_for
from cxbot.models import CasePost, OutboxHold, OutboxMessage
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


#: The destination of a hold on a whole platform (channel and conversation ids have no `*`).
ALL_DESTINATIONS = "*"


async def hold(session: AsyncSession, platform: str, destination: str | None, *, until: datetime) -> None:
    """Hold what a Retry-After limits (one destination, or with None the whole platform) until `until`,
    for every worker; a hold only lengthens."""
    stmt = insert_for(session, OutboxHold).values(
        platform=platform, destination=destination or ALL_DESTINATIONS, until=until
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[OutboxHold.platform, OutboxHold.destination],
            set_={
                "until": case(
                    (stmt.excluded.until > OutboxHold.until, stmt.excluded.until), else_=OutboxHold.until
                )
            },
        )
    )


def _holding(platform: Any, destination: Any, now: datetime) -> list[ColumnElement[bool]]:
    """The holds on `destination` of `platform` (or on all of it) that have not ended by `now`."""
    return [
        OutboxHold.platform == platform,
        or_(OutboxHold.destination == destination, OutboxHold.destination == ALL_DESTINATIONS),
        OutboxHold.until > now,
    ]


def destination_held(now: datetime) -> ColumnElement[bool]:
    """True for an outbox row whose destination (or platform) some worker got a Retry-After for,
    not yet passed at `now`."""
    return exists().where(*_holding(OutboxMessage.platform, OutboxMessage.destination, now))


async def hold_ends(
    session: AsyncSession, platform: str, destination: str | None, now: datetime
) -> datetime | None:
    """When the Retry-After some worker got for this destination (or its platform) ends, if it has not yet."""
    return await session.scalar(
        select(func.max(OutboxHold.until)).where(*_holding(platform, destination, now))
    )


async def forget_holds(session: AsyncSession, *, before: datetime) -> None:
    """Drop holds that ended before `before`: they hold nothing any more."""
    await session.execute(delete(OutboxHold).where(OutboxHold.until < before))


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
