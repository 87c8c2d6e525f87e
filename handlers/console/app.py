"""Starts the console: who you are, the first screen, then the prompt.

`cxbot.cli` prepares the runtime (database migrated, demo seeded when asked) and calls
:func:`run_console` with a `run` callable that drives coroutines on its event loop, so the prompt
itself is a plain blocking `input()` with line editing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from sqlalchemy import select

from cxbot.authz import actor_for
from cxbot.clock import ManualClock
from cxbot.models import Case
from cxbot.runtime import Runtime
from handlers.console.commands import Console, default_user, describe, link_demo_channels, repl, stamp
from handlers.console.notifier import PLATFORM
from handlers.console.renderers import render_reply


def run_console(
    runtime: Runtime,
    *,
    run: Callable[[Any], Any],
    user: str | None = None,
    clock: ManualClock | None = None,
    demo: str | None = None,
    out: TextIO | None = None,
    read: Callable[[str], str] = input,
) -> int:
    """Run the console until `:quit` or end of input; returns the exit status (0)."""
    actor = actor_for(runtime.config, PLATFORM, user or default_user(runtime))
    console = Console(runtime, actor, out=out or sys.stdout, clock=clock)
    run(_first_screen(console, demo=demo))
    return repl(console, run=run, read=read)


async def _first_screen(console: Console, *, demo: str | None) -> None:
    runtime = console.runtime
    console.say(f"cxbot console · {runtime.config.slash_command} commands at the prompt, :help for help")
    console.say(f"You are {describe(runtime, console.actor)}; change with --as PERSON.")
    if demo is not None:
        admin = actor_for(runtime.config, PLATFORM, default_user(runtime))
        channels = await link_demo_channels(runtime, admin=admin)
        console.say(f"Demo data: {demo}.")
        if channels:
            console.say(f"Team channels on this console: {', '.join(channels)}.")
        console.say(
            f"Demo clock: {stamp(runtime.clock())}. It moves only when you say so: :advance 2h, :advance 1d."
        )
        console.say("")
        await console.preview_digest(None)
        console.say("")
        console.say(render_reply(await console.run("list overdue"), width=console.width()))
        newest = await _newest_new_case(runtime)
        console.say("")
        hint = f"show {newest} · ack {newest} · " if newest else ""
        console.say(f"Try: {hint}list new · :digest logistics · :advance 2h · :help · :quit")
    # Catch up as `serve` would on start: missed digests are recorded, due escalations fire.
    await console.pump()


async def _newest_new_case(runtime: Runtime) -> str | None:
    async with runtime.sessions() as session:
        ident = await session.scalar(
            select(Case.id).where(Case.state == "new").order_by(Case.id.desc()).limit(1)
        )
    return f"CX-{ident}" if ident else None
