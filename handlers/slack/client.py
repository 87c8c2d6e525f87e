"""The one wrapper around slack_sdk's AsyncWebClient: every Web API call the bot makes goes here.

Calls return plain dicts; failures raise the typed exceptions of :mod:`handlers.slack.errors`, so no
caller ever inspects a SlackApiError or an aiohttp exception.

Retries: what the outbox delivers (cards, thread lines, digests) is retried by the outbox alone, with
backoff and Retry-After, so its client retries nothing. Calls made while a user waits (opening and
updating modals, App Home) cannot wait for the outbox: their client retries once, at once, on a
dropped connection or a 500/503, and once on a 429 whose Retry-After is short enough to still answer
in time (a modal's trigger_id lives 3 seconds).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient, WebhookResponse

from handlers.slack.blocks import outgoing
from handlers.slack.errors import SlackServerError, from_response

DEFAULT_TIMEOUT_SECONDS = 10
#: The longest Retry-After an interactive call waits for before retrying once.
MAX_INTERACTIVE_WAIT_SECONDS = 1


class ShortRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """Retry a 429 once, only when Slack asks for a wait short enough for a user who is waiting."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        values = {k.lower(): v for k, v in response.headers.items()}.get("retry-after") or ["1"]
        try:
            return int(values[0]) <= MAX_INTERACTIVE_WAIT_SECONDS
        except ValueError:
            return False


def interactive_retry_handlers() -> list[AsyncRetryHandler]:
    """One quick retry each for a dropped connection, a 500/503 and a short rate limit."""
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=1),
        AsyncServerErrorRetryHandler(max_retry_count=1),
        ShortRateLimitRetryHandler(max_retry_count=1),
    ]


def build_web_client(
    token: str, *, base_url: str, timeout: int = DEFAULT_TIMEOUT_SECONDS, interactive: bool = False
) -> AsyncWebClient:
    """An AsyncWebClient: without retries for the outbox (it retries itself), with quick ones for the
    calls a user waits on."""
    handlers = interactive_retry_handlers() if interactive else []
    return AsyncWebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=handlers)


class SlackClient:
    """Typed-error access to the few Web API methods cxbot uses.

    Every call goes through one aiohttp session, made in the running loop on first use, so posts
    reuse keep-alive connections: without one, slack_sdk opens a session and a TCP connection per
    call (measured: a connect and a cookie jar per outbox post, docs/performance.md). `aclose` closes
    it (the runtime's closers call it on shutdown).
    """

    def __init__(self, web: AsyncWebClient) -> None:
        self.web = web

    def _pooled(self) -> aiohttp.ClientSession:
        session = self.web.session
        if session is None or session.closed:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.web.timeout))
            self.web.session = session
        return session

    async def respond(self, response_url: str, message: dict[str, Any]) -> WebhookResponse:
        """Post `message` to a command's response_url through the same keep-alive session."""
        webhook = AsyncWebhookClient(url=response_url, session=self._pooled(), timeout=self.web.timeout)
        return await webhook.send_dict(outgoing(message))

    async def aclose(self) -> None:
        session, self.web.session = self.web.session, None
        if session is not None and not session.closed:
            await session.close()

    async def call(self, method: str, **arguments: Any) -> dict[str, Any]:
        """Call `method` with a JSON body; return Slack's answer or raise a typed error.

        Every payload is defused here (:func:`handlers.slack.blocks.outgoing`): no call can carry a
        live `<!channel>` or link, whichever renderer built it."""
        return await self._api(method, json=outgoing(arguments))

    async def read(self, method: str, **arguments: Any) -> dict[str, Any]:
        """Call a reading method (`conversations.history`...) form-encoded, as Slack wants those:
        its JSON bodies are for the methods that write."""
        form = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in arguments.items()}
        return await self._api(method, data=form)

    async def _api(self, method: str, **body: Any) -> dict[str, Any]:
        self._pooled()
        try:
            response = await self.web.api_call(method, **body)
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
        self._pooled()
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


class PooledRespond:
    """Bolt's `respond` for one response_url, sent through a SlackClient's keep-alive session: Bolt's
    own opens an aiohttp session and a TCP connection for every reply."""

    def __init__(self, response_url: str, client: SlackClient) -> None:
        self.response_url = response_url
        self.client = client

    async def __call__(self, **message: Any) -> WebhookResponse:
        return await self.client.respond(
            self.response_url, {key: value for key, value in message.items() if value is not None}
        )
