"""The console's command source: lines typed at a prompt, run through the one `/cx` grammar.

`/cx ack CX-3`, `cx ack CX-3` and plain `ack CX-3` all go to :func:`cxbot.commands.dispatch.run_text`, exactly
as Slack's slash command does; the reply is printed for the caller. After every line the console does
what `serve` does in the background: the digest and escalation ticks, then one outbox round, whose
deliveries to console channels are printed by :class:`handlers.console.notifier.ConsoleNotifier`.

Lines starting with `:` talk to the console itself: `:help`, `:quit`, `:digest [team]` (a preview
for you only), `:now`, and in the demo `:advance 2h`: the demo clock moves to each instant a digest or
an SLA step falls due, ticking and delivering there, so digests post and escalations fire as they would.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import select

from cxbot.agenda import next_wakeup
from cxbot.authz import Actor, is_admin, teams_of
from cxbot.cases import escalation
from cxbot.clock import ManualClock
from cxbot.commands.dispatch import Reply, Where, run_text
from cxbot.config import parse_duration
from cxbot.digest import posting
from cxbot.models import TeamDestination
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from handlers.console.notifier import PLATFORM, ConsoleNotifier
from handlers.console.renderers import fit, render_reply, terminal_width, usage_lines

log = logging.getLogger("handlers.console")

PROMPT = "cx> "
DEFAULT_CHANNEL = "#console"
MIN_STEP = timedelta(minutes=1)
MAX_ADVANCE = timedelta(days=7)
QUIT = frozenset({":quit", ":q", ":exit", "exit", "quit"})

META_INTRO = "Console commands (everything else is a /cx command; the /cx is optional):"
META_HELP = [
    (":help", "this help, then the /cx verbs"),
    (":digest [team]", "short for /cx digest <team> preview: yesterday's digest, for you only"),
    (
        ":advance <time>",
        "demo only: move the clock, e.g. :advance 2h or :advance 1d (max 7d); digests post and "
        "escalations fire as they would over that time",
    ),
    (":now", "the clock"),
    (":quit", "leave (Ctrl-D too)"),
]
META_OUTRO = (
    "Case cards show the commands their buttons run, e.g. `ack CX-3`, `take CX-3`, `resolve CX-3 recovered`."
)


@dataclass(slots=True)
class Console:
    """One person at the terminal: their identity, the current channel, and the way out."""

    runtime: Runtime
    actor: Actor
    out: TextIO = field(default_factory=lambda: sys.stdout)
    clock: ManualClock | None = None
    #: Columns to lay out within, asked before each print: the terminal may have been resized.
    width: Callable[[], int] = terminal_width
    channel: str = DEFAULT_CHANNEL
    notifier: ConsoleNotifier = field(init=False)
    worker: OutboxWorker = field(init=False)
    _pending_marker: str | None = field(init=False, default=None)
    _sent: int = field(init=False, default=0)
    _deliveries: list[tuple[int | None, str]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.notifier = ConsoleNotifier(self._print_delivery, width=self.width)
        self.worker = OutboxWorker(self.runtime, {PLATFORM: self.notifier})

    # Output -----------------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """Print `text`, every line within the terminal's width."""
        self.out.write(fit(text, self.width()) + "\n")
        self.out.flush()

    def _print_delivery(self, case_id: int | None, text: str) -> None:
        self._deliveries.append((case_id, text))

    def _flush_deliveries(self) -> None:
        """Print what the outbox delivered, each case's card, thread lines and notices together."""
        if not self._deliveries:
            return
        if self._pending_marker:
            self.say(self._pending_marker)
            self._pending_marker = None
        groups: dict[object, list[str]] = {}
        for index, (case_id, text) in enumerate(self._deliveries):
            groups.setdefault(case_id if case_id is not None else ("post", index), []).append(text)
        self._deliveries.clear()
        for texts in groups.values():
            for text in texts:
                self.say(text)

    # Lines ------------------------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Run one typed line; False when the person asked to leave."""
        text = line.strip()
        if not text:
            return True
        if text.lower() in QUIT:
            return False
        if text.startswith(":"):
            await self._meta(text[1:].split())
        else:
            self.say(render_reply(await self.run(text), width=self.width()))
        await self.pump()
        return True

    async def run(self, text: str) -> Reply:
        """The text as a /cx command (with or without `/cx` or `cx` in front) for this person here."""
        slash = self.runtime.config.slash_command
        for prefix in (slash, slash.lstrip("/")):
            if text == prefix or text.startswith(prefix + " "):
                text = text[len(prefix) :]
                break
        where = Where(platform=PLATFORM, channel=self.channel)
        return await run_text(self.runtime, text, actor=self.actor, where=where)

    async def _meta(self, words: list[str]) -> None:
        verb = words[0].lower() if words else "help"
        if verb in ("help", "h", "?"):
            self.say(META_INTRO)
            self.say(usage_lines(META_HELP, width=self.width()))
            self.say(META_OUTRO)
            self.say(render_reply(await self.run("help"), width=self.width()))
        elif verb == "digest":
            await self.preview_digest(words[1] if len(words) > 1 else None)
        elif verb == "advance":
            await self._advance(" ".join(words[1:]))
        elif verb in ("now", "time", "clock"):
            self.say(f"It is {stamp(self.runtime.clock())}.")
        else:
            self.say(f"✗ unknown console command :{verb}; type :help")

    async def preview_digest(self, team_key: str | None) -> None:
        """`/cx digest [team] preview`: the digest as it would be posted, shown only here."""
        if team_key is None:
            mine = teams_of(self.runtime.config, self.actor)
            team_key = mine[0] if mine else self.runtime.config.teams[0].key
        self.say(render_reply(await self.run(f"digest {team_key} preview"), width=self.width()))

    async def _advance(self, amount: str) -> None:
        if self.clock is None:
            self.say("✗ :advance moves the demo clock; this console runs on real time (start it with --demo)")
            return
        try:
            delta = parse_duration(amount)
        except ValueError as error:
            self.say(f"✗ {error}. Usage: :advance 2h")
            return
        if not timedelta(minutes=1) <= delta <= MAX_ADVANCE:
            self.say("✗ advance between 1m and 7d at a time")
            return
        before = self._sent
        target = self.clock() + delta
        while self.clock() < target:
            # Straight to the next instant a digest or an SLA step may fall due (at least one step on).
            wakeup = await next_wakeup(self.runtime, after=self.clock(), until=target)
            self.clock.set(max(wakeup, min(self.clock() + MIN_STEP, target)))
            self._pending_marker = f"── {stamp(self.clock())} ──"
            await self.pump()
        self._pending_marker = None
        printed = self._sent - before
        self.say(f"Clock moved {amount} to {stamp(self.clock())}; {printed} message(s) posted.")

    # Background work, done in the foreground -----------------------------------------------------------

    async def pump(self) -> None:
        """What `serve` runs every minute: digests due, SLA warnings and escalations, then the outbox."""
        now = self.runtime.clock()
        for outcome in await posting.tick(self.runtime, now=now):
            log.info("digest %s %s: %s", outcome.scope, outcome.local_date, outcome.status)
        await escalation.tick(self.runtime, now=now)
        stats = await self.worker.run_once(now=now)
        self._sent += stats.sent
        self._flush_deliveries()


def stamp(moment: datetime) -> str:
    """`Tue 17 Nov 2026 08:00 UTC`: the demo clock as the console shows it."""
    return f"{moment.astimezone(UTC):%a %d %b %Y %H:%M} UTC"


async def link_demo_channels(runtime: Runtime, *, admin: Actor) -> list[str]:
    """Bind `#<team>` on the console to every team without a console channel, with `/cx team link`."""
    async with runtime.sessions() as session:
        linked = set(
            (
                await session.execute(
                    select(TeamDestination.team_key).where(TeamDestination.platform == PLATFORM)
                )
            ).scalars()
        )
    channels = []
    for team in runtime.config.teams:
        if team.key in linked:
            continue
        where = Where(platform=PLATFORM, channel=f"#{team.key}")
        reply = await run_text(runtime, f"team link {team.key}", actor=admin, where=where)
        if reply.ok:
            channels.append(where.channel or "")
        else:
            log.warning("could not link #%s: %s", team.key, reply.text)
    return channels


def default_user(runtime: Runtime) -> str:
    """Someone who may use every verb: the first admin, else the first team's first manager."""
    config = runtime.config
    if config.admins:
        return config.admins[0]
    for team in config.teams:
        if team.managers:
            return team.managers[0]
    return "console"


def describe(runtime: Runtime, actor: Actor) -> str:
    """`admin (admin)` or `support-manager (support)`: who the console acts as (a person, or an id)."""
    config = runtime.config
    roles = ["admin"] if is_admin(config, actor) else []
    roles += teams_of(config, actor)
    return f"{actor.user_id} ({', '.join(roles) or 'no team: many verbs will be refused'})"


def repl(
    console: Console,
    *,
    run: Callable[[Any], Any],
    read: Callable[[str], str] = input,
) -> int:
    """Read lines until `:quit` or end of input; each line runs to completion on the caller's loop."""
    with contextlib.suppress(ImportError):  # line editing and history for input(), where available
        import readline  # noqa: F401
    while True:
        try:
            line = read(PROMPT)
        except EOFError:
            console.say("")
            return 0
        except KeyboardInterrupt:
            console.say("")  # Ctrl-C drops the line being typed, as a shell does; :quit or Ctrl-D leave
            continue
        try:
            if not run(console.handle(line)):
                return 0
        except KeyboardInterrupt:
            console.say("(interrupted)")
