"""The bot's own token for the Bot Connector: OAuth client credentials of the single-tenant app.

`POST {TEAMS_LOGIN_URL}/{TEAMS_TENANT_ID}/oauth2/v2.0/token` with the app id and password, scope
`https://api.botframework.com/.default`. The token is cached until shortly before it expires, and
only one refresh is in flight at a time, so a burst of outbox deliveries asks once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from handlers.teams.errors import TeamsPermanentError, TeamsServerError, from_response

SCOPE = "https://api.botframework.com/.default"
#: Refresh this long before the token's end, so no call carries a token that expires on the way.
REFRESH_MARGIN_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float


class TokenProvider:
    """Client-credentials tokens, cached; `invalidate` after a 401 so the next call asks again."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        login_url: str,
        tenant_id: str,
        app_id: str,
        password: str,
        margin: float = REFRESH_MARGIN_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.url = f"{login_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self.app_id = app_id
        self.password = password
        self.margin = margin
        self.monotonic = monotonic
        self.current: AccessToken | None = None
        self.lock = asyncio.Lock()

    def fresh(self) -> str | None:
        current = self.current
        if current is not None and self.monotonic() < current.expires_at - self.margin:
            return current.value
        return None

    async def token(self) -> str:
        """A valid token, fetched only when the cached one is (nearly) expired."""
        value = self.fresh()
        if value is not None:
            return value
        async with self.lock:
            value = self.fresh()
            if value is None:
                self.current = await self.fetch()
                value = self.current.value
        return value

    def invalidate(self) -> None:
        self.current = None

    async def fetch(self) -> AccessToken:
        started = self.monotonic()
        try:
            response = await self.http.post(
                self.url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.app_id,
                    "client_secret": self.password,
                    "scope": SCOPE,
                },
            )
        except httpx.HTTPError as exc:
            raise TeamsServerError(
                f"the Microsoft login endpoint did not answer ({type(exc).__name__})"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            error = from_response(
                status=response.status_code, body=body, retry_after=response.headers.get("retry-after")
            )
            if isinstance(error, TeamsPermanentError):
                # A wrong secret, tenant or app id (AADSTS…): only an operator can fix it.
                code = body.get("error") if isinstance(body, dict) else None
                raise TeamsPermanentError(
                    str(code or error.code), "Microsoft refused the bot's credentials", scope="credentials"
                )
            raise error
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise TeamsServerError("the Microsoft login endpoint answered no access_token")
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        return AccessToken(body["access_token"], started + lifetime)
