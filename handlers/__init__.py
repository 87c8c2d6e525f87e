"""The chat platform packages (Slack, Microsoft Teams), and the console beside them.

Each turns platform requests into core commands and renders core results back, and exposes one
`cxbot.platform.Platform` as `PLATFORM` in its `platform` module. `PLATFORMS` lists them; they are
imported when `serve` asks for them, so the console runs without the `serve` extra's libraries.
"""

from __future__ import annotations

from importlib import import_module

from cxbot.platform import Platform

PLATFORMS: tuple[str, ...] = ("handlers.slack.platform", "handlers.teams.platform")


def load_platforms() -> list[Platform]:
    """The platforms of `PLATFORMS`, imported now."""
    return [import_module(name).PLATFORM for name in PLATFORMS]
