"""`python bot.py sync <provider> --since 7d`: pull recent ratings over the provider's API, ingest the gap.

Webhooks get lost (an outage on either side, a subscription switched off for a day). Every pulled
record is mapped by the same functions as its webhook and keyed the same way, so what the webhooks
already stored comes back `duplicate`, a changed rating `updated`, and only the missing ones
`created`: running it again is a no-op.

Per provider (the record shapes are each provider's documented list API):

* Zendesk: `GET {api_url}/api/v2/satisfaction_ratings.json?score=received&start_time=<unix>`, Basic
  auth from `ZENDESK_API_TOKEN` (`agent@example.com/token:<token>`), pages by `links.next` while
  `meta.has_more`.
* Intercom: `POST {api_url}/conversations/search` for conversations updated since, Bearer
  `INTERCOM_ACCESS_TOKEN`, pages by `pages.next.starting_after`; rated ones only.
* SurveyMonkey: `GET {api_url}/v3/surveys/{id}/responses/bulk?start_modified_at=…` for each survey
  in `surveys`, Bearer `SURVEYMONKEY_ACCESS_TOKEN`, pages by `links.next`.
* Qualtrics: the response export for each survey in `surveys` (`POST …/export-responses` with
  `startDate` and `compress: false`, poll `…/export-responses/{progressId}` until `complete`, then
  `GET …/export-responses/{fileId}/file`, a JSON `responses[]`), `X-API-TOKEN`.

A 429 (after its Retry-After), a 5xx or a timeout is retried in place with backoff; after
`attempts` failures of one page the sync stops with the reason, keeping what it stored.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel

from cxbot.db import transaction
from cxbot.ingest.fetching import FetchError, FetchSkip, request_json
from cxbot.ingest.intercom import IntercomOptions, conversation_items
from cxbot.ingest.providers import PROVIDERS
from cxbot.ingest.qualtrics import QualtricsOptions
from cxbot.ingest.qualtrics import response_items as qualtrics_items
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.ingest.surveymonkey import SurveyMonkeyOptions, response_items
from cxbot.ingest.webhook_base import DailySyncOptions, PayloadError
from cxbot.ingest.zendesk import ZendeskOptions, rating_items

if TYPE_CHECKING:  # runtime → ingest: only the types are needed here
    from cxbot.config import Config
    from cxbot.runtime import Runtime

__all__ = [
    "SYNCABLE",
    "DailySync",
    "SyncError",
    "SyncReport",
    "daily_syncs",
    "run_daily_sync",
    "sync_provider",
]

log = logging.getLogger(__name__)


class SyncError(Exception):
    """The pull cannot run or had to stop (message says why; safe for the operator)."""


@dataclass(slots=True)
class SyncReport:
    """What one sync did: per ingest status, plus records skipped by the mapping."""

    statuses: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)
    pages: int = 0
    retries: int = 0

    def summary(self) -> str:
        parts = [f"{self.statuses[s]} {s}" for s in ("created", "updated", "duplicate", "error")]
        return f"{', '.join(parts)}, {len(self.skipped)} skipped ({self.pages} pages, {self.retries} retries)"


#: One page of records, already mapped to items (each inner list is one record's items).
Page = list[list[dict[str, Any]]]
Requester = Callable[[str, str, Any], Awaitable[Any]]


def _secret(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise SyncError(f"{name} is not set, so the pull cannot authenticate")
    return value


def _mapped(convert: Callable[[], list[dict[str, Any]]], skipped: list[str]) -> list[dict[str, Any]]:
    """One record's items; a record the mapping cannot use is noted and skipped, never fatal."""
    try:
        return convert()
    except (FetchSkip, PayloadError) as skip:
        skipped.append(str(skip))
        return []


async def _zendesk(
    options: ZendeskOptions, env: Mapping[str, str], call: Requester, since: datetime, skipped: list[str]
) -> AsyncIterator[Page]:
    if not options.api_url:
        raise SyncError("webhooks.zendesk.api_url is not set (https://<subdomain>.zendesk.com)")
    query = urlencode({"score": "received", "start_time": int(since.timestamp()), "page[size]": 100})
    url: str | None = f"{options.api_url.rstrip('/')}/api/v2/satisfaction_ratings.json?{query}"
    while url:
        answer = await call("GET", url, None)
        records = answer.get("satisfaction_ratings") or []
        yield [_mapped(lambda r=record: rating_items(r, options), skipped) for record in records]
        url = (answer.get("links") or {}).get("next") if (answer.get("meta") or {}).get("has_more") else None


async def _intercom(
    options: IntercomOptions, env: Mapping[str, str], call: Requester, since: datetime, skipped: list[str]
) -> AsyncIterator[Page]:
    if not options.app_id:
        raise SyncError("webhooks.intercom.app_id is not set (the workspace's app id keys its ratings)")
    app_id = options.app_id
    cursor: str | None = None
    while True:
        pagination: dict[str, Any] = {"per_page": 150, **({"starting_after": cursor} if cursor else {})}
        query = {"field": "updated_at", "operator": ">", "value": int(since.timestamp())}
        answer = await call(
            "POST",
            f"{options.api_url.rstrip('/')}/conversations/search",
            {"query": query, "pagination": pagination},
        )
        rated = [
            c
            for c in answer.get("conversations") or []
            if isinstance(c, dict) and c.get("conversation_rating")
        ]
        yield [
            _mapped(lambda c=c: conversation_items(c, app_id=app_id, options=options), skipped) for c in rated
        ]
        cursor = ((answer.get("pages") or {}).get("next") or {}).get("starting_after")
        if not cursor:
            return


async def _surveymonkey(
    options: SurveyMonkeyOptions, env: Mapping[str, str], call: Requester, since: datetime, skipped: list[str]
) -> AsyncIterator[Page]:
    if not options.surveys:
        raise SyncError("webhooks.surveymonkey.surveys lists no survey ids to pull")
    start = since.strftime("%Y-%m-%dT%H:%M:%S")
    for survey in options.surveys:
        query = urlencode({"start_modified_at": start, "per_page": 100, "sort_by": "date_modified"})
        url: str | None = f"{options.api_url.rstrip('/')}/v3/surveys/{survey}/responses/bulk?{query}"
        while url:
            answer = await call("GET", url, None)
            yield [
                _mapped(lambda r=record: response_items(r, options), skipped)
                for record in answer.get("data") or []
            ]
            url = (answer.get("links") or {}).get("next")


#: How many times the Qualtrics export is polled (with `wait` between) before the sync gives up.
EXPORT_POLLS = 60


async def _qualtrics(
    options: QualtricsOptions,
    env: Mapping[str, str],
    call: Requester,
    since: datetime,
    skipped: list[str],
    wait: Callable[[float], Awaitable[None]],
) -> AsyncIterator[Page]:
    if not options.surveys:
        raise SyncError("webhooks.qualtrics.surveys lists no survey ids to pull")
    start = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    for survey in options.surveys:
        base = f"{options.api_url.rstrip('/')}/API/v3/surveys/{survey}/export-responses"
        started = await call("POST", base, {"format": "json", "startDate": start, "compress": False})
        progress_id = (started.get("result") or {}).get("progressId")
        if not progress_id:
            raise SyncError(f"qualtrics export of {survey} did not start: {started.get('meta')}")
        for _ in range(EXPORT_POLLS):
            state = (await call("GET", f"{base}/{progress_id}", None)).get("result") or {}
            if state.get("status") == "complete":
                break
            if state.get("status") == "failed":
                raise SyncError(f"qualtrics export of {survey} failed")
            await wait(2.0)
        else:
            raise SyncError(f"qualtrics export of {survey} did not finish after {EXPORT_POLLS} polls")
        exported = await call("GET", f"{base}/{state['fileId']}/file", None)
        yield [
            _mapped(lambda r=record: qualtrics_items(r, options), skipped)
            for record in exported.get("responses") or []
        ]


def _auth(options: BaseModel, env: Mapping[str, str]) -> dict[str, str]:
    """Each API's own credentials header, from the variable the section names."""
    if isinstance(options, ZendeskOptions):
        credentials = _secret(env, options.api_token_env)
        return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
    if isinstance(options, QualtricsOptions):
        return {"X-API-TOKEN": _secret(env, options.api_token_env)}
    if isinstance(options, SurveyMonkeyOptions):
        return {"Authorization": f"Bearer {_secret(env, options.access_token_env)}"}
    if isinstance(options, IntercomOptions):
        return {"Authorization": f"Bearer {_secret(env, options.api_token_env)}", "Intercom-Version": "2.11"}
    raise SyncError(f"no credentials known for {type(options).__name__}")


#: Provider → its pull.
SYNCABLE: dict[str, Callable[..., AsyncIterator[Page]]] = {
    "zendesk": _zendesk,
    "intercom": _intercom,
    "surveymonkey": _surveymonkey,
    "qualtrics": _qualtrics,
}


async def sync_provider(
    runtime: Runtime,
    name: str,
    *,
    since: timedelta,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    attempts: int = 5,
    wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
    progress: Callable[[int], None] | None = None,
) -> SyncReport:
    """Pull `name`'s ratings of the last `since` and ingest them; `progress(n)` after each page."""
    pull = SYNCABLE.get(name)
    if pull is None:
        raise SyncError(f"cannot sync {name!r} (can: {', '.join(sorted(SYNCABLE))})")
    provider = PROVIDERS[name]
    options = provider.options_model.model_validate(runtime.config.webhooks.get(name) or {})
    env = env if env is not None else os.environ
    headers = _auth(options, env)
    report = SyncReport()

    async with httpx.AsyncClient(timeout=timeout) as http:

        async def call(method: str, url: str, body: Any) -> Any:
            for attempt in range(1, attempts + 1):
                try:
                    answer = await request_json(http, method, url, headers=headers, what=name, body=body)
                except FetchError as error:
                    if error.permanent or attempt == attempts:
                        raise SyncError(f"{name} pull stopped: {error}") from None
                    report.retries += 1
                    await wait(error.retry_after if error.retry_after is not None else 2.0**attempt)
                    continue
                if not isinstance(answer, dict):
                    raise SyncError(
                        f"{name} pull stopped: the API answered {type(answer).__name__}, not an object"
                    )
                return answer
            raise AssertionError("unreachable")

        now = runtime.clock()
        extra = (wait,) if name == "qualtrics" else ()
        async for page in pull(options, env, call, now - since, report.skipped, *extra):
            report.pages += 1
            items = [item for record in page for item in record]
            if items:
                async with transaction(runtime.sessions) as session:
                    results = await ingest_items(
                        session, ingestor_for(runtime.config), items, now=now, default_source=name
                    )
                report.statuses.update(r.status for r in results)
            if progress is not None:
                progress(len(page))
    return report


@dataclass(frozen=True, slots=True)
class DailySync:
    """One provider's daily pull, from `sync_daily_at` / `sync_since` in its webhooks section."""

    provider: str
    hour: int
    minute: int
    since: timedelta


def daily_syncs(config: Config) -> list[DailySync]:
    """The daily pulls the configuration asks for (check-config validated the sections)."""
    out = []
    for name in sorted(SYNCABLE):
        if name not in config.webhooks:
            continue
        options = PROVIDERS[name].options_model.model_validate(config.webhooks[name] or {})
        if isinstance(options, DailySyncOptions) and options.sync_daily_at is not None:
            hour, minute = (int(part) for part in options.sync_daily_at.split(":"))
            out.append(DailySync(name, hour, minute, options.sync_window()))
    return out


async def run_daily_sync(runtime: Runtime, job: DailySync, **kwargs: Any) -> SyncReport | None:
    """The scheduler's daily pull: logged, never raised (a provider outage must not stop `serve`)."""
    try:
        report = await sync_provider(runtime, job.provider, since=job.since, **kwargs)
    except SyncError as error:
        log.warning("daily sync %s: %s", job.provider, error)
        return None
    log.info("daily sync %s: %s", job.provider, report.summary())
    return report
