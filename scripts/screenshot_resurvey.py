#!/usr/bin/env python3
"""The re-survey page as a customer's phone shows it, for docs/ (issue #16): generated, not drawn.

    python scripts/screenshot_resurvey.py                  # → docs/resurvey-phone.png
    python scripts/screenshot_resurvey.py --out page.png --config my-cxbot.yaml

A temporary SQLite database gets one negative answer through the real ingest, a manager acknowledges
the case and `/cx resurvey` queues the link, as in tests/test_resurvey.py; the page that link opens is
fetched from the real ASGI app and photographed by Debian's headless chromium (/usr/bin/chromium) at a
phone's width (390 CSS pixels, device pixel ratio 2), tall enough to show the footer.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxbot.config import load_config
from cxbot.db import upgrade
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.support.clock import FrozenClock
from tests.support.resurvey import ADA, MANAGER, SECRET, link_tokens, negative_case, say, with_contact

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
API_KEY = "screenshot-api-key-0123456789"
PHONE = (390, 940)  # CSS pixels: an iPhone 14's width, tall enough for the whole page


async def page_html(config_path: Path, folder: Path) -> str:
    """The HTML of a fresh re-survey link's page, as the server sends it."""
    url = f"sqlite:///{folder / 'screenshot.db'}"
    await upgrade(url)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=url,
        CXBOT_API_KEY=API_KEY,
        CXBOT_SECRET_KEY=SECRET,
        CXBOT_PUBLIC_URL="https://cx.example.com",
    )
    runtime = Runtime.build(
        settings=settings, config=with_contact(load_config(config_path)), clock=FrozenClock()
    )
    try:
        await runtime.sync_directory()
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://cxbot.test", headers={"Authorization": f"Bearer {API_KEY}"}
        ) as http:
            case_id = await negative_case(http, customer=ADA, metric="csat", score=1)
            for command, user in ((f"ack CX-{case_id}", MANAGER), (f"resurvey CX-{case_id}", MANAGER)):
                reply = await say(runtime, command, user=user)
                if not reply.ok:
                    raise SystemExit(f"{command}: {reply.text}")
            [token] = await link_tokens(runtime)
            page = await http.get(f"/r/{token}")
            page.raise_for_status()
            return page.text
    finally:
        await runtime.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "resurvey-phone.png")
    parser.add_argument("--config", type=Path, default=ROOT / "cxbot.example.yaml")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"needs Debian's chromium at {CHROMIUM}: apt-get install chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        document = folder / "resurvey.html"
        document.write_text(asyncio.run(page_html(args.config, folder)), encoding="utf-8")
        subprocess.run(
            [
                str(CHROMIUM),
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={folder / 'profile'}",
                f"--window-size={PHONE[0]},{PHONE[1]}",
                "--force-device-scale-factor=2",
                f"--screenshot={args.out.resolve()}",
                document.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
