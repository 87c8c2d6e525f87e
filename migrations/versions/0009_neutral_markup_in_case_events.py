"""Case event details written in Slack mrkdwn become the core's neutral markup (cxbot/markup.py).

Written by hand. Until now the core wrote `<@U…>` mentions, `<#C…>` channels and `:warning:` /
`:rotating_light:` marks into case_events.detail (and the `notified` list of escalation events);
these are rendered again on every card refresh, now by each platform from neutral tokens. Every
mention the old thread lines showed live becomes a person (or channel) token, so timelines read as
before; any other `<…>` stays plain text, which every platform now escapes. The token format is
spelled out here rather than imported, so this migration keeps meaning what it meant.

Downgrade turns the tokens back into Slack mrkdwn.

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-02 14:40:00
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None

OPEN, SEP, CLOSE = "\ue000", "\ue001", "\ue002"
SLACK_PERSON = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
SLACK_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|[^>]*)?>")
SLACK_ALERTS = {":warning:": "warning", ":rotating_light:": "urgent", ":white_check_mark:": "ok"}
TOKEN = re.compile(f"{OPEN}(person|channel|alert){SEP}([^{OPEN}{SEP}{CLOSE}]*){CLOSE}")

events = sa.table(
    "case_events", sa.column("id", sa.BigInteger), sa.column("detail", sa.Text), sa.column("data", sa.JSON)
)


def to_tokens(text: str) -> str:
    text = SLACK_PERSON.sub(lambda m: f"{OPEN}person{SEP}{m.group(1)}{CLOSE}", text)
    text = SLACK_CHANNEL.sub(lambda m: f"{OPEN}channel{SEP}{m.group(1)}{CLOSE}", text)
    for code, level in SLACK_ALERTS.items():
        text = text.replace(code, f"{OPEN}alert{SEP}{level}{CLOSE}")
    return text


def to_slack(text: str) -> str:
    alerts = {level: code for code, level in SLACK_ALERTS.items()}

    def one(match: re.Match[str]) -> str:
        kind, value = match.group(1), match.group(2)
        if kind == "alert":
            return alerts.get(value, ":warning:")
        return f"<@{value}>" if kind == "person" else f"<#{value}>"

    return TOKEN.sub(one, text)


def rewrite(convert: Callable[[str], str], candidates: sa.ColumnElement[bool]) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(events.c.id, events.c.detail, events.c.data).where(candidates))
    for ident, detail, data in rows.fetchall():
        values: dict[str, Any] = {}
        if detail and convert(detail) != detail:
            values["detail"] = convert(detail)
        if isinstance(data, dict) and isinstance(data.get("notified"), list):
            notified = [convert(item) if isinstance(item, str) else item for item in data["notified"]]
            if notified != data["notified"]:
                values["data"] = {**data, "notified": notified}
        if values:
            connection.execute(sa.update(events).where(events.c.id == ident).values(**values))


def upgrade() -> None:
    rewrite(
        to_tokens,
        events.c.detail.contains("<@") | events.c.detail.contains("<#") | events.c.detail.contains(":"),
    )


def downgrade() -> None:
    rewrite(to_slack, events.c.detail.contains(OPEN))
