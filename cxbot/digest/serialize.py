"""Digests as JSON and back, so the outbox row carries the digest itself, not only its text.

The claiming transaction builds the digest once and queues it (design.md §9); each platform's
notifier then renders its own form (Slack Block Kit, a chart) from the same numbers, however late the
delivery. Decoding follows the dataclasses' type hints, so the model stays the single description.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from cxbot.digest.model import LeadershipDigest, TeamDigest

#: Values JSON carries as they are, checked first: most of a digest's ~1,000 values are these.
_PLAIN = (str, int, float, bool, type(None))


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def to_json(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, dates/datetimes to ISO text, timedeltas to seconds."""
    if isinstance(value, _PLAIN):
        return value
    if hasattr(type(value), "__dataclass_fields__"):
        return {name: to_json(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


Decoder = Callable[[Any], Any]


def _as_is(value: Any) -> Any:
    return value


def _or_none(decode: Decoder) -> Decoder:
    return lambda value: None if value is None else decode(value)


@cache
def _decoder(kind: Any) -> Decoder:
    """How to turn the JSON of one type hint back into its value, worked out once per hint: a
    digest decodes ~1,000 values, and reading the hints for each cost ~4 ms of the worker's loop."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _decoder(options[0]) if len(options) == 1 else _or_none(_as_is)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return _or_none(lambda value: tuple(item(v) for v in value))
        items = [_decoder(a) for a in args]
        return _or_none(lambda value: tuple(d(v) for d, v in zip(items, value, strict=True)))
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        fields = [(f.name, _decoder(hints[f.name])) for f in dataclasses.fields(kind)]
        return _or_none(lambda value: kind(**{n: d(value[n]) for n, d in fields if n in value}))
    if kind is datetime:
        return _or_none(datetime.fromisoformat)
    if kind is date:
        return _or_none(date.fromisoformat)
    if kind is timedelta:
        return _or_none(lambda value: timedelta(seconds=value))
    if kind is float:
        return _or_none(float)
    return _as_is


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
    return _decoder(cls)(payload["data"])
