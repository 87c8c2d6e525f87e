"""A fake Microsoft on loopback: the identity platform and the Bot Connector, plus signed activities.

:class:`FakeIdentity` publishes OpenID metadata and a JWKS holding RSA keys generated here (the tests
sign Bot Framework tokens with them: :meth:`FakeIdentity.mint`), and answers the client-credentials
token endpoint. :class:`FakeConnector` is the Bot Connector at a service URL: it records every call,
answers like the connector does, or as a test scripts it (429 with Retry-After, 412, 502, 403
`MessageWritesBlocked`), and refuses any route the Connector API's Swagger does not have. Both are
real HTTP servers on 127.0.0.1 (the standard library's threading server: the socket is bound before
the constructor returns, so tests never wait for it), in the style of `tests/support/fake_slack.py`.
Inbound activities come from the recorded real Teams traffic in `tests/fixtures/teams/recordings/`.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "teams"
APP_ID = "0c1b0e7c-0000-4000-8000-00000000cafe"
APP_PASSWORD = "fake-teams-app-password-0123456789abcdef"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the recordings' tenant
ISSUER = "https://api.botframework.com"


@dataclass(frozen=True, slots=True)
class Call:
    """One request a fake received."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    route: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A scripted answer; `body` is JSON unless it is a str."""

    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def connector_error(status: int, code: str, *, retry_after: int | None = None) -> Answer:
    """An error as the Bot Connector sends it: `{"error": {"code", "message"}}`."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Answer(status, {"error": {"code": code, "message": f"fake {code}"}}, headers)


class LoopbackServer:
    """A threading HTTP server on 127.0.0.1 that records calls and hands each to `answer`."""

    name = "fake-microsoft"

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.recorded: list[Call] = []
        self.scripts: dict[str, list[Answer | None]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = fake.receive(self.command, self.path, headers, raw)
                data = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
                encoded = data.encode("utf-8")
                self.send_response(answer.status)
                for name, value in {
                    "Content-Type": "application/json; charset=utf-8",
                    **answer.headers,
                }.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            do_GET = do_POST = do_PUT = do_DELETE = handle_any

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        # A short poll interval: `shutdown` waits for it, at every test's teardown.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, name=self.name, daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    @contextmanager
    def running(cls, *args: Any, **kwargs: Any) -> Iterator[Any]:
        fake = cls(*args, **kwargs)
        fake.thread.start()
        try:
            yield fake
        finally:
            fake.server.shutdown()
            fake.server.server_close()
            fake.thread.join()

    def script(self, route: str, *answers: Answer | None) -> None:
        """Answer the next calls of `route` with these, in order (None: as usual); then as usual."""
        with self.lock:
            self.scripts.setdefault(route, []).extend(answers)

    def calls(self, route: str | None = None) -> list[Call]:
        with self.lock:
            return [c for c in self.recorded if route is None or c.route == route]

    def wait_for(self, route: str, count: int = 1, *, timeout: float = 10.0) -> list[Call]:
        """Block until `route` was called `count` times (for work a background task does)."""
        with self.lock:
            done = self.lock.wait_for(
                lambda: sum(1 for c in self.recorded if c.route == route) >= count, timeout=timeout
            )
        if not done:
            raise TimeoutError(f"{route} was not called {count} times within {timeout} s")
        return self.calls(route)

    def receive(self, method: str, path: str, headers: dict[str, str], raw: str) -> Answer:
        route = self.route(method, path)
        if "json" in headers.get("content-type", ""):
            body: Any = json.loads(raw) if raw else {}
        else:
            body = dict(parse_qsl(raw, keep_blank_values=True))
        with self.lock:
            self.recorded.append(Call(method, path, body, headers, route))
            self.lock.notify_all()
            scripted = self.scripts.get(route or "")
            answer = scripted.pop(0) if scripted else None
        return answer or self.default(route, path, body, headers)

    def route(self, method: str, path: str) -> str | None:
        raise NotImplementedError

    def default(self, route: str | None, path: str, body: Any, headers: dict[str, str]) -> Answer:
        raise NotImplementedError


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One RSA key per name for the whole test session (generating one takes tens of ms)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(name: str) -> dict[str, Any]:
    """The public half of `rsa_key(name)` as a JWK, with Bot Framework's `endorsements`."""
    numbers = rsa_key(name).public_key().public_numbers()

    def b64(value: int) -> str:
        data = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    return {"kty": "RSA", "use": "sig", "kid": name, "n": b64(numbers.n), "e": b64(numbers.e),
            "endorsements": ["msteams", "webchat"]}  # fmt: skip


class FakeIdentity(LoopbackServer):
    """login.botframework.com's OpenID metadata + JWKS, and login.microsoftonline.com's token endpoint."""

    name = "fake-identity"

    def __init__(self, *, token_lifetime: int = 3600) -> None:
        super().__init__()
        self.published = ["key-1"]
        self.token_lifetime = token_lifetime
        self.issued = itertools.count(1)

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/v1/.well-known/openidconfiguration"

    @property
    def login_url(self) -> str:
        return self.base

    def publish(self, *kids: str) -> None:
        """Rotate: the JWKS now holds exactly these keys."""
        with self.lock:
            self.published = list(kids)

    def mint(self, *, service_url: str, kid: str = "key-1", lifetime: int = 600, **claims: Any) -> str:
        """A Bot Framework token as Teams sends it; `claims` override or (with None) drop a claim."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "serviceurl": service_url,
            "nbf": now - 5,
            "exp": now + lifetime,
            "iss": ISSUER,
            "aud": APP_ID,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, rsa_key(kid), algorithm="RS256", headers={"kid": kid})

    def route(self, method: str, path: str) -> str | None:
        if method == "GET" and path == "/v1/.well-known/openidconfiguration":
            return "metadata"
        if method == "GET" and path == "/v1/.well-known/keys":
            return "keys"
        if method == "POST" and re.fullmatch(r"/[^/]+/oauth2/v2\.0/token", path):
            return "token"
        return None

    def default(self, route: str | None, path: str, body: Any, headers: dict[str, str]) -> Answer:
        if route == "metadata":
            return Answer(body={
                "issuer": ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{self.base}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            })  # fmt: skip
        if route == "keys":
            with self.lock:
                kids = list(self.published)
            return Answer(body={"keys": [jwk(kid) for kid in kids]})
        if route == "token":
            if (body.get("client_id"), body.get("client_secret")) != (APP_ID, APP_PASSWORD):
                return Answer(401, {"error": "invalid_client", "error_description": "AADSTS7000215"})
            return Answer(body={
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": f"bot-token-{next(self.issued)}",
            })  # fmt: skip
        return Answer(404, {"error": "not_found"})


@cache
def swagger_routes() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(`METHOD /path/template`, regex) of every route in the Connector API's Swagger."""
    spec = json.loads((FIXTURES / "ConnectorAPI.swagger.json").read_text(encoding="utf-8"))
    routes = []
    for template, operations in spec["paths"].items():
        pattern = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + r"$")
        for method in operations:
            routes.append((f"{method.upper()} {template}", pattern))
    return tuple(routes)


#: The short names tests use for the routes cxbot calls.
ROUTE_NAMES = {
    "POST /v3/conversations": "create",
    "POST /v3/conversations/{conversationId}/activities": "send",
    "POST /v3/conversations/{conversationId}/activities/{activityId}": "reply",
    "PUT /v3/conversations/{conversationId}/activities/{activityId}": "update",
}


class FakeConnector(LoopbackServer):
    """The Bot Connector at `service_url` (a path prefix, as Teams' regional `…/amer/`)."""

    name = "fake-connector"
    prefix = "/amer"

    def __init__(self, *, token_check: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.token_check = token_check or (lambda value: value.startswith("bot-token-"))
        self.activities = itertools.count(1)

    @property
    def service_url(self) -> str:
        return f"{self.base}{self.prefix}/"

    def route(self, method: str, path: str) -> str | None:
        if not path.startswith(self.prefix + "/"):
            return None
        local = path[len(self.prefix) :].split("?", 1)[0]
        for name, pattern in swagger_routes():
            if name.startswith(method + " ") and pattern.match(local):
                return ROUTE_NAMES.get(name, name)
        return None

    def default(self, route: str | None, path: str, body: Any, headers: dict[str, str]) -> Answer:
        if route is None:
            return connector_error(404, "NotFound")
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if not self.token_check(token):
            return connector_error(401, "Unauthorized")
        if route == "create":
            if isinstance(body, dict) and body.get("isGroup") is False:  # a 1:1 chat, no first activity
                return Answer(201, {"id": f"a:1fake-personal-{next(self.activities)}"})
            conversation = "19:fake-thread@thread.tacv2;messageid=" + str(next(self.activities))
            return Answer(201, {"id": conversation, "activityId": f"1:act-{next(self.activities)}"})
        if route in ("send", "reply"):
            return Answer(201, {"id": f"1:act-{next(self.activities)}"})
        if route == "update":
            return Answer(200, {"id": unquote(path.rsplit("/", 1)[-1])})
        return connector_error(405, "MethodNotAllowed")

    def conversation_of(self, call: Call) -> str:
        """The unescaped conversation id in a recorded call's path."""
        return unquote(call.path[len(self.prefix) :].split("/")[3])


# -- activities Teams sends ----------------------------------------------------------------------


def recording(name: str) -> dict[str, Any]:
    """A recorded file of `tests/fixtures/teams/recordings/` (request or reply)."""
    path = next(FIXTURES.joinpath("recordings").glob(f"*{name}*.json"))
    return json.loads(path.read_text(encoding="utf-8"))


def recorded_activity(name: str, *, service_url: str, **changes: Any) -> dict[str, Any]:
    """The activity of a recorded inbound request, at our fake's service URL, with `changes`
    (each of which must be a field the recorded activity has: Teams would not send others)."""
    activity = copy.deepcopy(recording(name)["body"])
    unknown = sorted(set(changes) - set(activity))
    if unknown:
        raise KeyError(f"recording {name} has no field(s) {unknown}")
    activity.update(changes)
    activity["serviceUrl"] = service_url
    return activity


def teams_settings(database_url: str, identity: FakeIdentity, api_key: str) -> Any:
    """Settings with Teams configured and the Microsoft endpoints pointed at the fake identity."""
    from cxbot.settings import Settings

    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=database_url,
        CXBOT_API_KEY=api_key,
        TEAMS_APP_ID=APP_ID,
        TEAMS_APP_PASSWORD=APP_PASSWORD,
        TEAMS_TENANT_ID=TENANT_ID,
        TEAMS_OPENID_METADATA_URL=identity.metadata_url,
        TEAMS_LOGIN_URL=identity.login_url,
    )


class TeamsSender:
    """Posts activities to `POST /api/messages` of the app under test with a freshly minted token,
    as the Bot Framework does, then waits for the work the app ran after answering."""

    def __init__(self, http: Any, identity: FakeIdentity, connector: FakeConnector, drain: Any) -> None:
        self.http = http
        self.identity = identity
        self.connector = connector
        self.drain = drain

    async def post(
        self, activity: dict[str, Any], *, authorization: str | None = "mint", **claims: Any
    ) -> Any:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if authorization == "mint":
            authorization = "Bearer " + self.identity.mint(
                service_url=activity.get("serviceUrl", ""), **claims
            )
        if authorization is not None:
            headers["Authorization"] = authorization
        response = await self.http.post(
            "/api/messages", content=json.dumps(activity).encode(), headers=headers
        )
        await self.drain()
        return response

    def activity(self, name: str, **changes: Any) -> dict[str, Any]:
        return recorded_activity(name, service_url=self.connector.service_url, **changes)
