"""Initial schema: teams, touchpoints, customers, feedback, cases, events, contacts, digests, outbox.

Written from autogenerate output and reviewed by hand: timestamps are plain TIMESTAMP WITH TIME ZONE
(cxbot.models.UtcDateTime only adds UTC handling in Python), and ids are BIGINT except on SQLite,
where only INTEGER PRIMARY KEY auto-increments.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 22:25:43.282749
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Big ids fall back to INTEGER on SQLite so the rowid alias auto-increments.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("forgotten_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("external_id", name=op.f("uq_customers_external_id")),
    )
    op.create_table(
        "digest_runs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("scheduled_for", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('claimed', 'sent', 'skipped', 'failed')", name=op.f("ck_digest_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_runs")),
        sa.UniqueConstraint("scope", "local_date", name=op.f("uq_digest_runs_scope_local_date")),
    )
    op.create_table(
        "teams",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_teams")),
    )
    op.create_table(
        "team_destinations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_key", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.JSON(), nullable=True),
        sa.Column("linked_by", sa.String(length=100), nullable=True),
        sa.Column("linked_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["team_key"], ["teams.key"], name=op.f("fk_team_destinations_team_key_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_destinations")),
        sa.UniqueConstraint("team_key", "platform", name=op.f("uq_team_destinations_team_key_platform")),
    )
    op.create_table(
        "touchpoints",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("team_key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["team_key"], ["teams.key"], name=op.f("fk_touchpoints_team_key_teams")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_touchpoints")),
    )
    op.create_index(op.f("ix_touchpoints_team_key"), "touchpoints", ["team_key"])

    op.create_table(
        "feedback",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("raw_score", sa.Float(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("touchpoint", sa.String(length=200), nullable=True),
        sa.Column("touchpoint_key", sa.String(length=64), nullable=True),
        sa.Column("team_key", sa.String(length=64), nullable=False),
        sa.Column("customer_id", BIG_ID, nullable=True),
        sa.Column("sentiment", sa.Float(), nullable=True),
        sa.Column("is_negative", sa.Boolean(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("metric IN ('nps', 'csat', 'ces', 'comment')", name=op.f("ck_feedback_metric")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_feedback_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["team_key"], ["teams.key"], name=op.f("fk_feedback_team_key_teams")),
        sa.ForeignKeyConstraint(
            ["touchpoint_key"], ["touchpoints.key"], name=op.f("fk_feedback_touchpoint_key_touchpoints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_feedback_source_external_id")),
    )
    op.create_index(op.f("ix_feedback_customer_id_received_at"), "feedback", ["customer_id", "received_at"])
    op.create_index(op.f("ix_feedback_received_at"), "feedback", ["received_at"])
    op.create_index(op.f("ix_feedback_team_key_received_at"), "feedback", ["team_key", "received_at"])
    op.create_index(
        op.f("ix_feedback_touchpoint_key_received_at"), "feedback", ["touchpoint_key", "received_at"]
    )

    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("feedback_id", BIG_ID, nullable=True),
        sa.Column("customer_id", BIG_ID, nullable=True),
        sa.Column("team_key", sa.String(length=64), nullable=False),
        sa.Column("touchpoint_key", sa.String(length=64), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("routing_rule", sa.String(length=100), nullable=False),
        sa.Column("routing_reason", sa.String(length=500), nullable=False),
        sa.Column("assignee", sa.String(length=100), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("snoozed_until", TIMESTAMP, nullable=True),
        sa.Column("snooze_reason", sa.String(length=500), nullable=True),
        sa.Column("reopened_count", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=100), nullable=True),
        sa.Column("root_cause", sa.String(length=100), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("acknowledged_at", TIMESTAMP, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=100), nullable=True),
        sa.Column("in_progress_at", TIMESTAMP, nullable=True),
        sa.Column("contacted_at", TIMESTAMP, nullable=True),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.Column("ack_due_at", TIMESTAMP, nullable=True),
        sa.Column("resolve_due_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "state IN ('new', 'acknowledged', 'in_progress', 'contacted', 'resolved', 'closed')",
            name=op.f("ck_cases_state"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_cases_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["feedback_id"], ["feedback.id"], name=op.f("fk_cases_feedback_id_feedback")),
        sa.ForeignKeyConstraint(["team_key"], ["teams.key"], name=op.f("fk_cases_team_key_teams")),
        sa.ForeignKeyConstraint(
            ["touchpoint_key"], ["touchpoints.key"], name=op.f("fk_cases_touchpoint_key_touchpoints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("feedback_id", name=op.f("uq_cases_feedback_id")),
    )
    op.create_index(op.f("ix_cases_customer_id"), "cases", ["customer_id"])
    op.create_index(op.f("ix_cases_state_ack_due_at"), "cases", ["state", "ack_due_at"])
    op.create_index(op.f("ix_cases_state_resolve_due_at"), "cases", ["state", "resolve_due_at"])
    op.create_index(op.f("ix_cases_team_key_state"), "cases", ["team_key", "state"])

    op.create_table(
        "case_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_events_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    op.create_index(op.f("ix_case_events_case_id_id"), "case_events", ["case_id", "id"])

    op.create_table(
        "contacts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("template", sa.String(length=100), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_contacts_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_contacts_idempotency_key")),
    )
    op.create_index(op.f("ix_contacts_case_id"), "contacts", ["case_id"])

    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'dead')", name=op.f("ck_outbox_status")),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_outbox_case_id_cases"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_dedupe_key")),
    )
    op.create_index(op.f("ix_outbox_case_id"), "outbox", ["case_id"])
    op.create_index(op.f("ix_outbox_status_next_attempt_at"), "outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_status_next_attempt_at"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_case_id"), table_name="outbox")

    op.drop_table("outbox")
    op.drop_index(op.f("ix_contacts_case_id"), table_name="contacts")

    op.drop_table("contacts")
    op.drop_index(op.f("ix_case_events_case_id_id"), table_name="case_events")

    op.drop_table("case_events")
    op.drop_index(op.f("ix_cases_team_key_state"), table_name="cases")
    op.drop_index(op.f("ix_cases_state_resolve_due_at"), table_name="cases")
    op.drop_index(op.f("ix_cases_state_ack_due_at"), table_name="cases")
    op.drop_index(op.f("ix_cases_customer_id"), table_name="cases")

    op.drop_table("cases")
    op.drop_index(op.f("ix_feedback_touchpoint_key_received_at"), table_name="feedback")
    op.drop_index(op.f("ix_feedback_team_key_received_at"), table_name="feedback")
    op.drop_index(op.f("ix_feedback_received_at"), table_name="feedback")
    op.drop_index(op.f("ix_feedback_customer_id_received_at"), table_name="feedback")

    op.drop_table("feedback")
    op.drop_index(op.f("ix_touchpoints_team_key"), table_name="touchpoints")

    op.drop_table("touchpoints")
    op.drop_table("team_destinations")
    op.drop_table("teams")
    op.drop_table("digest_runs")
    op.drop_table("customers")
