"""The CSV importer's lean row check: a plain, valid row becomes a `FeedbackIn` in a few lookups.

The portable way turns each row into the dict `POST /feedback` takes and runs
:func:`cxbot.ingest.schema.validate_item` on it, which is about half of an import's Python time. Most
rows of a survey export are unremarkable: a known metric, a score spelled `7`, short text, an ISO date.
:class:`LeanRows` accepts exactly those and builds the same `FeedbackIn` directly; for anything else
(a blank required field, `7.0`, a legacy CES scale, an over-long value, an unreadable date) it returns
None and the row takes the portable way, which also writes its error message. So the lean check
can only be faster, never different: tests/test_ingest_bulk.py checks it against the portable way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cxbot import limits
from cxbot.ingest.schema import (
    MAX_COMMENT_CHARS,
    MAX_ID_CHARS,
    MAX_SOURCE_CHARS,
    MAX_TAGS,
    METRICS,
    SCORE_RANGES,
    CustomerIn,
    FeedbackIn,
    ItemError,
    parse_timestamp,
)

_CACHE_LIMIT = 100_000
#: Customer fields: (name in CustomerIn, longest value accepted).
_CUSTOMER_LIMITS = {"id": MAX_ID_CHARS, "name": MAX_ID_CHARS, "email": 320, "phone": 40}
#: The score spellings taken as they are; others ("7.0", " 7 ", "1e1") go the portable way.
_SCORES = {
    metric: {str(value): float(value) for value in range(low, high + 1)}
    for metric, (low, high) in SCORE_RANGES.items()
}


_UNSEEN = object()
_INVALID = object()  # a customer only the portable way can report on


class _Portable(Exception):
    """This value (or this file's constants, for every row) needs the portable path."""


def _encodable(value: str | None) -> None:
    """A `--set` value comes from the command line and may hold a lone surrogate: the portable path."""
    if value is not None and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Portable from None


def _clean(value: str, limit: int) -> str | None:
    """`_text` for text read from a UTF-8 file: stripped, blank is None; None also for anything doubtful.

    Raises _Portable for a value the portable check would reject (too long, NUL). Text decoded as
    strict UTF-8 cannot hold a lone surrogate, so that check has nothing to find here.
    """
    text = value.strip()
    if not text:
        return None
    if len(text) > limit or "\x00" in text:
        raise _Portable
    return text


class LeanRows:
    """Row → FeedbackIn for one file's mapping, or None when the row must take the portable way."""

    def __init__(
        self,
        *,
        width: int,
        columns: dict[str, int],
        base: dict[str, Any],
        base_customer: dict[str, str],
        default_source: str,
        parse_date: Callable[[str], str],
        tag_split: re.Pattern[str],
    ) -> None:
        self.width = width
        self.enabled = True
        self._parse_date = parse_date
        self._tag_split = tag_split
        self._dates: dict[str, datetime | None] = {}
        self._tags: dict[str, tuple[str, ...] | None] = {}
        self._customers: dict[tuple[str, ...], Any] = {}
        get = columns.get
        self.metric = get("metric")
        self.score = get("score")
        self.comment = get("comment")
        self.touchpoint = get("touchpoint")
        self.source = get("source")
        self.received_at = get("received_at")
        self.tags = get("tags")
        self.scale = get("scale")
        self.external_id = get("external_id")
        self.customer = [(key, get(f"customer_{key}")) for key in _CUSTOMER_LIMITS]
        self.customer = [(key, index) for key, index in self.customer if index is not None]
        self.base_customer = base_customer
        self.default_source = default_source
        try:
            self._constants(base)
        except _Portable:
            self.enabled = False

    def _constants(self, base: dict[str, Any]) -> None:
        """Check the `--set` values once; a doubtful one sends every row the portable way."""
        # A constant scale or score is rare and has corner cases (`--set score=` is not "no score");
        # without received_at each row gets the moment its batch is stored, which is not known yet.
        if "scale" in base or "score" in base or (self.received_at is None and "received_at" not in base):
            raise _Portable
        self.metric_constant = base.get("metric")
        if self.metric is None and self.metric_constant not in METRICS:
            raise _Portable
        for value in (base.get("source"), base.get("comment"), base.get("touchpoint")):
            _encodable(value)
        for value in self.base_customer.values():
            _encodable(value)
        self.comment_constant = _clean(base.get("comment") or "", MAX_COMMENT_CHARS)
        self.touchpoint_constant = _clean(base.get("touchpoint") or "", MAX_ID_CHARS)
        self.source_constant = _clean(base.get("source") or "", MAX_SOURCE_CHARS) or self.default_source
        when = base.get("received_at")
        self.received_constant = None if when is None else parse_timestamp(when)
        tags = base.get("tags")
        self.tags_constant = () if tags is None else self._tag_tuple(tags)
        if self.tags_constant is None:
            raise _Portable

    @staticmethod
    def _tag_tuple(tags: list[str]) -> tuple[str, ...] | None:
        if len(tags) > MAX_TAGS:
            return None
        kept = tuple(tag.strip() for tag in tags if tag.strip())
        if any(limits.text_problem(tag, limit=limits.MAX_TAG_CHARS) for tag in kept):
            return None  # the portable way says which tag and why
        return kept

    def _date(self, text: str) -> datetime | None:
        """What the portable way makes of a date cell: its ISO text, parsed again as UTC."""
        known = self._dates.get(text, False)
        if known is not False:
            return known  # type: ignore[return-value]
        try:
            # A date ISO 8601 reads as is comes back unchanged from the round trip through isoformat.
            value: datetime | None = parse_timestamp(text)
        except ItemError:
            try:
                value = parse_timestamp(self._parse_date(text))
            except (ValueError, ItemError):  # _RowError is a ValueError
                value = None
        if len(self._dates) >= _CACHE_LIMIT:
            self._dates.clear()
        self._dates[text] = value
        return value

    def _split_tags(self, cell: str) -> tuple[str, ...] | None:
        known = self._tags.get(cell, False)
        if known is not False:
            return known  # type: ignore[return-value]
        value = self._tag_tuple([tag for tag in self._tag_split.split(cell) if tag.strip()])
        if len(self._tags) >= _CACHE_LIMIT:
            self._tags.clear()
        self._tags[cell] = value
        return value

    def _customer(self, row: list[str]) -> CustomerIn | None:
        """The row's customer; the same cells (the constants never change) give the same answer."""
        cells = tuple([row[index].strip() for _, index in self.customer])
        known = self._customers.get(cells, _UNSEEN)
        if known is _UNSEEN:
            known = self._new_customer(cells)
            if len(self._customers) >= _CACHE_LIMIT:
                self._customers.clear()
            self._customers[cells] = known
        if known is _INVALID:
            raise _Portable
        return known  # type: ignore[return-value]

    def _new_customer(self, cells: tuple[str, ...]) -> CustomerIn | object | None:
        fields = dict(self.base_customer)
        for (key, _), value in zip(self.customer, cells, strict=True):
            if value:
                fields[key] = value
        if not fields:
            return None
        try:
            values = {
                name: _clean(fields[name], limit)
                for name, limit in _CUSTOMER_LIMITS.items()
                if name in fields
            }
        except _Portable:
            return _INVALID
        email = values.get("email")
        if values.get("id") is None or (email is not None and "@" not in email):
            return _INVALID
        return CustomerIn(
            id=values["id"] or "", name=values.get("name"), email=email, phone=values.get("phone")
        )

    def __call__(self, row: list[str]) -> FeedbackIn | None:
        """The row as validate_item would return it, or None: take the portable way."""
        if len(row) != self.width:
            return None
        try:
            return self._row(row)
        except _Portable:
            return None

    def _row(self, row: list[str]) -> FeedbackIn | None:
        metric = self.metric_constant if self.metric is None else row[self.metric].strip().lower()
        spelled = "" if self.score is None else row[self.score].strip()
        if metric == "comment":
            if spelled:
                return None
            score = None
        else:
            scores = _SCORES.get(metric)  # type: ignore[arg-type]
            if scores is None:
                return None
            score = scores.get(spelled)
            if score is None:
                return None
        if self.scale is not None and row[self.scale].strip():
            return None
        if self.source is None:
            source = self.source_constant
        else:
            source = _clean(row[self.source], MAX_SOURCE_CHARS) or self.default_source
        if self.external_id is None:
            # Same row, same id: re-importing a file without an id column finds duplicates, not new rows.
            digest = hashlib.blake2b("\x1f".join(row).encode(), digest_size=16).hexdigest()
            external_id: str | None = f"row-{digest}"
        else:
            external_id = _clean(row[self.external_id], MAX_ID_CHARS)
            if external_id is None:
                return None
        if self.comment is None:
            comment = self.comment_constant
        else:
            comment = _clean(row[self.comment], MAX_COMMENT_CHARS)
        if metric == "comment" and comment is None:
            return None
        if self.touchpoint is None:
            touchpoint = self.touchpoint_constant
        else:
            touchpoint = _clean(row[self.touchpoint], MAX_ID_CHARS)
        if self.received_at is None:
            received_at = self.received_constant
        else:
            text = row[self.received_at].strip()
            received_at = self._date(text) if text else None
            if received_at is None:
                return None
        if self.tags is None:
            tags: tuple[str, ...] | None = self.tags_constant
        else:
            tags = self._split_tags(row[self.tags])
            if tags is None:
                return None
        customer = self._customer(row) if self.customer or self.base_customer else None
        return FeedbackIn(
            source=source,
            external_id=external_id,  # type: ignore[arg-type]
            metric=metric,  # type: ignore[arg-type]
            score=score,
            comment=comment,
            touchpoint=touchpoint,
            customer=customer,
            received_at=received_at,  # type: ignore[arg-type]
            tags=tags,  # type: ignore[arg-type]
            raw_score=score,
        )
