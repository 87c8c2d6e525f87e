"""Closing the loop and customer history: contact bodies, re-surveys, annotations, audit events.

Written by hand to match cxbot.models. `cases` gains the "could not contact" reason and the recovery
outcome; `contacts` gains the text sent and the attempt count; three new tables: `resurveys` (one-time
links), `annotations` (dated changes at a touchpoint) and `audit_events` (reveals and erasures, which
belong to no single case). Every column is additive and nullable or defaulted, so existing rows need
no backfill.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# Plain ADD/DROP COLUMN, not batch mode, for the reason given in 0003: a batch rebuild of `cases`
# would cascade into its events on SQLite.


def upgrade() -> None:
    op.add_column("cases", sa.Column("no_contact_reason", sa.String(length=500), nullable=True))
    op.add_column("cases", sa.Column("recovery_outcome", sa.String(length=16), nullable=True))
    op.add_column("contacts", sa.Column("body", sa.Text(), nullable=True))
    op.add_column("contacts", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))

    op.create_table(
        "resurveys",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=True),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("answered_at", TIMESTAMP, nullable=True),
        sa.Column("feedback_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_resurveys_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_resurveys_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["feedback_id"], ["feedback.id"], name=op.f("fk_resurveys_feedback_id_feedback")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resurveys")),
        sa.UniqueConstraint("nonce", name=op.f("uq_resurveys_nonce")),
    )
    op.create_index(op.f("ix_resurveys_customer_id_created_at"), "resurveys", ["customer_id", "created_at"])
    op.create_index(op.f("ix_resurveys_case_id"), "resurveys", ["case_id"])

    op.create_table(
        "annotations",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("touchpoint_key", sa.String(length=64), nullable=False),
        sa.Column("team_key", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("effective_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["touchpoint_key"], ["touchpoints.key"], name=op.f("fk_annotations_touchpoint_key_touchpoints")
        ),
        sa.ForeignKeyConstraint(["team_key"], ["teams.key"], name=op.f("fk_annotations_team_key_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    op.create_index(
        op.f("ix_annotations_touchpoint_key_effective_at"), "annotations", ["touchpoint_key", "effective_at"]
    )
    op.create_index(op.f("ix_annotations_team_key_effective_at"), "annotations", ["team_key", "effective_at"])

    op.create_table(
        "audit_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_subject_at"), "audit_events", ["subject", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_events_subject_at"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index(op.f("ix_annotations_team_key_effective_at"), table_name="annotations")
    op.drop_index(op.f("ix_annotations_touchpoint_key_effective_at"), table_name="annotations")
    op.drop_table("annotations")
    op.drop_index(op.f("ix_resurveys_case_id"), table_name="resurveys")
    op.drop_index(op.f("ix_resurveys_customer_id_created_at"), table_name="resurveys")
    op.drop_table("resurveys")
    op.drop_column("contacts", "attempts")
    op.drop_column("contacts", "body")
    op.drop_column("cases", "recovery_outcome")
    op.drop_column("cases", "no_contact_reason")
