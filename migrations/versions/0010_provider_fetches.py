"""The durable fetch queue for webhooks that carry only ids (SurveyMonkey, Qualtrics).

Written by hand to match cxbot.models.ProviderFetch: one row per response still to be fetched,
claimed and retried with backoff by cxbot.ingest.fetch_queue like the outbox. A new table only, so
existing rows need nothing.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_fetches",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("feedback_id", BIG_ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'fetching', 'done', 'skipped', 'dead')",
            name=op.f("ck_provider_fetches_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_fetches")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_provider_fetches_dedupe_key")),
    )
    op.create_index(
        op.f("ix_provider_fetches_status_next_attempt_at"), "provider_fetches", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_provider_fetches_status_next_attempt_at"), table_name="provider_fetches")
    op.drop_table("provider_fetches")
