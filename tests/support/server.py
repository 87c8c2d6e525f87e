"""Run `python bot.py serve` as a real process on a free loopback port, for end-to-end tests and benches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Application startup complete"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """Starts the server and returns once uvicorn says it is ready (no polling, no sleeps).

    `command` defaults to `python bot.py serve`; the benches pass their own (a profiled server, a
    bare Bolt app), which must also run uvicorn on $HOST:$PORT.
    """

    def __init__(
        self, env: dict[str, str], *, command: list[str] | None = None, timeout: float = 60.0
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **env}
        self.process = subprocess.Popen(
            command or [sys.executable, str(ROOT / "bot.py"), "serve"],
            cwd=env.get("CXBOT_CWD", str(ROOT)),
            env=full_env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.log: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.log.append(line)
                if READY_LINE in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.log))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
