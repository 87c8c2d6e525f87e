"""Fake providers on loopback: SendGrid, Mailgun, Twilio, a helpdesk webhook, and read APIs a test routes.

One standard-library threading HTTP server (bound before the constructor returns, like the fake
Slack) answers each provider's path as the real API does, records every request byte for byte, and
counts *accepted* deliveries per idempotency key, so a test can prove a retried message was taken
exactly once. A test scripts failures per path prefix: a status with body and headers, or `HANG`,
which holds the request until the fake shuts down (the client's timeout fires; nothing sleeps).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT_SID = "AC00000000000000000000000000000000"
MAILGUN_DOMAIN = "mg.shop.example.com"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.raw.decode("utf-8"), keep_blank_values=True))

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key") or self.headers.get("i-twilio-idempotency-token")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: dict[str, Any] | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


HANG = Reply(hang=True)


def invalid_email() -> Reply:
    """What SendGrid answers for a bad recipient."""
    return Reply(
        400,
        {"errors": [{"message": "invalid email", "field": "personalizations.0.to.0.email", "help": None}]},
    )


class FakeProviders:
    """Every provider at `base`; `requests(prefix)` and `accepted` say what arrived and what was taken."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._requests: list[Request] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._routes: dict[str, Reply] = {}
        self._ids = itertools.count(1)
        self._release = threading.Event()
        self.accepted: Counter[str] = Counter()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(self.command, self.path, headers, raw)
                reply = fake._handle(request)
                if reply.hang:
                    fake._release.wait()
                    return
                data = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()
                self.send_response(reply.status)
                for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-providers", daemon=True)

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[FakeProviders]:
        fake = cls()
        fake._thread.start()
        try:
            yield fake
        finally:
            fake._release.set()
            fake._server.shutdown()
            fake._server.server_close()
            fake._thread.join()

    def script(self, prefix: str, *replies: Reply) -> None:
        """Answer the next requests whose path starts with `prefix` with these, then as usual."""
        with self._lock:
            self._scripts.setdefault(prefix, []).extend(replies)

    def route(self, path: str, reply: Reply) -> None:
        """Answer every request for exactly `path` (query string ignored) with `reply` from now on:
        a provider's read API (survey responses, ratings) serving the records a test put there."""
        with self._lock:
            self._routes[path] = reply

    def requests(self, prefix: str = "/") -> list[Request]:
        with self._lock:
            return [r for r in self._requests if r.path.startswith(prefix)]

    def _handle(self, request: Request) -> Reply:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()
            for prefix, queued in self._scripts.items():
                if request.path.startswith(prefix) and queued:
                    reply = queued.pop(0)
                    break
            else:
                reply = self._default(request.path)
            if 200 <= reply.status < 300 and not reply.hang and request.idempotency_key:
                self.accepted[request.idempotency_key] += 1
        return reply

    def _default(self, path: str) -> Reply:
        routed = self._routes.get(path.split("?")[0])
        if routed is not None:
            return routed
        n = next(self._ids)
        if path == "/v3/mail/send":
            return Reply(202, "", {"X-Message-Id": f"sg-{n}"})
        if path == f"/v3/{MAILGUN_DOMAIN}/messages":
            return Reply(200, {"id": f"<{n}@{MAILGUN_DOMAIN}>", "message": "Queued. Thank you."})
        if path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
            return Reply(201, {"sid": f"SM{n:032d}", "status": "queued"})
        if path == "/hooks/cxbot":
            return Reply(200, {"id": f"T-{n}"})
        return Reply(404, {"message": "not found"})
