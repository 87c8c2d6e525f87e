"""Keeps the teams and touchpoints tables in step with `cxbot.yaml`.

Rows are only added or renamed, never deleted: old feedback and cases keep pointing at a team or
touchpoint that the configuration no longer lists.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.config import Config
from cxbot.db import insert_for
from cxbot.models import Team, TeamDestination, Touchpoint


async def sync_directory(session: AsyncSession, *, config: Config) -> None:
    """Upsert teams and touchpoints, and seed every platform's channel the config names."""
    for team in config.teams:
        stmt = insert_for(session, Team).values(key=team.key, name=team.name, timezone=team.timezone)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Team.key], set_={"name": team.name, "timezone": team.timezone}
            )
        )
    for tp in config.touchpoints:
        name = tp.name or tp.key
        stmt = insert_for(session, Touchpoint).values(key=tp.key, name=name, team_key=tp.team)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Touchpoint.key], set_={"name": name, "team_key": tp.team}
            )
        )
    linked = set((await session.execute(select(TeamDestination.team_key, TeamDestination.platform))).all())
    for team in config.teams:
        for platform, channel in team.destinations().items():
            # A channel bound with `/cx team link` wins over the config's default.
            if (team.key, platform) not in linked:
                session.add(TeamDestination(team_key=team.key, platform=platform, address=channel))
    await session.flush()
