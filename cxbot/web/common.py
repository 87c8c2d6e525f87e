"""Small pieces every HTTP endpoint shares: bounded body reading, bearer auth, error answers."""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cxbot.runtime import Runtime


class HttpError(Exception):
    """An answer with a status and a reason a caller can act on."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.reason}, status_code=self.status)


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


async def read_body(request: Request, *, limit: int) -> bytes:
    """The raw body, refusing (413) anything over `limit` bytes before reading all of it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise HttpError(413, f"body is larger than the limit of {limit} bytes")
        except ValueError:
            raise HttpError(400, "Content-Length is not a number") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise HttpError(422, "body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise HttpError(
            422, f"body is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except ValueError as error:  # e.g. an integer longer than Python's 4300-digit conversion limit
        raise HttpError(422, f"body is not JSON: {str(error).split(';')[0]}") from None
    except RecursionError:
        raise HttpError(422, "body is not JSON: nested too deeply") from None


def parse_form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (Qualtrics event subscriptions) as a dict."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(422, "body is not UTF-8 text") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def require_api_key(request: Request) -> None:
    """Check `Authorization: Bearer $CXBOT_API_KEY`; 503 when the server has no key configured."""
    expected = runtime_of(request).settings.cxbot_api_key
    if not expected:
        raise HttpError(503, "CXBOT_API_KEY is not set on the server, so the API is disabled")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HttpError(401, "missing bearer token (Authorization: Bearer <CXBOT_API_KEY>)")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise HttpError(401, "bearer token is not valid")


class BodyLimit:
    """ASGI middleware: one body limit for every route, the platforms' included (issue #11).

    The body is read (at most `limit` bytes) before any route runs, so nothing downstream, Bolt
    included, ever holds or logs more; over the limit is a 413 with the reason, and a
    Content-Length that is not a number is a 400.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refuse_declared(scope)
        chunks: list[bytes] = []
        size = 0
        more = refusal is None
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                refusal = HttpError(413, f"body is larger than the limit of {self.limit} bytes")
                break
            chunks.append(chunk)
            more = message.get("more_body", False)
        if refusal is not None:
            await refusal.response()(scope, receive, send)
            return
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _refuse_declared(self, scope: Scope) -> HttpError | None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit():  # bytes: ASCII digits only
                    return HttpError(400, "Content-Length is not a number")
                if len(value) > 19 or int(value) > self.limit:
                    return HttpError(413, f"body is larger than the limit of {self.limit} bytes")
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the buffered body over once, then waits for the client as usual."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
