"""Escalation state per SLA clock on cases (cxbot/escalation.py): warning, steps fired, next step.

Written by hand to match the `ack_*` and `resolve_*` escalation columns of cxbot.models.Case. Every
column is additive and nullable or defaulted, so existing rows need no backfill: a case with no
escalation state simply starts its clocks' warning and steps from the beginning.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CLOCKS = ("ack", "resolve")


# Plain ADD/DROP COLUMN, not batch mode: SQLite (3.35+) does both in place, whereas a batch rebuild
# would drop and recreate `cases`, and with foreign keys on that would cascade into its events.


def upgrade() -> None:
    for clock in CLOCKS:
        op.add_column("cases", sa.Column(f"{clock}_clock_due_at", TIMESTAMP, nullable=True))
        op.add_column("cases", sa.Column(f"{clock}_warned_at", TIMESTAMP, nullable=True))
        op.add_column(
            "cases", sa.Column(f"{clock}_escalations", sa.Integer(), server_default="0", nullable=False)
        )
        op.add_column("cases", sa.Column(f"{clock}_next_escalation_at", TIMESTAMP, nullable=True))


def downgrade() -> None:
    for clock in reversed(CLOCKS):
        for column in ("next_escalation_at", "escalations", "warned_at", "clock_due_at"):
            op.drop_column("cases", f"{clock}_{column}")
