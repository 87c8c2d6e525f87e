"""Bulk CSV import (`python bot.py import FILE.csv --map field=column ...`, design.md §5 and §11).

Rows become the same plain dicts `POST /feedback` takes and go through
:func:`cxbot.ingest.service.ingest_items`, so a CSV row is validated, deduplicated, routed and turned
into a case exactly like an HTTP item. The file is read as a stream and stored in batches, one
transaction each, so a 50k-row export never sits in memory and a broken row costs only itself: it is
reported with its physical line number and skipped.

By default (`ImportOptions.bulk`) a plain row skips the dict: the lean check in
:mod:`cxbot.ingest.csv_lean` builds the validated item directly, and the batch is written by the
set-based :mod:`cxbot.ingest.bulk`. The stored rows, the counts and the errors are the same as on the
portable way, about twice as fast.

Two rules keep a re-import harmless: a file without an id column gets ids derived from each row's
values (the same row is a duplicate, not a new response), and dates are never guessed (01/02/2023
needs `--date-format`, because reading it the wrong way round moves a response by a month).
"""

from __future__ import annotations

import asyncio
import csv
import gc
import hashlib
import io
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cxbot.db import transaction
from cxbot.ingest.csv_lean import LeanRows
from cxbot.ingest.schema import METRICS, ItemError, parse_timestamp
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.runtime import Runtime

#: Fields a `--map` or `--set` may name.
FIELDS = (
    "external_id",
    "source",
    "metric",
    "score",
    "comment",
    "touchpoint",
    "received_at",
    "customer_id",
    "customer_name",
    "customer_email",
    "customer_phone",
    "tags",
    "scale",
)
_CUSTOMER_FIELDS = {
    "customer_id": "id",
    "customer_name": "name",
    "customer_email": "email",
    "customer_phone": "phone",
}

#: Tried after ISO 8601 and `--date-format`. Only formats that cannot be misread: a month name, or the
#: year first. 01/02/2023 is deliberately absent: day-first and month-first are both common, and a
#: wrong guess would silently move a response by months.
FALLBACK_DATE_FORMATS = ("%d-%b-%y", "%d-%b-%Y", "%Y-%m-%d %H:%M:%S")

#: `feedback.source` is a VARCHAR(64); PostgreSQL would reject a longer one for the whole batch.
MAX_SOURCE_CHARS = 64

_TAG_SPLIT = re.compile(r"[;,]")
_DATE_CACHE_LIMIT = 100_000
_YIELD_EVERY = 32
_TICK_EVERY = 1024  # a multiple of _YIELD_EVERY
#: Allocations between collections of the youngest generation during an import (Python's default: 700).
_GC_YOUNG_THRESHOLD = 20_000


class ImportUsageError(ValueError):
    """The mapping, the options or the file cannot work (the command line exits with status 2).

    Raised before any row is written, except when a file stops being UTF-8 part way: the batches
    before that point are kept, and importing the converted file again adds only the rest.
    """


@dataclass(slots=True, kw_only=True)
class ImportOptions:
    """How columns become feedback fields; mirrors the `import` verb's options."""

    mapping: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    date_format: str | None = None
    #: Rows per transaction. Large: SQLite writes every page a transaction touched to its log at
    #: commit, and the five feedback indexes make that most of the pages (docs/performance.md).
    batch_size: int = 10_000
    open_cases: bool = True
    progress: bool = False
    #: The set-based writer and the lean row check; False takes each row through the portable path
    #: (`validate_item`, SQLAlchemy statements), which stores exactly the same rows, only slower.
    bulk: bool = True


@dataclass(slots=True)
class ImportReport:
    """What an import did, counted per row; `errors` are (line number in the file, reason)."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    duplicate: int = 0
    cases: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def stored(self) -> int:
        """Rows that landed, whether new, changed or already there."""
        return self.created + self.updated + self.duplicate

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{self.rows} rows read: {self.created} created, {self.updated} updated, "
            f"{self.duplicate} duplicate, {len(self.errors)} errors; {self.cases} cases opened; "
            f"{self.rows_per_second:,.0f} rows/s ({self.seconds:.1f}s)"
        )


class _RowError(ValueError):
    """A row the importer itself rejects (column count, date) before schema validation."""


def _parse_date(text: str, *, date_format: str | None) -> datetime:
    """ISO 8601 first, then the operator's format, then the unambiguous fallbacks; never a guess."""
    try:
        return parse_timestamp(text)
    except ItemError:
        pass
    formats = (date_format, *FALLBACK_DATE_FORMATS) if date_format else FALLBACK_DATE_FORMATS
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    hint = f" nor --date-format {date_format!r}" if date_format else " (give its format with --date-format)"
    raise _RowError(f"received_at: {text!r} is not an ISO 8601 date{hint}")


class _Converter:
    """Turns one CSV row into a feedback dict; built once per file so each row is a few lookups."""

    def __init__(self, header: list[str], options: ImportOptions, *, default_source: str) -> None:
        self.width = len(header)
        self.date_format = options.date_format
        self._dates: dict[str, str] = {}
        columns = self._columns(header, options.mapping)
        constants = dict(options.constants)
        if options.source is not None:
            constants["source"] = options.source
        self._check_fields(columns, constants)

        self.base: dict[str, Any] = {}
        customer: dict[str, str] = {}
        for name, value in constants.items():
            if name in _CUSTOMER_FIELDS:
                customer[_CUSTOMER_FIELDS[name]] = value
            else:
                self.base[name] = self._constant(name, value)
        self.base_customer = customer

        get = columns.get
        self.metric = get("metric")
        self.score = get("score")
        self.received_at = get("received_at")
        self.tags = get("tags")
        self.scale = get("scale")
        self.external_id = get("external_id")
        #: Columns copied as they are: schema validation strips them and treats blank as absent.
        self.plain = [
            (name, columns[name]) for name in ("source", "comment", "touchpoint") if name in columns
        ]
        self.customer = [
            (_CUSTOMER_FIELDS[name], index) for name, index in columns.items() if name in _CUSTOMER_FIELDS
        ]
        self.hashed_id = self.external_id is None
        self.default_source = default_source
        #: The lean check for plain rows (ImportOptions.bulk), None for the portable way only.
        self.lean: LeanRows | None = None
        if options.bulk:
            lean = LeanRows(
                width=self.width,
                columns=columns,
                base=self.base,
                base_customer=self.base_customer,
                default_source=default_source,
                parse_date=self._date,
                tag_split=_TAG_SPLIT,
            )
            self.lean = lean if lean.enabled else None

    @staticmethod
    def _columns(header: list[str], mapping: dict[str, str]) -> dict[str, int]:
        positions: dict[str, list[int]] = {}
        for index, name in enumerate(header):
            positions.setdefault(name.strip(), []).append(index)
        unknown = sorted(set(mapping) - set(FIELDS))
        if unknown:
            raise ImportUsageError(
                f"--map: unknown field(s) {', '.join(map(repr, unknown))}; fields are: {', '.join(FIELDS)}"
            )
        columns: dict[str, int] = {}
        for name, column in mapping.items():
            found = positions.get(column.strip())
            if not found:
                raise ImportUsageError(
                    f"--map {name}={column}: no column {column!r} in the header "
                    f"(columns are: {', '.join(repr(h) for h in header)})"
                )
            if len(found) > 1:
                raise ImportUsageError(
                    f"--map {name}={column}: the header has {len(found)} columns named {column!r}"
                )
            columns[name] = found[0]
        return columns

    @staticmethod
    def _check_fields(columns: dict[str, int], constants: dict[str, str]) -> None:
        unknown = sorted(set(constants) - set(FIELDS))
        if unknown:
            raise ImportUsageError(
                f"--set: unknown field(s) {', '.join(map(repr, unknown))}; fields are: {', '.join(FIELDS)}"
            )
        both = sorted(set(columns) & set(constants))
        if both:
            raise ImportUsageError(f"{', '.join(both)}: both mapped to a column and set to a value; pick one")
        if "external_id" in constants:
            raise ImportUsageError(
                "external_id cannot be --set: every row would be the same feedback (map a column, or map "
                "none and each row gets an id derived from its values)"
            )
        if "metric" not in columns and "metric" not in constants:
            raise ImportUsageError(
                "metric: map a column (--map metric=COLUMN) or give every row one (--set metric=nps)"
            )
        metric = constants.get("metric", "").strip().lower()
        if metric and metric not in METRICS:
            raise ImportUsageError(
                f"--set metric={constants['metric']}: expected one of {', '.join(METRICS)}"
            )
        if metric and metric != "comment" and "score" not in columns and "score" not in constants:
            raise ImportUsageError(f"score: metric {metric} needs a score column (--map score=COLUMN)")
        source = constants.get("source")
        if source is not None and len(source.strip()) > MAX_SOURCE_CHARS:
            raise ImportUsageError(f"source: {source!r} is longer than {MAX_SOURCE_CHARS} characters")

    def _constant(self, name: str, value: str) -> Any:
        if name == "metric":
            return value.strip().lower()
        if name == "tags":
            return [tag for tag in _TAG_SPLIT.split(value) if tag.strip()]
        if name == "received_at":
            try:
                return self._date(value.strip())
            except _RowError as error:
                raise ImportUsageError(f"--set {error}") from None
        return value

    def _date(self, text: str) -> str:
        cached = self._dates.get(text)
        if cached is None:
            cached = _parse_date(text, date_format=self.date_format).isoformat()
            if len(self._dates) >= _DATE_CACHE_LIMIT:
                self._dates.clear()
            self._dates[text] = cached
        return cached

    def __call__(self, row: list[str]) -> dict[str, Any]:
        if len(row) != self.width:
            raise _RowError(f"expected {self.width} columns, found {len(row)}")
        item = dict(self.base)
        for name, index in self.plain:
            item[name] = row[index]
        if self.metric is not None:
            item["metric"] = row[self.metric].strip().lower() or None
        if self.score is not None:
            item["score"] = row[self.score].strip() or None
        if self.received_at is not None:
            text = row[self.received_at].strip()
            if not text:
                raise _RowError("received_at: blank; a historic response needs its date")
            item["received_at"] = self._date(text)
        if self.tags is not None:
            item["tags"] = [tag for tag in _TAG_SPLIT.split(row[self.tags]) if tag.strip()]
        if self.scale is not None:
            item["scale"] = row[self.scale].strip() or None
        if self.customer:
            customer = dict(self.base_customer)
            for key, index in self.customer:
                value = row[index].strip()
                if value:
                    customer[key] = value
            if customer:
                item["customer"] = customer
        elif self.base_customer:
            item["customer"] = dict(self.base_customer)
        if self.hashed_id:
            # Same row, same id: re-importing a file without an id column finds duplicates, not new rows.
            digest = hashlib.blake2b("\x1f".join(row).encode(), digest_size=16).hexdigest()
            item["external_id"] = f"row-{digest}"
        else:
            item["external_id"] = row[self.external_id]
        source = item.get("source")
        if source is not None and len(source.strip()) > MAX_SOURCE_CHARS:
            raise _RowError(f"source: longer than {MAX_SOURCE_CHARS} characters")
        return item


def default_source(path: Path) -> str:
    """`csv:<file name>`, cut to what the source column holds."""
    return f"csv:{path.name}"[:MAX_SOURCE_CHARS]


def _open(path: Path) -> io.TextIOWrapper:
    if not path.is_file():
        raise ImportUsageError(f"{path}: no such file")
    # utf-8-sig drops the byte-order mark spreadsheet programs put first; newline="" lets the csv
    # module see the line ends inside quoted fields, which is what keeps line numbers true.
    return open(path, encoding="utf-8-sig", newline="")


@contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep the garbage collector off the objects that existed before the import (modules, config).

    An import keeps tens of thousands of objects alive per batch, which sets off full collections;
    each walked every object of the process, about a quarter of the import's Python time (measured,
    docs/performance.md). Frozen objects are still collected once the import is over. The youngest
    generation is also collected less often: a row makes a dozen objects, nearly all short-lived.
    """
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], _GC_YOUNG_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _progress_bar(total: int, *, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="import", file=sys.stderr, leave=True)


async def import_csv(runtime: Runtime, path: Path | str, options: ImportOptions) -> ImportReport:
    """Import one CSV file; per-row problems are in the report, unusable mappings raise ImportUsageError.

    While one batch is being written, the next is read and converted: the database works in its
    own thread (aiosqlite) or server (PostgreSQL), so the two overlap instead of taking turns.
    Batches are still written one at a time and in file order.
    """
    path = Path(path)
    if options.batch_size < 1:
        raise ImportUsageError("batch size must be at least 1")
    report = ImportReport()
    started = time.perf_counter()
    with _open(path) as text, _older_objects_frozen():
        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportUsageError(f"{path}: empty file (expected a header row first)") from None
        except UnicodeDecodeError as error:
            raise ImportUsageError(f"{path}: not UTF-8 text ({error.reason}); save it as UTF-8") from None
        convert = _Converter(header, options, default_source=default_source(path))
        bar = _progress_bar(path.stat().st_size, enabled=options.progress)
        writing: asyncio.Task[None] | None = None
        tick = None if bar is None else (lambda: bar.update(text.buffer.tell() - bar.n))
        batches = _batches(reader, convert, report, size=options.batch_size, path=path, tick=tick)
        try:
            async with aclosing(batches):
                async for items, lines in batches:
                    if writing is not None:
                        await writing
                    if bar is not None:
                        bar.update(text.buffer.tell() - bar.n)
                    writing = asyncio.create_task(
                        _store(runtime, items, lines, report, options=options, source=convert.default_source)
                    )
            if writing is not None:
                await writing
            if bar is not None:
                bar.update(bar.total - bar.n)
        finally:
            if writing is not None and not writing.done():
                # Reading failed half way: let the batch in flight land, as every batch before it did.
                await asyncio.gather(writing, return_exceptions=True)
            if bar is not None:
                bar.close()
    report.errors.sort()
    report.seconds = time.perf_counter() - started
    return report


async def _batches(
    reader: Any,
    convert: _Converter,
    report: ImportReport,
    *,
    size: int,
    path: Path,
    tick: Callable[[], None] | None = None,
) -> AsyncIterator[tuple[list[Any], list[int]]]:
    """Yield (items, first line of each item's record); rows the converter rejects go to the report.

    An item is a `FeedbackIn` when the lean check took the row, else the dict validate_item checks.
    Gives the event loop a turn every few rows so the batch being written is never kept waiting,
    and calls `tick` every thousand rows or so (the progress bar), as batches are large.
    """
    lean = convert.lean
    items: list[Any] = []
    lines: list[int] = []
    end = reader.line_num  # the physical line the previous record ended on
    try:
        for row in reader:
            line = end + 1
            end = reader.line_num
            if not row:  # a blank line is not a row
                continue
            report.rows += 1
            if not report.rows % _YIELD_EVERY:
                await asyncio.sleep(0)
                if tick is not None and not report.rows % _TICK_EVERY:
                    tick()
            if lean is not None:
                item = lean(row)
                if item is not None:
                    items.append(item)
                    lines.append(line)
                    if len(items) >= size:
                        yield items, lines
                        items, lines = [], []
                    continue
            try:
                items.append(convert(row))
            except _RowError as error:
                report.errors.append((line, str(error)))
                continue
            lines.append(line)
            if len(items) >= size:
                yield items, lines
                items, lines = [], []
    except UnicodeDecodeError as error:
        raise ImportUsageError(
            # Text is decoded in blocks of a few kilobytes, so the bad byte is somewhere after `end`.
            f"{path}: not UTF-8 text after line {end} ({error.reason}); {report.rows} rows before it were "
            "read and are imported; convert the file to UTF-8 and import it again (rows already stored "
            "come back as duplicates)"
        ) from None
    except csv.Error as error:
        raise ImportUsageError(f"{path}:{reader.line_num}: unreadable CSV ({error})") from None
    if items:
        yield items, lines


async def _store(
    runtime: Runtime,
    items: list[Any],
    lines: list[int],
    report: ImportReport,
    *,
    options: ImportOptions,
    source: str,
) -> None:
    """Store one batch in one transaction and count what happened to each row."""
    async with transaction(runtime.sessions) as session:
        results = await ingest_items(
            session,
            ingestor_for(runtime.config),
            items,
            now=runtime.clock(),
            default_source=source,
            open_cases=options.open_cases,
            bulk=options.bulk,
        )
    for result in results:
        status = result.status
        if status == "created":
            report.created += 1
        elif status == "updated":
            report.updated += 1
        elif status == "duplicate":
            report.duplicate += 1
        else:
            report.errors.append((lines[result.index], result.reason or "rejected"))
        if result.case is not None:
            report.cases += 1
