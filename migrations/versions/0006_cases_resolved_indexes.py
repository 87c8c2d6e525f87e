"""Index cases by (team_key, resolved_at) and (touchpoint_key, resolved_at) for the case KPIs.

Written by hand. First contact resolution and time to resolve (cxbot/kpis.py) read the cases of a
team or touchpoint resolved in a window; without these indexes that query reads the whole case
history of the team.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 01:55:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_cases_team_key_resolved_at"), "cases", ["team_key", "resolved_at"])
    op.create_index(op.f("ix_cases_touchpoint_key_resolved_at"), "cases", ["touchpoint_key", "resolved_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_cases_touchpoint_key_resolved_at"), table_name="cases")
    op.drop_index(op.f("ix_cases_team_key_resolved_at"), table_name="cases")
