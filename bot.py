#!/usr/bin/env python3
"""cxbot's entry point: wires the platform packages into the core and runs a command-line verb.

`python bot.py serve | console | check-config | db upgrade | import | sync | digest | slack-manifest |
teams-manifest`
(see README.md).
"""

from __future__ import annotations

import sys

from cxbot.cli import main
from handlers import platform_routes, platform_services, slack_manifest, teams_package
from handlers.console import run_console

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            platforms=platform_routes,
            services=platform_services,
            console=run_console,
            manifest=slack_manifest,
            teams_package=teams_package,
        )
    )
