"""The Bot Connector REST client: the four calls cxbot makes, with httpx (no Microsoft SDK).

Routes of the Connector API v3 (`tests/fixtures/teams/ConnectorAPI.swagger.json`), each under the
conversation's `serviceUrl`:

- `POST v3/conversations`: a new conversation (a new thread in a channel, or a 1:1 chat);
- `POST v3/conversations/{conversationId}/activities`: a message in a conversation;
- `POST v3/conversations/{conversationId}/activities/{activityId}`: a reply to an activity;
- `PUT v3/conversations/{conversationId}/activities/{activityId}`: update a posted activity.

Every failure is one of `handlers.teams.errors`: transient (429 with Retry-After, 412, 5xx, timeouts)
or permanent with a scope. A 401 drops the cached token and tries once more with a new one, since a
token can be revoked before its expiry.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from handlers.teams.errors import TeamsPermanentError, TeamsServerError, from_response
from handlers.teams.tokens import TokenProvider


def conversation_path(conversation_id: str, *rest: str) -> str:
    """`v3/conversations/{id}/…` with every id escaped (Teams ids hold `:`, `;`, `@` and `=`)."""
    parts = ["v3", "conversations", quote(conversation_id, safe=""), *(quote(p, safe="") for p in rest)]
    return "/".join(parts)


def base(service_url: str) -> str:
    """The service URL with exactly one trailing slash (Teams sends it with one; configs may not)."""
    return service_url.rstrip("/") + "/"


class BotConnector:
    """Calls to `{serviceUrl}v3/conversations…` with the bot's client-credentials token."""

    def __init__(self, http: httpx.AsyncClient, tokens: TokenProvider) -> None:
        self.http = http
        self.tokens = tokens

    async def create_conversation(self, service_url: str, parameters: dict[str, Any]) -> dict[str, Any]:
        """`ConversationParameters` → `ConversationResourceResponse` (`id`, `activityId` when an
        initial activity was given: the new channel thread's first message)."""
        return await self.call("POST", service_url, "v3/conversations", parameters)

    async def send_to_conversation(
        self, service_url: str, conversation_id: str, activity: dict[str, Any]
    ) -> dict[str, Any]:
        """A message at the end of a conversation (or thread); answers `{id}` of the new activity."""
        return await self.call(
            "POST", service_url, conversation_path(conversation_id, "activities"), activity
        )

    async def reply_to_activity(
        self, service_url: str, conversation_id: str, activity_id: str, activity: dict[str, Any]
    ) -> dict[str, Any]:
        """A reply to one activity (in a channel: in its thread)."""
        path = conversation_path(conversation_id, "activities", activity_id)
        return await self.call("POST", service_url, path, {**activity, "replyToId": activity_id})

    async def update_activity(
        self, service_url: str, conversation_id: str, activity_id: str, activity: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace a posted activity (a card refreshed in place); a gone one is TeamsActivityNotFound."""
        path = conversation_path(conversation_id, "activities", activity_id)
        return await self.call("PUT", service_url, path, {**activity, "id": activity_id}, updating=True)

    async def call(
        self, method: str, service_url: str, path: str, body: dict[str, Any], *, updating: bool = False
    ) -> dict[str, Any]:
        url = base(service_url) + path
        response = await self.send(method, url, body)
        if response.status_code == 401:
            self.tokens.invalidate()
            response = await self.send(method, url, body)
        return answer(response, updating=updating)

    async def send(self, method: str, url: str, body: dict[str, Any]) -> httpx.Response:
        token = await self.tokens.token()
        try:
            return await self.http.request(
                method, url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TimeoutException:
            raise TeamsServerError(f"the Bot Connector timed out on {method} {url}") from None
        except httpx.HTTPError as exc:
            raise TeamsServerError(f"the Bot Connector did not answer ({type(exc).__name__})") from None


def answer(response: httpx.Response, *, updating: bool) -> dict[str, Any]:
    """The JSON of a 2xx answer (`{}` for an empty one), or the typed error of any other."""
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = None
    if 200 <= response.status_code < 300:
        return body if isinstance(body, dict) else {}
    error = from_response(
        status=response.status_code,
        body=body,
        retry_after=response.headers.get("retry-after"),
        updating=updating,
    )
    if isinstance(error, TeamsPermanentError) and isinstance(body, dict):
        detail = (body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) else None
        if isinstance(detail, str) and detail:
            error.args = (f"{error.args[0]}: {detail[:200]}",)
    raise error
