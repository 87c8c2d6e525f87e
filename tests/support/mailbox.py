"""A fake SendGrid-compatible email API on loopback that records every message it accepts."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str
    headers: dict[str, str]


class FakeMailbox:
    """`POST /v3/mail/send` answered 202 with an `X-Message-Id`, as SendGrid does."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        mailbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v3/mail/send":
                    self.send_response(404)
                    self.end_headers()
                    return
                body: dict[str, Any] = json.loads(raw)
                mail = Mail(
                    to=body["personalizations"][0]["to"][0]["email"],
                    subject=body["subject"],
                    text=body["content"][0]["value"],
                    headers={k.lower(): v for k, v in self.headers.items()},
                )
                with mailbox._lock:
                    mailbox.mails.append(mail)
                    ident = next(mailbox._ids)
                self.send_response(202)
                self.send_header("X-Message-Id", f"msg-{ident}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[FakeMailbox]:
        box = cls()
        thread = threading.Thread(target=box.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield box
        finally:
            box.server.shutdown()
            box.server.server_close()
