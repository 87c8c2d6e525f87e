"""Retry-After holds in a table of their own (issue #15).

Written by hand to match cxbot.models.OutboxHold: one row per (platform, destination) that a
platform rate limited, with the time the hold ends; `*` holds the whole platform. Until now a hold
lived on the outbox row that got the 429 (`result = {"hold": ...}`) and was written only with that
row's record; a row still pending with such a marker is simply retried at its `next_attempt_at`.
A new table only, so existing rows need nothing.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_holds",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=False),
        sa.Column("until", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("platform", "destination", name=op.f("pk_outbox_holds")),
    )


def downgrade() -> None:
    op.drop_table("outbox_holds")
