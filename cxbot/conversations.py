"""Conversation references a platform hands the bot, kept so it can later post without being asked.

A platform package (Teams) calls :func:`remember_conversation` on install and on every message; the
reference is an opaque dict to the core (Teams: service URL, tenant, conversation id). A team whose
destination on that platform is this conversation gets the reference too, so its cards and digests
can be posted proactively as soon as the bot is installed there.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from cxbot.db import insert_for, transaction
from cxbot.models import ChatConversation, TeamDestination

if TYPE_CHECKING:  # runtime → ingest → outbox: only the type is needed here
    from cxbot.runtime import Runtime


async def remember_conversation(
    runtime: Runtime,
    *,
    platform: str,
    conversation_id: str,
    kind: str,
    reference: dict[str, Any],
    user_id: str | None,
    now: datetime,
) -> None:
    """Store (or refresh) one conversation's reference, and any team destination that names it."""
    async with transaction(runtime.sessions) as session:
        stmt = insert_for(session, ChatConversation).values(
            platform=platform,
            conversation_id=conversation_id,
            kind=kind,
            user_id=user_id,
            reference=reference,
            updated_at=now,
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[ChatConversation.platform, ChatConversation.conversation_id],
                set_={
                    "kind": stmt.excluded.kind,
                    "user_id": stmt.excluded.user_id,
                    "reference": stmt.excluded.reference,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
        )
        await session.execute(
            update(TeamDestination)
            .where(TeamDestination.platform == platform, TeamDestination.address == conversation_id)
            .values(reference=reference)
        )


async def conversation_reference(
    runtime: Runtime, *, platform: str, conversation_id: str
) -> dict[str, Any] | None:
    """The stored reference of a conversation, or None when the bot has not been there."""
    async with runtime.sessions() as session:
        return await session.scalar(
            select(ChatConversation.reference).where(
                ChatConversation.platform == platform, ChatConversation.conversation_id == conversation_id
            )
        )


async def personal_conversation(runtime: Runtime, *, platform: str, user_id: str) -> dict[str, Any] | None:
    """The reference of a person's 1:1 chat with the bot, when one is known."""
    async with runtime.sessions() as session:
        return await session.scalar(
            select(ChatConversation.reference)
            .where(
                ChatConversation.platform == platform,
                ChatConversation.user_id == user_id,
                ChatConversation.kind == "personal",
            )
            .order_by(ChatConversation.updated_at.desc())
            .limit(1)
        )
