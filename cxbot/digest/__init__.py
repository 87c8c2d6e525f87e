"""Daily CX digests (design.md §8): the model, how it is built, when it is due, and its text form.

- `model`: the platform-neutral dataclasses renderers read (`TeamDigest`, `LeadershipDigest`).
- `content`: building a team's digest from the database, bounded by the window.
- `schedule`: local days and send instants, DST-safe; pure.
- `themes`: recurring words and phrases of negative comments; pure.
- `text`: the plain-text renderer (`--dry-run`, console, tests).

Posting and exactly-once claiming live in `cxbot.scheduler`.
"""

from cxbot.digest.content import build_team_digest
from cxbot.digest.model import (
    CaseHealth,
    DayPoint,
    LeadershipDigest,
    MetricDigest,
    NegativeComment,
    TeamDigest,
    Theme,
)
from cxbot.digest.text import render_leadership_digest, render_team_digest

__all__ = [
    "CaseHealth",
    "DayPoint",
    "LeadershipDigest",
    "MetricDigest",
    "NegativeComment",
    "TeamDigest",
    "Theme",
    "build_team_digest",
    "render_leadership_digest",
    "render_team_digest",
]
