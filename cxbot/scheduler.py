"""The jobs of `serve`: every minute, due digests (cxbot.digest.posting) and SLA steps
(cxbot.cases.escalation); once a day per provider that asks for it, `sync` (cxbot.ingest.sync).

APScheduler (3.x, asyncio) only calls the two ticks every minute; each tick is safe to run on every
replica, so the job itself holds no state.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from cxbot.cases.escalation import tick as escalation_tick
from cxbot.digest.posting import instance_name, tick
from cxbot.ingest.sync import daily_syncs, run_daily_sync
from cxbot.runtime import Runtime

log = logging.getLogger(__name__)


class Scheduler:
    """Runs `tick` every minute under APScheduler (3.x, asyncio); started and stopped by `serve`."""

    def __init__(self, runtime: Runtime, *, claimed_by: str | None = None) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.runtime = runtime
        self.claimed_by = claimed_by or instance_name()
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    async def _tick(self) -> None:
        outcomes = await tick(self.runtime, claimed_by=self.claimed_by)
        for outcome in outcomes:
            log.info("digest %s %s: %s", outcome.scope, outcome.local_date, outcome.status)
        await escalation_tick(self.runtime)  # SLA warnings and escalations (design.md §6)

    def start(self) -> None:
        """Start ticking at the top of every minute, and once right away (a bot that was down catches up)."""
        from apscheduler.triggers.cron import CronTrigger

        self._scheduler.add_job(
            self._tick,
            CronTrigger(second=0, timezone=UTC),
            id="digests",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=30,
            next_run_time=datetime.now(UTC) + timedelta(seconds=1),
        )
        for job in daily_syncs(self.runtime.config):
            # Each replica pulls; the ingest is idempotent, so the second pull only finds duplicates.
            self._scheduler.add_job(
                run_daily_sync,
                CronTrigger(hour=job.hour, minute=job.minute, timezone=UTC),
                args=(self.runtime, job),
                id=f"sync-{job.provider}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
