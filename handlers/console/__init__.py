"""The console: a shell chat adapter, the third platform on the same core (design.md §5).

Same shape as `handlers/slack`: `commands` (lines typed at a prompt, through the one `/cx` grammar),
`renderers` (case cards, thread lines, escalation notices, digests as terminal text) and `notifier`
(the outbox's way to the terminal). :func:`run_console` is what `bot.py` hands to `cxbot.cli`.
"""

from __future__ import annotations

from handlers.console.app import run_console

__all__ = ["run_console"]
