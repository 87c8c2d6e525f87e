"""The one wrapper around slack_sdk's AsyncWebClient: every Web API call the bot makes goes here.

Calls return plain dicts; failures raise the typed exceptions of :mod:`handlers.slack.errors`, so no
caller ever inspects a SlackApiError or an aiohttp exception. Retries are not done here: the outbox
owns retrying (with backoff and Retry-After) so that there is exactly one retry policy.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.slack.errors import SlackServerError, from_response

DEFAULT_TIMEOUT_SECONDS = 10


def build_web_client(token: str, *, base_url: str, timeout: int = DEFAULT_TIMEOUT_SECONDS) -> AsyncWebClient:
    """An AsyncWebClient with slack_sdk's own retries off: the outbox decides when to try again."""
    return AsyncWebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])


class SlackClient:
    """Typed-error access to the few Web API methods cxbot uses."""

    def __init__(self, web: AsyncWebClient) -> None:
        self.web = web

    async def call(self, method: str, **arguments: Any) -> dict[str, Any]:
        """Call `method` with a JSON body; return Slack's answer or raise a typed error."""
        try:
            response = await self.web.api_call(method, json=arguments)
        except SlackApiError as error:
            answer = error.response
            data = answer.data if isinstance(answer.data, dict) else {}
            headers = {k.lower(): v for k, v in (answer.headers or {}).items()}
            retry_after = headers.get("retry-after")
            if isinstance(retry_after, list):
                retry_after = retry_after[0] if retry_after else None
            raise from_response(
                status=answer.status_code, error=data.get("error"), retry_after=retry_after
            ) from None
        except (TimeoutError, aiohttp.ClientError) as error:
            raise SlackServerError(f"Slack did not answer: {type(error).__name__}: {error}") from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def post_message(self, *, channel: str, text: str, **extra: Any) -> dict[str, Any]:
        return await self.call("chat.postMessage", channel=channel, text=text, **extra)

    async def update_message(self, *, channel: str, ts: str, text: str, **extra: Any) -> dict[str, Any]:
        return await self.call("chat.update", channel=channel, ts=ts, text=text, **extra)

    async def publish_home(self, *, user_id: str, view: dict[str, Any]) -> dict[str, Any]:
        return await self.call("views.publish", user_id=user_id, view=view)

    async def open_view(self, *, trigger_id: str, view: dict[str, Any]) -> dict[str, Any]:
        return await self.call("views.open", trigger_id=trigger_id, view=view)

    async def upload_file(
        self, *, channel: str, filename: str, content: bytes, title: str, thread_ts: str | None = None
    ) -> dict[str, Any]:
        """Upload through `files_upload_v2` (get an upload URL, send the bytes, complete into the channel)."""
        try:
            response = await self.web.files_upload_v2(
                channel=channel, filename=filename, content=content, title=title, thread_ts=thread_ts
            )
        except SlackApiError as error:
            data = error.response.data if isinstance(error.response.data, dict) else {}
            raise from_response(
                status=error.response.status_code, error=data.get("error"), retry_after=None
            ) from None
        except (TimeoutError, aiohttp.ClientError, SlackRequestError) as error:
            raise SlackServerError(f"file upload failed: {type(error).__name__}: {error}") from None
        return dict(response.data) if isinstance(response.data, dict) else {}
