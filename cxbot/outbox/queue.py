"""Writing the outbox (design.md §9): every side effect queued in the caller's transaction.

Flows write `outbox` rows in the same transaction as the state change; the worker
(cxbot.outbox.worker) delivers them later. Each row has a unique dedupe key, so a replayed job, click
or firing never queues the same message twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, insert, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.db import insert_for, mark_outbox_queued
from cxbot.models import OutboxMessage, TeamDestination
from cxbot.outbox.contract import CASE_CARD, CASE_KINDS, dedupe_key


def outbox_row(
    *,
    kind: str,
    platform: str,
    destination: str | None,
    payload: dict[str, Any],
    subject: Sequence[object],
    now: datetime,
    case_id: int | None = None,
) -> dict[str, Any]:
    """The one shape of a new outbox row: pending, due now, keyed by `dedupe_key(kind, platform, …)`."""
    return {
        "kind": kind,
        "platform": platform,
        "destination": destination,
        "payload": payload,
        "dedupe_key": dedupe_key(kind, platform, *subject),
        "case_id": case_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


async def queue_message(
    session: AsyncSession,
    *,
    kind: str,
    platform: str,
    destination: str | None,
    payload: dict[str, Any],
    subject: Sequence[object],
    now: datetime,
    case_id: int | None = None,
) -> bool:
    """Queue one side effect in the caller's transaction, unless the same one is already queued.

    `subject` names what the message is about (see `contract.dedupe_key`), so a replayed job, click
    or firing can never queue the same message twice. Returns whether a row was added.
    """
    row = outbox_row(
        kind=kind,
        platform=platform,
        destination=destination,
        payload=payload,
        subject=subject,
        now=now,
        case_id=case_id,
    )
    mark_outbox_queued(session)
    inserted = await session.execute(
        insert_for(session, OutboxMessage.__table__)
        .values(**row)
        .on_conflict_do_nothing(index_elements=[OutboxMessage.dedupe_key])
        .returning(OutboxMessage.id)
    )
    return inserted.first() is not None


@dataclass(frozen=True, slots=True)
class TeamMessage:
    """One team-wide post (a digest): queued for every chat destination of `team_key`."""

    team_key: str
    payload: dict[str, Any]
    subject: Sequence[object]


async def enqueue_for_team(
    session: AsyncSession,
    *,
    team_key: str,
    kind: str,
    payload: dict[str, Any],
    subject: Sequence[object],
    now: datetime,
) -> int:
    """Queue one message for every chat destination of a team, in the caller's transaction.

    For team-wide posts such as digests (`kind="digest"`, payload `{"text": ...}`): the same
    `subject` queued twice (a replayed job) is one message per destination. Returns rows added.
    """
    return await enqueue_for_teams(session, [TeamMessage(team_key, payload, subject)], kind=kind, now=now)


async def enqueue_for_teams(
    session: AsyncSession, messages: Sequence[TeamMessage], *, kind: str, now: datetime
) -> int:
    """`enqueue_for_team` for many teams at once: one SELECT of their destinations and one INSERT,
    so 500 digests due in the same minute cost two statements per batch, not two per team."""
    if not messages:
        return 0
    destinations = await session.execute(
        select(TeamDestination.team_key, TeamDestination.platform, TeamDestination.address).where(
            TeamDestination.team_key.in_(sorted({m.team_key for m in messages}))
        )
    )
    by_team: dict[str, list[tuple[str, str]]] = {}
    for team, platform, address in destinations.all():
        by_team.setdefault(team, []).append((platform, address))
    rows = [
        outbox_row(
            kind=kind,
            platform=platform,
            destination=address,
            payload=message.payload,
            subject=message.subject,
            now=now,
        )
        for message in messages
        for platform, address in by_team.get(message.team_key, [])
    ]
    if not rows:
        return 0
    mark_outbox_queued(session)
    inserted = await session.execute(
        insert_for(session, OutboxMessage.__table__)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[OutboxMessage.dedupe_key])
        .returning(OutboxMessage.id)
    )
    return len(inserted.all())


#: Stores outbox rows (dicts shaped by `outbox_row`) in the caller's transaction, skipping each row
#: whose dedupe key is already queued: `insert_outbox_rows`, or a bulk importer's own writer.
OutboxWriter = Callable[[AsyncSession, list[dict[str, Any]]], Awaitable[None]]


async def insert_outbox_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """The portable `OutboxWriter`: one executemany INSERT … ON CONFLICT (dedupe_key) DO NOTHING."""
    await session.execute(
        insert_for(session, OutboxMessage.__table__).on_conflict_do_nothing(
            index_elements=[OutboxMessage.dedupe_key]
        ),
        rows,
    )


async def queue_case_cards(
    session: AsyncSession,
    opened: Iterable[tuple[int, str]],
    *,
    now: datetime,
    text: str = "Case opened",
    write: OutboxWriter = insert_outbox_rows,
) -> None:
    """Queue the first card of newly opened cases, one row per destination of the owning team.

    Called by the ingest in the transaction that opens the cases; `opened` is (case id, team key).
    This decides which rows are queued; `write` only stores them (a bulk import passes one that
    takes PostgreSQL's COPY, with the same ON CONFLICT rule).
    """
    by_team: dict[str, list[int]] = {}
    for case_id, team in opened:
        by_team.setdefault(team, []).append(case_id)
    if not by_team:
        return
    destinations = await session.execute(
        select(TeamDestination.team_key, TeamDestination.platform, TeamDestination.address)
        .where(TeamDestination.team_key.in_(sorted(by_team)))
        .order_by(TeamDestination.platform, TeamDestination.address)
    )
    # In case order, then platform and channel: the oldest case's cards are claimed first, and the
    # outbox ids come out the same on every database.
    addresses: dict[str, list[tuple[str, str]]] = {}
    for team, platform, address in destinations.all():
        addresses.setdefault(team, []).append((platform, address))
    rows = [
        outbox_row(
            kind=CASE_CARD,
            platform=platform,
            destination=address,
            payload={"case_id": case_id, "event_id": None, "text": text},
            subject=(case_id, "opened"),
            now=now,
            case_id=case_id,
        )
        for case_id, team in sorted((c, t) for t, cases in by_team.items() for c in cases)
        for platform, address in addresses.get(team, ())
    ]
    if rows:
        mark_outbox_queued(session)
        await write(session, rows)


def _case_update_insert() -> Any:
    """INSERT … SELECT of one case event's card refresh and thread line per destination of a team.

    Built once with bound parameters: constructing the statement and its cache key anew cost more
    than running it (~0.5 ms a case action). The dedupe key is `contract.dedupe_key(kind, platform,
    case_id, event_id)`, spelled in SQL around the platform.
    """
    table = OutboxMessage.__table__
    columns = ("kind", "platform", "destination", "payload", "dedupe_key", "case_id", "status")
    columns += ("attempts", "next_attempt_at", "created_at")

    def per_destination(kind: str) -> Any:
        return select(
            literal(kind, table.c.kind.type),
            TeamDestination.platform,
            TeamDestination.address,
            bindparam("payload", type_=table.c.payload.type),
            literal(dedupe_key(kind, ""), table.c.dedupe_key.type)
            + TeamDestination.platform
            + bindparam("subject", type_=table.c.dedupe_key.type),
            bindparam("case_id", type_=table.c.case_id.type),
            literal("pending", table.c.status.type),
            literal(0, table.c.attempts.type),
            bindparam("now", type_=table.c.next_attempt_at.type),
            bindparam("now", type_=table.c.created_at.type),
        ).where(TeamDestination.team_key == bindparam("team_key"))

    return insert(table).from_select(columns, union_all(*(per_destination(kind) for kind in CASE_KINDS)))


CASE_UPDATE_INSERT: Final = _case_update_insert()


async def queue_case_update(
    session: AsyncSession, *, case_id: int, team_key: str, event_id: int, text: str, now: datetime
) -> None:
    """Queue the card refresh and the thread line of one case event for every destination of the team.

    One INSERT … SELECT over the team's destinations, not a read then a write: each action's
    transaction holds the database (SQLite's single writer) for one statement fewer.
    """
    mark_outbox_queued(session)
    await session.execute(
        CASE_UPDATE_INSERT,
        {
            "payload": {"case_id": case_id, "event_id": event_id, "text": text},
            "subject": dedupe_key("", "", case_id, event_id)[1:],
            "case_id": case_id,
            "now": now,
            "team_key": team_key,
        },
    )
