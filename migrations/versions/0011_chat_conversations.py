"""Conversation references for proactive Teams messages (issue #13).

Written by hand to match cxbot.models.ChatConversation: one row per platform conversation the bot
has seen (a channel, a group chat, a person's 1:1 chat) with the reference needed to post there.
A new table only, so existing rows need nothing.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_conversations",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("conversation_id", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=100), nullable=True),
        sa.Column("reference", sa.JSON(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_conversations")),
        sa.UniqueConstraint(
            "platform", "conversation_id", name=op.f("uq_chat_conversations_platform_conversation_id")
        ),
    )
    op.create_index(
        op.f("ix_chat_conversations_platform_user_id"), "chat_conversations", ["platform", "user_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_chat_conversations_platform_user_id"), table_name="chat_conversations")
    op.drop_table("chat_conversations")
