"""The durable fetch queue: webhooks that carry only ids are answered at once and fetched later.

SurveyMonkey and Qualtrics tell us *that* a response arrived, not what it says. The webhook writes
one `provider_fetches` row per response (unique on `dedupe_key`, so a redelivery is one fetch) and
answers 202. :class:`FetchWorker` works the rows the way the outbox worker (cxbot.outbox.worker)
delivers messages:

1. **Claim** due rows in one short statement (`pending`, or `fetching` whose lease ran out after a
   crash), `FOR UPDATE SKIP LOCKED` on PostgreSQL so replicas never share a row.
2. **Fetch** from the provider's API with no transaction open.
3. **Record** in one transaction: the items ingested (idempotent on source + external id) and the row
   `done`; or `skipped` with the reason (the response does not answer the mapped question); or back
   to `pending` after a backoff that honours Retry-After (429, 5xx, timeouts); or `dead` after too
   many attempts or a permanent error (401, 404).

A crash between fetch and record fetches that row again after its lease; the ingest makes that
harmless, so each response lands exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.db import insert_for, transaction
from cxbot.ingest.fetching import Fetcher, FetchError, FetchSkip
from cxbot.ingest.providers import PROVIDERS
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.models import ProviderFetch
from cxbot.outbox.worker import RetryPolicy

if TYPE_CHECKING:  # runtime → ingest: only the types are needed here
    from cxbot.config import Config
    from cxbot.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = ["FetchSource", "FetchStats", "FetchWorker", "queue_fetches"]


async def queue_fetches(
    session: AsyncSession, provider: str, jobs: list[dict[str, Any]], *, now: datetime
) -> int:
    """Insert one row per job (each has a `key`); a job already queued is left alone. Returns new rows."""
    rows = [
        {
            "provider": provider,
            "dedupe_key": f"{provider}:{job['key']}"[:200],
            "payload": job,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for job in jobs
    ]
    if not rows:
        return 0
    result = await session.execute(
        insert_for(session, ProviderFetch.__table__)
        .on_conflict_do_nothing(index_elements=[ProviderFetch.dedupe_key])
        .returning(ProviderFetch.id),
        rows,
    )
    return len(result.all())


@dataclass(slots=True)
class FetchStats:
    """What one `run_once` did, for logs and tests."""

    claimed: int = 0
    done: int = 0
    skipped: int = 0
    retried: int = 0
    dead: int = 0


@dataclass(frozen=True, slots=True)
class FetchSource:
    """How to work one provider's rows: its fetcher and its validated options."""

    fetcher: Fetcher
    options: BaseModel


def fetch_sources(config: Config) -> dict[str, FetchSource]:
    """Every configured provider whose webhook needs a fetch (check-config validated the sections)."""
    sources: dict[str, FetchSource] = {}
    for name, section in config.webhooks.items():
        provider = PROVIDERS.get(name)
        if provider is not None and provider.fetcher is not None:
            options = provider.options_model.model_validate(section or {})
            sources[name] = FetchSource(provider.fetcher, options)
    return sources


class FetchWorker:
    """Fetches due rows through each provider's fetcher and ingests what comes back."""

    def __init__(
        self,
        runtime: Runtime,
        sources: Mapping[str, FetchSource],
        *,
        batch_size: int = 25,
        lease: timedelta = timedelta(minutes=2),
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.runtime = runtime
        self.sources = dict(sources)
        self.batch_size = batch_size
        self.lease = lease
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.env = env if env is not None else os.environ

    async def run_once(self, *, now: datetime | None = None) -> FetchStats:
        """Fetch everything due at `now` (one batch after another until none is due)."""
        now = now or self.runtime.clock()
        stats = FetchStats()
        if not self.sources:
            return stats
        claimed = await self._claim(now)
        if not claimed:
            # Nothing due (most rounds): no HTTP client, whose TLS context alone costs ~40 ms of CPU
            # (3% of a busy server's, profiled under the latency bench).
            return stats
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            while claimed:
                stats.claimed += len(claimed)
                for row in claimed:
                    await self._work(row, http, now, stats)
                claimed = await self._claim(now)
        return stats

    async def run_forever(self, stop: asyncio.Event, *, idle_seconds: float = 2.0) -> None:
        """The `serve` loop: a round whenever idle time passes, until `stop` is set."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # one bad round must not stop fetching for good
                log.exception("fetch round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=idle_seconds)

    async def _claim(self, now: datetime) -> list[ProviderFetch]:
        due = (
            select(ProviderFetch.id)
            .where(
                ProviderFetch.provider.in_(sorted(self.sources)),
                or_(ProviderFetch.status == "pending", ProviderFetch.status == "fetching"),
                ProviderFetch.next_attempt_at <= now,
            )
            .order_by(ProviderFetch.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True, of=ProviderFetch)
        )
        async with transaction(self.runtime.sessions) as session:
            rows = await session.execute(
                update(ProviderFetch)
                .where(ProviderFetch.id.in_(due.scalar_subquery()))
                .values(status="fetching", next_attempt_at=now + self.lease)
                .returning(ProviderFetch)
                .execution_options(synchronize_session=False)
            )
            return sorted(rows.scalars(), key=lambda row: row.id)

    async def _work(
        self, row: ProviderFetch, http: httpx.AsyncClient, now: datetime, stats: FetchStats
    ) -> None:
        source = self.sources[row.provider]
        attempt = row.attempts + 1
        values: dict[str, Any] = {"attempts": attempt}
        items: list[dict[str, Any]] = []
        try:
            items = await source.fetcher(row.payload, source.options, self.env, http)
        except FetchSkip as skip:
            values.update(status="skipped", last_error=str(skip), finished_at=now)
            stats.skipped += 1
        except FetchError as error:
            if error.permanent or attempt >= self.retry.max_attempts:
                values.update(status="dead", last_error=str(error), finished_at=now)
                stats.dead += 1
            else:
                delay = self.retry.delay(attempt, error.retry_after)
                values.update(status="pending", last_error=str(error), next_attempt_at=now + delay)
                stats.retried += 1
        except Exception as error:  # a bug or an unmapped failure: retry, loudly
            log.exception("fetch %s: unexpected failure", row.id)
            delay = self.retry.delay(attempt, None)
            values.update(
                status="pending", last_error=f"{type(error).__name__}: {error}", next_attempt_at=now + delay
            )
            stats.retried += 1
        else:
            values.update(status="done", last_error=None, finished_at=now)
        async with transaction(self.runtime.sessions) as session:
            if values["status"] == "done":
                results = await ingest_items(
                    session, ingestor_for(self.runtime.config), items, now=now, default_source=row.provider
                )
                errors = [r.reason for r in results if r.status == "error"]
                if errors or not results:
                    values.update(status="skipped", last_error="; ".join(errors) or "nothing to store")
                    stats.skipped += 1
                else:
                    values["feedback_id"] = results[0].feedback_id
                    stats.done += 1
                for result in results:
                    self.runtime.counters.inc("cxbot_feedback_items_total", status=result.status)
            await session.execute(update(ProviderFetch).where(ProviderFetch.id == row.id).values(**values))
        self.runtime.counters.inc(
            "cxbot_provider_fetches_total", provider=row.provider, status=values["status"]
        )
