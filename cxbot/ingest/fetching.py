"""Fetching a response from a provider's API: the errors the fetch queue understands, one GET helper.

Kept apart from the queue (cxbot.ingest.fetch_queue, which needs the database and the ingest) so the
provider modules that fetch import nothing but this, and no import cycle runs through the config.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

__all__ = ["FetchError", "FetchSkip", "Fetcher", "get_json", "request_json", "seconds_to_wait"]

USER_AGENT = "cxbot (+https://github.com/cxbot)"


def seconds_to_wait(value: str | None) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date (how far it is from now)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when.replace(tzinfo=when.tzinfo or UTC) - datetime.now(UTC)).total_seconds())


class FetchError(Exception):
    """Worth retrying: the provider was down, slow or rate limiting (`retry_after` in seconds)."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class FetchSkip(Exception):
    """The response was fetched but holds nothing to store under the configured mapping (recorded)."""


#: (job payload, provider options, environment, HTTP client) → feedback items for validate_item.
Fetcher = Callable[
    [Mapping[str, Any], Any, Mapping[str, str], httpx.AsyncClient], Awaitable[list[dict[str, Any]]]
]


async def get_json(http: httpx.AsyncClient, url: str, *, headers: Mapping[str, str], what: str) -> Any:
    """One GET; timeouts, network errors, 429 and 5xx are retried, other 4xx give up."""
    return await request_json(http, "GET", url, headers=headers, what=what)


async def request_json(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    what: str,
    body: Any = None,
) -> Any:
    """One request answered with JSON; failures become FetchError (transient unless a plain 4xx)."""
    try:
        response = await http.request(method, url, headers={"User-Agent": USER_AGENT, **headers}, json=body)
    except httpx.TimeoutException as error:
        raise FetchError(f"{what} timed out ({type(error).__name__})") from None
    except httpx.TransportError as error:
        raise FetchError(f"{what} unreachable ({type(error).__name__})") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise FetchError(
            f"{what}: {response.status_code}",
            retry_after=seconds_to_wait(response.headers.get("retry-after")),
        )
    if response.status_code >= 400:
        raise FetchError(f"{what}: {response.status_code} {response.text[:200]}".strip(), permanent=True)
    try:
        return response.json()
    except ValueError:
        raise FetchError(f"{what}: answer is not JSON", permanent=True) from None
