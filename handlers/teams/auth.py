"""Inbound Bot Framework requests: the bearer JWT checked exactly as design.md §5 says.

Every `POST /api/messages` carries `Authorization: Bearer <JWT>` signed by the Bot Framework. It is
accepted only when it is RS256, signed by a key of the OpenID metadata's `jwks_uri` (cached; fetched
again when a token names an unknown `kid`, so Microsoft's key rotation needs no restart), issued by
`https://api.botframework.com`, meant for our app id, within its lifetime (5 minutes of clock skew),
and its `serviceurl` claim equals the activity's `serviceUrl` (so a token for one service URL cannot
make the bot send its own credentials to another). Anything else raises :class:`TeamsAuthError`,
which the endpoint answers with a 401 before touching anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

log = logging.getLogger("handlers.teams")

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
ALGORITHMS = ("RS256",)
#: Microsoft's documented clock skew for Bot Framework tokens.
LEEWAY_SECONDS = 300
#: An unknown `kid` refetches the keys, but not more often than this: tokens with made-up key ids
#: must not turn every request into a call to the identity platform.
MIN_REFETCH_SECONDS = 30.0


class TeamsAuthError(Exception):
    """The request is not from the Bot Framework for this bot; the message is the short reason."""

    status = 401


class KeysUnavailable(TeamsAuthError):
    """The signing keys could not be fetched: not the caller's fault, so Teams should retry."""

    status = 503


@dataclass(frozen=True, slots=True)
class SigningKey:
    key: Any
    endorsements: tuple[str, ...]


class KeySet:
    """The Bot Framework's signing keys by `kid`, from the OpenID metadata's `jwks_uri`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        metadata_url: str,
        *,
        min_refetch: float = MIN_REFETCH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.metadata_url = metadata_url
        self.min_refetch = min_refetch
        self.monotonic = monotonic
        self.keys: dict[str, SigningKey] = {}
        self.fetched_at: float | None = None
        #: The last fetch failed: an unknown key then means "cannot check", not "forged".
        self.unavailable = False
        self.lock = asyncio.Lock()

    async def key(self, kid: str) -> SigningKey:
        """The key for `kid`, refetching once when it is unknown (one fetch in flight at a time)."""
        found = self.keys.get(kid)
        if found is not None:
            return found
        async with self.lock:
            found = self.keys.get(kid)
            if found is None and self.may_refetch():
                await self.refresh()
                found = self.keys.get(kid)
        if found is None and self.unavailable:
            raise KeysUnavailable("the Bot Framework signing keys are unavailable")
        if found is None:
            raise TeamsAuthError("the token is signed with a key the Bot Framework does not publish")
        return found

    def may_refetch(self) -> bool:
        return self.fetched_at is None or self.monotonic() - self.fetched_at >= self.min_refetch

    async def refresh(self) -> None:
        self.unavailable = True
        try:
            metadata = await self.get_json(self.metadata_url)
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise KeysUnavailable("the OpenID metadata has no jwks_uri")
            jwks = await self.get_json(jwks_uri)
        finally:
            # A failed fetch also counts: a broken identity platform is not hammered per request.
            self.fetched_at = self.monotonic()
        keys: dict[str, SigningKey] = {}
        for entry in jwks.get("keys") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            try:
                parsed = jwt.PyJWK(entry, algorithm="RS256").key
            except (jwt.PyJWTError, ValueError, TypeError):
                log.warning("skipped a published Bot Framework key that is not an RSA key: %s", entry["kid"])
                continue
            endorsements = entry.get("endorsements")
            keys[entry["kid"]] = SigningKey(
                parsed, tuple(e for e in endorsements if isinstance(e, str)) if endorsements else ()
            )
        self.keys = keys
        self.unavailable = False

    async def get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("could not fetch the Bot Framework signing keys from %s: %s", url, exc)
            raise KeysUnavailable("the Bot Framework signing keys are unavailable") from None
        if not isinstance(data, dict):
            raise KeysUnavailable(f"{url} did not answer a JSON object")
        return data


class TokenValidator:
    """Checks one inbound request's Authorization header against its activity."""

    def __init__(self, keys: KeySet, *, app_id: str, leeway: float = LEEWAY_SECONDS) -> None:
        self.keys = keys
        self.unavailable = False
        self.app_id = app_id
        self.leeway = leeway

    async def validate(self, authorization: str | None, activity: dict[str, Any]) -> dict[str, Any]:
        """The token's claims when everything holds; otherwise TeamsAuthError with the reason."""
        token = bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TeamsAuthError("the bearer token is not a JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise TeamsAuthError(f"the token's algorithm {header.get('alg')!r} is not RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TeamsAuthError("the token names no signing key (kid)")
        signing = await self.keys.key(kid)
        channel = activity.get("channelId")
        if signing.endorsements and channel not in signing.endorsements:
            raise TeamsAuthError("the signing key is not endorsed for this channel")
        try:
            claims = jwt.decode(
                token,
                signing.key,
                algorithms=list(ALGORITHMS),
                audience=self.app_id,
                issuer=BOT_FRAMEWORK_ISSUER,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TeamsAuthError("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise TeamsAuthError("the token is not meant for this bot (audience)") from None
        except jwt.InvalidIssuerError:
            raise TeamsAuthError("the token is not issued by the Bot Framework") from None
        except jwt.PyJWTError as exc:
            raise TeamsAuthError(f"the token is not valid ({type(exc).__name__})") from None
        service_url, claimed = activity.get("serviceUrl"), claims.get("serviceurl")
        # The same URL with or without its trailing slash (the connector client adds one anyway).
        if not isinstance(service_url, str) or not isinstance(claimed, str) or not service_url:
            raise TeamsAuthError("the token's serviceurl does not match the activity's serviceUrl")
        if claimed.rstrip("/") != service_url.rstrip("/"):
            raise TeamsAuthError("the token's serviceurl does not match the activity's serviceUrl")
        return claims


def bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer …` header."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TeamsAuthError("no Bearer token in the Authorization header")
    return token.strip()
