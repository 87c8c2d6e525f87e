"""SLA deadlines of a case from its team's policy (design.md §6)."""

from __future__ import annotations

from datetime import datetime

from cxbot.config import Config


def deadlines(config: Config, *, team: str, start: datetime) -> tuple[datetime, datetime]:
    """When the case must be acknowledged and resolved, counted from `start`."""
    policy = config.sla_policies[config.team(team).sla_policy]
    return start + policy.clock("acknowledge"), start + policy.clock("resolve")
