"""A fake Slack on loopback: the Web API and `response_url`s, plus signed requests Slack would send.

:class:`FakeSlack` is a real HTTP server on 127.0.0.1 (the standard library's threading server: the
socket is bound before the constructor returns, so tests never wait for it). It records every call
and answers like Slack, or as a test scripts it: a 429 with Retry-After, a 500, or `ok: false` with
an error code. :class:`SlackSender` signs requests with the signing secret exactly as Slack does and
sends them through the real ASGI app. Request fields come from the samples in `tests/fixtures/slack/`.

Messages it accepted (`chat.postMessage` answered ok, whoever chose the answer) are kept per
conversation, so `conversations.history` and `conversations.replies` read them back as Slack does:
newest first (a thread: parent first, then oldest first), with `metadata` only when
`include_all_metadata` is asked for, `oldest`, `limit` and a cursor. Its `ts` values are counters,
not times, so `oldest` is compared with when each message arrived (as Slack's `ts` is). A person's id
as the channel is their direct message, `D` + the rest of the id (`conversations.open` says the same).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slack"
BOT_USER = "U0CXBOT01"
TEAM_ID = "T0CXBOT01"


@dataclass(frozen=True, slots=True)
class Call:
    """One request the fake received: the API method (or `respond`), its body and headers."""

    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Answer:
    """A scripted answer; `body` is JSON unless it is a str."""

    status: int = 200
    body: dict[str, Any] | str = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)


RATE_LIMITED = Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"})
SERVER_ERROR = Answer(500, "<html>upstream connect error</html>", {"Content-Type": "text/html"})


def error(code: str) -> Answer:
    return Answer(200, {"ok": False, "error": code})


def rate_limited(seconds: int) -> Answer:
    return Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(seconds)})


class FakeSlack:
    """Slack's Web API at `api_url`, response URLs at `response_url(name)`."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._calls: list[Call] = []
        self._scripts: dict[str, list[Answer | None]] = {}
        self._holds: dict[str, threading.Event] = {}
        self._hooks: dict[str, Callable[[Call, Answer | None], None]] = {}
        self._choosers: list[Callable[[Call], Answer | None]] = []
        self._ts = itertools.count(1)
        self._files = itertools.count(1)
        #: Messages accepted, by conversation: (arrival time, ts, thread_ts, metadata, text).
        self.messages: dict[str, list[tuple[float, str, str | None, Any, str]]] = {}
        #: Bytes sent to upload URLs (files_upload_v2), by file id.
        self.uploads: dict[str, bytes] = {}
        #: Where `apps.connections.open` sends a Socket Mode client (see :class:`FakeSocketMode`).
        self.socket_url: str | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as Slack's API is: a new TCP connection per post cost the server under test
            # ~2.5% of its CPU in the latency bench, a cost production does not have.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                if self.path.startswith("/upload/"):  # files_upload_v2's step 2: the file's bytes
                    answer = fake._upload(self.path, dict(self.headers.items()), data)
                else:
                    answer = fake._handle(self.path, dict(self.headers.items()), data.decode("utf-8"))
                payload = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
                data = payload.encode("utf-8")
                self.send_response(answer.status)
                headers = {"Content-Type": "application/json; charset=utf-8", **answer.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-slack", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self, name: str = "1") -> str:
        return f"{self.base}/respond/{name}"

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[FakeSlack]:
        fake = cls()
        fake._thread.start()
        try:
            yield fake
        finally:
            fake._server.shutdown()
            fake._server.server_close()
            fake._thread.join()

    # -- what tests use -------------------------------------------------------------------------

    def script(self, method: str, *answers: Answer | None) -> None:
        """Answer the next calls of `method` with these, in order (None: as usual); then as usual again."""
        with self._lock:
            self._scripts.setdefault(method, []).extend(answers)

    def hold(self, method: str) -> threading.Event:
        """Calls of `method` are recorded, then answered only once the returned event is set."""
        gate = threading.Event()
        with self._lock:
            self._holds[method] = gate
        return gate

    def on_call(self, method: str, hook: Callable[[Call, Answer | None], None]) -> None:
        """Run `hook(call, scripted answer or None)` as each call of `method` is answered.

        For a Slack that takes time: a test's hook moves its clock, so the worker sees time pass
        during the call exactly as it would against the real one.
        """
        with self._lock:
            self._hooks[method] = hook

    def answer_with(self, chooser: Callable[[Call], Answer | None]) -> None:
        """Let `chooser(call)` answer every call not scripted (None: as usual), in the server's thread.

        For a Slack that misbehaves at random or for a while (bench/soak.py: 429s, 500s, an outage);
        a test that needs one answer in order uses :meth:`script`.
        """
        with self._lock:
            self._choosers.append(chooser)

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(self, method: str, count: int = 1, *, timeout: float = 10.0) -> list[Call]:
        """Block until `method` was called `count` times (for work a background task does)."""
        with self._lock:
            done = self._lock.wait_for(
                lambda: sum(1 for c in self._calls if c.method == method) >= count, timeout=timeout
            )
        if not done:
            raise TimeoutError(f"{method} was not called {count} times within {timeout} s")
        return self.calls(method)

    def responses(self) -> list[dict[str, Any]]:
        """Bodies posted to response URLs (slash command and button replies)."""
        return [c.body for c in self.calls("respond")]

    # -- the server side ------------------------------------------------------------------------

    def _handle(self, path: str, headers: dict[str, str], raw: str) -> Answer:
        if path.startswith("/api/"):
            method = path[len("/api/") :].split("?", 1)[0]
        elif path.startswith("/respond/"):
            method = "respond"
        else:
            method = path
        body = _parse(raw, headers.get("Content-Type", ""))
        if "?" in path:  # slack_sdk sends some methods' arguments (files.*) as the query string
            body = {**dict(parse_qsl(path.split("?", 1)[1], keep_blank_values=True)), **body}
        with self._lock:
            call = Call(method, path, body, {k.lower(): v for k, v in headers.items()})
            self._calls.append(call)
            self._lock.notify_all()
            scripted = self._scripts.get(method)
            answer = scripted.pop(0) if scripted else None
            gate = self._holds.get(method)
            hook = self._hooks.get(method)
            choosers = list(self._choosers)
        for chooser in choosers if answer is None else ():
            answer = chooser(call)
            if answer is not None:
                break
        if gate is not None and not gate.wait(timeout=30):
            return Answer(500, {"ok": False, "error": "held_too_long"})
        if hook is not None:
            hook(call, answer)
        answer = answer or self._default(method, body)
        accepted = answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("ok")
        if method == "chat.postMessage" and accepted:
            self._keep(body, str(answer.body.get("ts")))  # type: ignore[union-attr]
        return answer

    def _keep(self, body: dict[str, Any], ts: str) -> None:
        metadata = body.get("metadata")
        if isinstance(metadata, str):  # form-encoded calls send it as JSON text
            metadata = json.loads(metadata or "null")
        thread = body.get("thread_ts") or None
        with self._lock:
            kept = self.messages.setdefault(dm_channel(str(body.get("channel") or "")), [])
            kept.append((time.time(), ts, thread, metadata, str(body.get("text") or "")))

    def _history(self, body: dict[str, Any], *, thread: str | None) -> Answer:
        """conversations.history (thread None: the channel's top-level messages) or .replies."""
        channel = str(body.get("channel") or "")
        oldest = float(body.get("oldest") or 0)
        limit = int(body.get("limit") or 100)
        start = int(body.get("cursor") or 0)
        with_metadata = str(body.get("include_all_metadata")).lower() in ("true", "1")
        with self._lock:
            kept = list(self.messages.get(channel, ()))
        if thread is None:
            found = [m for m in reversed(kept) if m[2] is None and m[0] >= oldest]
        else:
            found = [m for m in kept if m[1] == thread] + [
                m for m in kept if m[2] == thread and m[0] >= oldest
            ]
        page = found[start : start + limit]
        messages = []
        for _, ts, thread_ts, metadata, text in page:
            message: dict[str, Any] = {"type": "message", "ts": ts, "text": text}
            if thread_ts:
                message["thread_ts"] = thread_ts
            if with_metadata and metadata:
                message["metadata"] = metadata
            messages.append(message)
        more = start + limit < len(found)
        return Answer(
            body={
                "ok": True,
                "messages": messages,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        )

    def _upload(self, path: str, headers: dict[str, str], data: bytes) -> Answer:
        file_id = path.rsplit("/", 1)[-1]
        with self._lock:
            self.uploads[file_id] = data
            self._calls.append(
                Call("upload", path, {"length": len(data)}, {k.lower(): v for k, v in headers.items()})
            )
            self._lock.notify_all()
        return Answer(200, f"OK - {len(data)}", {"Content-Type": "text/plain"})

    def _default(self, method: str, body: dict[str, Any]) -> Answer:
        if method == "respond":
            return Answer(200, "ok", {"Content-Type": "text/plain"})
        if method == "auth.test":
            return Answer(
                body={
                    "ok": True,
                    "url": "https://cxbot-test.slack.com/",
                    "team": "cxbot test",
                    "user": "cxbot",
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER,
                    "bot_id": "B0CXBOT01",
                    "is_enterprise_install": False,
                }
            )
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            return Answer(body={"ok": True, "channel": body.get("channel"), "ts": ts, "message": {"ts": ts}})
        if method == "chat.update":
            return Answer(body={"ok": True, "channel": body.get("channel"), "ts": body.get("ts")})
        if method == "conversations.history":
            return self._history(body, thread=None)
        if method == "conversations.replies":
            return self._history(body, thread=str(body.get("ts") or ""))
        if method == "conversations.open":
            users = str(body.get("users") or "")
            return Answer(body={"ok": True, "channel": {"id": dm_channel(users)}})
        if method == "chat.postEphemeral":
            return Answer(body={"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"})
        if method == "apps.connections.open":
            if self.socket_url is None:
                return Answer(body={"ok": False, "error": "invalid_auth"})
            return Answer(body={"ok": True, "url": self.socket_url})
        if method == "files.getUploadURLExternal":
            file_id = f"F0CXFILE{next(self._files):02d}"
            return Answer(
                body={"ok": True, "upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}
            )
        if method == "files.completeUploadExternal":
            files = json.loads(body.get("files") or "[]")
            return Answer(
                body={"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
            )
        if method in ("views.publish", "views.open", "views.update"):
            return Answer(body={"ok": True, "view": {"id": "V0CXBOT01", **(body.get("view") or {})}})
        return Answer(body={"ok": False, "error": "unknown_method"})


def dm_channel(channel: str) -> str:
    """The conversation a post to `channel` lands in: a person's id is their direct message."""
    return "D" + channel[1:] if channel[:1] in ("U", "W") else channel


def _parse(raw: str, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        return json.loads(raw)
    return dict(parse_qsl(raw, keep_blank_values=True))


# -- requests Slack sends ------------------------------------------------------------------------


def from_sample(name: str, **values: Any) -> dict[str, Any]:
    """A payload with only the given fields, each of which must exist in Slack's sample `name`."""
    sample = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    unknown = sorted(set(values) - set(sample))
    if unknown:
        raise KeyError(f"{name} has no field(s) {unknown}: Slack would not send them")
    return dict(values)


def sign(secret: str, body: str, timestamp: int) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackSender:
    """Sends signed requests to `POST /slack/events` of the app under test, as Slack does."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        secret: str,
        fake: FakeSlack,
        drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.http = http
        self.secret = secret
        self.fake = fake
        self._drain = drain
        self._responses = itertools.count(1)

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        signed: bool = True,
        retry_num: int | None = None,
        wait: bool = True,
    ) -> httpx.Response:
        """Post as Slack does; with `wait` (the default) also wait for the work the app ran after
        answering (commands and clicks are acknowledged first), so the test sees their effects."""
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {"Content-Type": content_type}
        if signed:
            headers["X-Slack-Request-Timestamp"] = str(stamp)
            headers["X-Slack-Signature"] = sign(secret or self.secret, body, stamp)
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        response = await self.http.post("/slack/events", content=body.encode(), headers=headers)
        if wait and self._drain is not None:
            await self._drain()
        return response

    async def command(
        self, text: str, *, user: str, channel: str = "C0SUPPORT1", **options: Any
    ) -> httpx.Response:
        fields = from_sample(
            "SlashCommandPayload.json",
            token="legacy-verification-token",
            team_id=TEAM_ID,
            team_domain="cxbot-test",
            channel_id=channel,
            channel_name="support",
            user_id=user,
            user_name=user.lower(),
            command="/cx",
            text=text,
            api_app_id="A0CXBOT01",
            is_enterprise_install="false",
            response_url=self.fake.response_url(f"command-{next(self._responses)}"),
            trigger_id="1337.42.abcd",
        )
        return await self.post(urlencode(fields), "application/x-www-form-urlencoded", **options)

    def block_action(
        self,
        action_id: str,
        *,
        user: str,
        channel: str = "C0SUPPORT1",
        value: str | None = None,
        **extra: Any,
    ) -> str:
        """The form body of a click on a card in `channel` (a test may replay it byte for byte)."""
        action = {
            "action_id": action_id,
            "block_id": "cx_case",
            "type": "button",
            "action_ts": "1700000001.000001",
        }
        if value is not None:
            action["value"] = value
        action.update(extra)
        payload = from_sample(
            "BlockActionPayload.json",
            type="block_actions",
            user={"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
            api_app_id="A0CXBOT01",
            token="legacy-verification-token",
            container={"type": "message", "message_ts": "1700000000.000001", "channel_id": channel},
            trigger_id="1337.42.abcd",
            team={"id": TEAM_ID, "domain": "cxbot-test"},
            channel={"id": channel, "name": "support"},
            message={"type": "message", "ts": "1700000000.000001", "text": "card"},
            response_url=self.fake.response_url(f"action-{next(self._responses)}"),
            actions=[action],
            is_enterprise_install=False,
        )
        return urlencode({"payload": json.dumps(payload)})

    async def click(
        self, action_id: str, *, user: str, value: str | None = None, **options: Any
    ) -> httpx.Response:
        """Click a button; its value is the card's (`value`), else the id after the action's colon."""
        value = action_id.partition(":")[2] if value is None else value
        body = self.block_action(action_id, user=user, value=value)
        return await self.post(body, "application/x-www-form-urlencoded", **options)

    def app_home_opened(self, *, user: str, event_id: str) -> str:
        event = {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0CXBOT01",
            "tab": "home",
            "event_ts": "1.2",
        }
        body = from_sample(
            "AppHomeOpenedPayload.json",
            token="legacy-verification-token",
            team_id=TEAM_ID,
            api_app_id="A0CXBOT01",
            type="event_callback",
            authorizations=[{"team_id": TEAM_ID, "user_id": BOT_USER, "is_bot": True}],
            event_id=event_id,
            event_time=1700000000,
            event=event,
        )
        return json.dumps(body)


def view_submission(
    *, user: str, callback_id: str, private_metadata: str, values: dict[str, dict[str, Any]]
) -> str:
    """The form body of a modal's submit; `values` is `view.state.values` as Slack nests it."""
    view = from_sample_nested(
        "ViewSubmissionPayload.json",
        "view",
        id="V0CXMODAL",
        team_id=TEAM_ID,
        type="modal",
        callback_id=callback_id,
        private_metadata=private_metadata,
        state={"values": values},
        app_id="A0CXBOT01",
    )
    payload = from_sample(
        "ViewSubmissionPayload.json",
        type="view_submission",
        team={"id": TEAM_ID, "domain": "cxbot-test"},
        user={"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        api_app_id="A0CXBOT01",
        token="legacy-verification-token",
        trigger_id="1337.43.abcd",
        view=view,
        is_enterprise_install=False,
    )
    return urlencode({"payload": json.dumps(payload)})


def from_sample_nested(name: str, key: str, **values: Any) -> dict[str, Any]:
    """Like :func:`from_sample`, for the object under `key` of the sample."""
    sample = json.loads((FIXTURES / name).read_text(encoding="utf-8"))[key]
    unknown = sorted(set(values) - set(sample))
    if unknown:
        raise KeyError(f"{name}: {key} has no field(s) {unknown}: Slack would not send them")
    return dict(values)


# -- wiring for test modules (each declares thin fixtures around these) ---------------------------

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-token"


def slack_settings(database_url: str, fake: FakeSlack, api_key: str) -> Any:
    """Settings with Slack configured and its Web API pointed at the fake."""
    from cxbot.settings import Settings

    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=database_url,
        CXBOT_API_KEY=api_key,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake.api_url,
    )


@asynccontextmanager
async def slack_sender(runtime: Any, fake: FakeSlack, api_key: str) -> AsyncIterator[SlackSender]:
    """The real ASGI app with the platform routes, behind an httpx client that signs like Slack."""
    from cxbot.web import create_app
    from tests.support.platforms import platform_routes

    transport = httpx.ASGITransport(app=create_app(runtime, routes=platform_routes(runtime)))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://cxbot.test", headers={"Authorization": f"Bearer {api_key}"}
    ) as http:
        yield SlackSender(http, secret=SIGNING_SECRET, fake=fake, drain=runtime.background.drain)


class FakeSocketMode:
    """Slack's Socket Mode WebSocket on loopback (aiohttp, in the test's event loop).

    It greets a client with `hello`, lets the test push envelopes, and queues what the client sends
    back (the acknowledgements).
    """

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._socket: Any = None
        self.url = ""

    async def __aenter__(self) -> FakeSocketMode:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/link", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/link"
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._runner.cleanup()

    async def _serve(self, request: Any) -> Any:
        from aiohttp import WSMsgType, web

        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0CXBOT01"}}
        )
        self.connected.set()
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                await self.received.put(json.loads(message.data))
        return socket

    async def send(self, envelope: dict[str, Any]) -> None:
        await self._socket.send_json(envelope)
