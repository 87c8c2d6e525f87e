"""What counts as negative, and which team owns it (design.md §3).

Owner: the touchpoint's team; for a touchpoint that is missing or unknown, the first named keyword
rule that matches the comment; then the fallback team. Every decision carries the rule that made it
and a sentence saying why, which the case stores and the card shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from cxbot import markup
from cxbot.config import Config, RoutingRule, Touchpoint, slugify
from cxbot.ingest.schema import FeedbackIn
from cxbot.ingest.sentiment import compound

# The score from which a response counts as clearly positive; sentiment never adds cases above it.
POSITIVE_FROM = {"nps": 9.0, "csat": 4.0, "ces": 5.0}
METRIC_LABELS = {"nps": "NPS", "csat": "CSAT", "ces": "CES", "comment": "comment"}


@dataclass(frozen=True, slots=True)
class Route:
    team: str
    touchpoint_key: str | None
    rule: str
    reason: str
    known_touchpoint: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    negative: bool
    reason: str | None
    sentiment: float | None


class Router:
    """Routing and negativity judgement for one loaded configuration (compiled once)."""

    def __init__(self, config: Config, *, sentiment: Callable[[str], float] = compound) -> None:
        self.config = config
        self._touchpoints = config.touchpoint_index()
        self._rules: list[tuple[RoutingRule, re.Pattern[str]]] = [
            (rule, re.compile(r"\b(?:" + "|".join(re.escape(k) for k in rule.keywords) + r")\b", re.I))
            for rule in config.routing.rules
        ]
        self._sentiment = sentiment
        self._thresholds: dict[tuple[str, str | None, str | None], float | None] = {}

    def touchpoint(self, name: str | None) -> Touchpoint | None:
        """The configured touchpoint for a name as a source sent it (key, alias, any casing)."""
        if not name:
            return None
        return self._touchpoints.get(name.lower()) or self._touchpoints.get(slugify(name))

    def route(self, *, touchpoint: str | None, comment: str | None) -> Route:
        """Decide the owning team and record why."""
        known = self.touchpoint(touchpoint)
        if known is not None:
            return Route(
                team=known.team,
                touchpoint_key=known.key,
                rule=f"touchpoint:{known.key}",
                reason=f"touchpoint {known.key!r} is owned by {known.team}",
                known_touchpoint=True,
            )
        # The reason is neutral text (thread lines, `show`): the sender's words go in as a literal.
        why = f"unknown touchpoint {markup.plain(touchpoint)!r}" if touchpoint else "no touchpoint"
        if comment:
            for rule, pattern in self._rules:
                match = pattern.search(comment)
                if match:
                    return Route(
                        team=rule.team,
                        touchpoint_key=None,
                        rule=f"rule:{rule.name}",
                        reason=f"{why}; rule {rule.name!r} matched {match.group(0)!r}",
                        known_touchpoint=False,
                    )
        fallback = self.config.routing.fallback_team
        return Route(
            team=fallback,
            touchpoint_key=None,
            rule="fallback",
            reason=f"{why}; no rule matched, so the fallback team {fallback} owns it",
            known_touchpoint=False,
        )

    def threshold(self, metric: str, *, team: str, touchpoint: str | None) -> float | None:
        key = (metric, team, touchpoint)
        if key not in self._thresholds:
            self._thresholds[key] = self.config.threshold(metric, team=team, touchpoint=touchpoint)
        return self._thresholds[key]

    def judge(self, item: FeedbackIn, route: Route) -> Verdict:
        """Is this negative? Scores decide; negative text only adds passive and comment-only items."""
        label = METRIC_LABELS[item.metric]
        if item.score is not None:
            limit = self.threshold(item.metric, team=route.team, touchpoint=route.touchpoint_key)
            if limit is not None and item.score <= limit:
                return Verdict(True, f"{label} {item.score:g} is at or below {limit:g}", None)
            if item.score >= POSITIVE_FROM[item.metric]:
                return Verdict(False, None, None)
        settings = self.config.sentiment
        if not settings.enabled or not item.comment:
            return Verdict(False, None, None)
        value = self._sentiment(item.comment)
        if value < settings.negative_below:
            what = "comment" if item.score is None else f"passive {label} {item.score:g}"
            return Verdict(True, f"negative text (sentiment {value:.2f}) on a {what}", value)
        return Verdict(False, None, value)
