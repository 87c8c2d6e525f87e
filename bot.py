#!/usr/bin/env python3
"""cxbot's entry point and composition root: wires the platform packages into the core and runs a
command-line verb.

`python bot.py serve | console | check-config | db upgrade | import | sync | digest | slack-manifest |
teams-manifest` (see README.md).
"""

from __future__ import annotations

import sys

from cxbot.cli import main
from handlers import load_platforms
from handlers.console import run_console
from handlers.slack.manifest import branded_manifest
from handlers.teams.manifest import app_package

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            platforms=load_platforms,
            console=run_console,
            manifest=branded_manifest,
            teams_package=app_package,
        )
    )
