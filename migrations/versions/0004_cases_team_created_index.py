"""Index cases by (team_key, created_at) for the digest's case-health query.

Written by hand. The digest counts one team's cases opened in a window; without this index that
query reads every case of the team.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 00:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_cases_team_key_created_at"), "cases", ["team_key", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_cases_team_key_created_at"), table_name="cases")
