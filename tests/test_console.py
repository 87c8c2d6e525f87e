"""The console: driven through a pseudo-terminal as a newcomer would, and line by line in process.

The pty test runs `python bot.py console --demo` in an empty directory with its own database file and
follows the README's tour: help, list, acknowledge (the card is re-rendered), a digest preview, the
clock moved so a digest posts and an escalation fires, then `:quit` with status 0.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pexpect
import pytest

from cxbot.authz import actor_for
from cxbot.clock import ManualClock
from cxbot.config import Config
from cxbot.db import transaction
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from handlers.console.commands import PROMPT, Console, repl
from tests.conftest import ROOT

MANAGER = "U0SUPMGR1"
ADMIN = "U0ADMIN01"
COLUMNS = 80  # the tour's terminal: the narrowest a newcomer is likely to have


def until(child: pexpect.spawn, pattern: str) -> str:
    """Everything printed before `pattern` (a literal), which is consumed."""
    child.expect_exact(pattern)
    return str(child.before)


def test_a_newcomer_tours_the_demo_in_a_terminal(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CXBOT_", "DATABASE_", "TEAMS_"))
    }
    # Its own cache: the tour builds the demo database (later runs would copy it, cxbot.demo_cache).
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", TERM="dumb", XDG_CACHE_HOME=str(tmp_path / "cache"))
    database = tmp_path / "tour.db"
    child = pexpect.spawn(
        sys.executable,
        [str(ROOT / "bot.py"), "console", "--demo", "--db", str(database)],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=120,
        dimensions=(60, COLUMNS),
    )
    seen = io.StringIO()
    child.logfile_read = seen
    try:
        first_screen = until(child, "Try: show ")
        assert "Demo data:" in first_screen and "responses over 60 days" in first_screen
        assert "CX digest · Customer Support" in first_screen  # the latest digest, before anything typed
        assert "Overdue cases:" in first_screen
        child.expect(r"(CX-\d+)")
        ref = child.match.group(1)
        until(child, PROMPT)
        assert database.exists()

        child.sendline(":help")
        shown = until(child, PROMPT)
        assert ":advance <time>" in shown and "/cx list [mine|team <team>|overdue|new|all]" in shown
        # A verb per line with what it does under it, not columns padded to the longest usage.
        assert "/cx ack CX-42\r\n    acknowledge" in shown, shown

        child.sendline("/cx list new")
        listed = until(child, PROMPT)
        assert f"{ref} [new]" in listed

        child.sendline(f"ack {ref}")
        acked = until(child, PROMPT)
        assert f"{ref} acknowledged" in acked
        card = acked[acked.index(f"· {ref} ·") :]
        assert "State:      acknowledged" in card  # the card, re-rendered after the state change
        assert f"{ref} thread: Acknowledged by @admin" in acked
        assert f"ack {ref}" not in card.split("Act:")[1]  # no Acknowledge button any more

        child.sendline("/cx digest support preview")
        preview = until(child, PROMPT)
        assert (
            "preview of #support, only you see this" in preview and "CX digest · Customer Support" in preview
        )
        assert "Closed loop" in preview and "Top negative comments:" in preview

        child.sendline(":advance 2h")
        advanced = until(child, PROMPT)
        assert "#support · daily digest" in advanced  # posted at 09:00 London, through the outbox
        assert "ESCALATION · direct message to @" in advanced
        assert re.search(r"Clock moved 2h to Tue 17 Nov 2026 10:00 UTC; \d+ message\(s\) posted", advanced)

        child.sendline(":quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    # The first run builds the demo database with a progress bar (later runs copy it).
    assert re.search(r"Seeding demo: +\d+%\|", seen.getvalue()), seen.getvalue()[:2000]
    # Everything it printed (the progress bar, cards, digests, escalations, help) fits the terminal.
    too_wide = [line for line in re.split(r"[\r\n]+", seen.getvalue()) if len(line) > COLUMNS]
    assert not too_wide, too_wide


# In process, line by line -----------------------------------------------------------------------------


@pytest.fixture
async def demo_runtime(settings: Settings, example_config: Config) -> AsyncIterator[Runtime]:
    """A runtime on the manual clock the demo uses, with one negative feedback for support (CX-1)."""
    clock = ManualClock(datetime(2026, 11, 17, 8, 0, tzinfo=UTC))
    built = Runtime.build(settings=settings, config=example_config, clock=clock)
    await built.sync_directory()
    item = {
        "external_id": "t-1",
        "source": "test",
        "metric": "nps",
        "score": 2,
        "touchpoint": "support-phone",
        "comment": "Waited an hour on hold",
        "customer": {"id": "c-1", "name": "Ada Lovelace", "email": "ada@example.com"},
    }
    async with transaction(built.sessions) as session:
        [result] = await ingest_items(session, ingestor_for(built.config), [item], now=clock())
    assert result.case == "CX-1"
    try:
        yield built
    finally:
        await built.close()


def console_for(runtime: Runtime, *, user: str = MANAGER) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    clock = runtime.clock if isinstance(runtime.clock, ManualClock) else None
    return Console(runtime, actor_for(runtime.config, "console", user), out=out, clock=clock), out


def take(out: io.StringIO) -> str:
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text


async def test_slash_prefix_cx_prefix_and_bare_verbs_are_one_grammar(demo_runtime: Runtime) -> None:
    admin, admin_out = console_for(demo_runtime, user=ADMIN)
    assert await admin.handle("/cx team link support")  # admins only (issue #11)
    assert "now receives support's case cards and digests" in take(admin_out)
    console, out = console_for(demo_runtime)

    assert await console.handle("cx ack CX-1")
    printed = take(out)
    assert printed.startswith("CX-1 acknowledged\n")
    assert "#console · case card · CX-1 · NPS 2 at support-phone" in printed  # first time in this channel
    assert "State:      acknowledged · SLA: resolve within" in printed
    assert "  ↳ #console CX-1 thread: Acknowledged by @support-manager" in printed

    # Nothing changed, nothing posted.
    assert await console.handle("ack CX-1")
    assert take(out) == "CX-1 was already acknowledged by @support-manager\n"

    assert await console.handle("/cx note CX-1 called back, sending a voucher")
    printed = take(out)
    assert "#console · card updated · CX-1" in printed  # Slack would update the card in place
    assert "CX-1 thread: @support-manager: called back, sending a voucher" in printed


async def test_digest_preview_is_the_grammar_verb_and_a_shortcut(demo_runtime: Runtime) -> None:
    console, out = console_for(demo_runtime)
    await console.handle("/cx digest support preview")
    verb = take(out)
    assert verb.startswith(
        "┌─ preview of #support, only you see this · daily digest\n│ CX digest · Customer Support"
    )
    await console.handle(":digest")  # the person's own team
    assert take(out) == verb
    await console.handle(":digest nowhere")
    assert "'nowhere' is not a team" in take(out)


async def test_mistakes_are_answered_with_the_usage(demo_runtime: Runtime) -> None:
    console, out = console_for(demo_runtime, user="U0NOBODY1")
    await console.handle("ack")
    assert take(out).startswith("✗ `ack` needs a case id such as CX-42. Usage: /cx ack CX-42")
    await console.handle("ack CX-1")
    assert take(out).startswith("✗ Not allowed: only managers of support")
    await console.handle(":frobnicate")
    assert "unknown console command :frobnicate" in take(out)
    await console.handle(":advance soon")
    assert "is not a duration" in take(out)


async def test_advance_without_the_demo_clock_is_refused(settings: Settings, example_config: Config) -> None:
    runtime = Runtime.build(settings=settings, config=example_config)
    try:
        console, out = console_for(runtime)
        await console.handle(":advance 1d")
        assert "this console runs on real time" in take(out)
    finally:
        await runtime.close()


async def test_advancing_the_clock_fires_the_escalation_and_posts_the_digest(demo_runtime: Runtime) -> None:
    admin, _ = console_for(demo_runtime, user=ADMIN)
    await admin.handle("/cx team link support")
    console, out = console_for(demo_runtime)
    await console.handle(":advance 2h")  # support acknowledges within 30 min; its digest is at 09:00
    printed = take(out)
    assert "── Tue 17 Nov 2026 08:20 UTC ──" in printed  # the step at which something was delivered
    assert "CX-1 thread: Not acknowledged yet: escalates in" in printed
    assert "ESCALATION · direct message to @support-manager" in printed
    assert "CX-1 (Customer Support) is not acknowledged" in printed
    assert (
        "#console · daily digest" in printed and "CX digest · Customer Support · Mon 16 Nov 2026" in printed
    )
    assert printed.rstrip().endswith("message(s) posted.")
    assert demo_runtime.clock() == datetime(2026, 11, 17, 10, 0, tzinfo=UTC)

    await console.handle(":advance 2h")  # the same digest is never posted twice
    assert "daily digest" not in take(out)


async def test_the_prompt_leaves_with_status_0_on_quit_and_on_end_of_input(demo_runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()

    def run(coroutine: Any) -> Any:
        """What the command line does with its own loop; here the test's loop runs the coroutine."""
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    for lines in (["list new", ":quit", "never read"], ["list new"]):
        console, out = console_for(demo_runtime)
        feed = iter(lines)

        def read(prompt: str, feed: Iterator[str] = feed) -> str:
            assert prompt == PROMPT
            try:
                return next(feed)
            except StopIteration:
                raise EOFError from None

        status = await loop.run_in_executor(
            None, lambda console=console, read=read: repl(console, run=run, read=read)
        )
        assert status == 0
        assert "CX-1 [new]" in take(out)
        assert next(feed, None) == ("never read" if len(lines) == 3 else None)


def test_the_demo_clock_only_moves_forward() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.advance(timedelta(hours=2)) == datetime(2026, 1, 1, 2, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.advance(timedelta(minutes=-1))
    with pytest.raises(ValueError):
        clock.set(datetime(2025, 12, 31, tzinfo=UTC))
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))


def test_the_command_line_refuses_bad_console_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cxbot.cli import main
    from handlers.console import run_console

    assert main(["console", "--db", str(tmp_path / "x.db")], console=run_console) == 2
    assert "--db is for --demo" in capsys.readouterr().err
    assert main(["console", "--demo", "--db", str(tmp_path / "x.db")], console=None) == 2
    assert "no console adapter was wired in" in capsys.readouterr().err
    missing = tmp_path / "nowhere.yaml"
    assert main(["console", "--demo", "--config", str(missing)], console=run_console) == 2
    assert "file not found" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()
