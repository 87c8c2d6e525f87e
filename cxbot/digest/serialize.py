"""Digests as JSON and back, so the outbox row carries the digest itself, not only its text.

The claiming transaction builds the digest once and queues it (design.md §9); each platform's
notifier then renders its own form (Slack Block Kit, a chart) from the same numbers, however late the
delivery. Decoding follows the dataclasses' type hints, so the model stays the single description.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from cxbot.digest.model import LeadershipDigest, TeamDigest


def to_json(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, dates/datetimes to ISO text, timedeltas to seconds."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _decode(options[0], value) if len(options) == 1 else value
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item) for item in value)
        return tuple(_decode(a, item) for a, item in zip(args, value, strict=True))
    if dataclasses.is_dataclass(kind):
        hints = _hints(kind)
        return kind(
            **{
                f.name: _decode(hints[f.name], value[f.name])
                for f in dataclasses.fields(kind)
                if f.name in value
            }
        )
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is date:
        return date.fromisoformat(value)
    if kind is timedelta:
        return timedelta(seconds=value)
    if kind is float:
        return float(value)
    return value


def slim_for_table(digest: LeadershipDigest) -> LeadershipDigest:
    """The leadership digest without what its side-by-side table never shows (daily points,
    comments, themes, annotations), so 50 teams make a small outbox row."""
    teams = tuple(
        dataclasses.replace(
            team,
            metrics=tuple(dataclasses.replace(m, daily=()) for m in team.metrics),
            negative_comments=(),
            themes=(),
            annotations=(),
        )
        for team in digest.teams
    )
    return dataclasses.replace(digest, teams=teams)


def digest_to_json(digest: TeamDigest | LeadershipDigest) -> dict[str, Any]:
    """The JSON form with its kind, for the outbox payload."""
    kind = "leadership" if isinstance(digest, LeadershipDigest) else "team"
    return {"kind": kind, "data": to_json(digest)}


def digest_from_json(payload: dict[str, Any]) -> TeamDigest | LeadershipDigest:
    """The digest back from :func:`digest_to_json`'s form."""
    cls = LeadershipDigest if payload["kind"] == "leadership" else TeamDigest
    return _decode(cls, payload["data"])
