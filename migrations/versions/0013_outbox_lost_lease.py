"""The outbox remembers a lease that ran out on an unrecorded delivery (issue #15).

Written by hand to match cxbot.models.OutboxMessage.lost_lease_until: when a worker stops between a
post and its record (a kill, a crash), the row stays `sending` until its lease runs out and another
worker claims it. That claim copies the old lease's end here, so the next attempt knows an earlier
one may have been delivered and looks for it on the platform before posting again (Slack: the
channel's history, by the message's metadata). Cleared when the row is recorded sent or dead.
Nullable and empty for existing rows: a row that is `sending` during the upgrade is claimed by the
new code, which fills it in then.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 18:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("lost_lease_until", TIMESTAMP, nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "lost_lease_until")
