"""The set-based writer behind large imports: each costly ingest step in a few driver-level statements.

:class:`cxbot.ingest.service.Ingestor` decides what happens to each item (rounds for repeated keys,
updates of stored feedback, which items are negative); with `bulk=True` it hands the steps whose cost
grows with every row to :class:`BulkWriter`: the probe for stored keys, finding or creating customers,
inserting new feedback, and opening cases with their events. The portable path builds SQLAlchemy
statements and lets SQLAlchemy convert three timestamps and a JSON list per row. Here each row is a
plain tuple already in the form the driver stores (SQLite's timestamp text, JSON text), and a batch
goes as one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` per 30,000 values through
`exec_driver_sql` on SQLite. On PostgreSQL it goes by COPY: straight into the table with ids drawn
first where only another writer could conflict, else into a temporary table and one
`INSERT … SELECT`. With the lean row check, that halved the CSV import's CPU (docs/performance.md,
Ingest). What is written is the same, column for column: tests/test_ingest_bulk.py compares both
paths on both backends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any, NamedTuple

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from cxbot.cases.detractors import raise_priority
from cxbot.cases.sla import deadlines
from cxbot.db import custom_plans
from cxbot.ingest.common import (
    SYSTEM_ACTOR,
    CustomerIds,
    PendingItem,
    case_title,
    refresh_customers,
    routing_reason,
    sort_customer_rows,
    tombstones_of,
)
from cxbot.ingest.routing import Router, Verdict
from cxbot.ingest.schema import CustomerIn, FeedbackIn
from cxbot.models import Case, CaseEvent, Customer, Feedback, OutboxMessage
from cxbot.outbox.queue import queue_case_cards

#: Bound parameters per statement: under SQLite's 32,766 and PostgreSQL's 32,767.
MAX_PARAMETERS = 30_000
#: Distinct (metric, score, comment, team, touchpoint) judgements remembered per writer.
VERDICT_CACHE_SIZE = 20_000
_TAGS_CACHE_SIZE = 4_096
#: Customer ids whose tombstone (a SHA-256) is remembered: an import names the same customers again.
_TOMBSTONES_CACHE_SIZE = 100_000

FEEDBACK_COLUMNS = (
    "source",
    "external_id",
    "metric",
    "score",
    "raw_score",
    "comment",
    "touchpoint",
    "touchpoint_key",
    "team_key",
    "customer_id",
    "sentiment",
    "is_negative",
    "tags",
    "received_at",
    "created_at",
    "updated_at",
)
CASE_COLUMNS = (
    "feedback_id",
    "customer_id",
    "team_key",
    "touchpoint_key",
    "title",
    "routing_rule",
    "routing_reason",
    "created_by",
    "created_at",
    "updated_at",
    "ack_due_at",
    "resolve_due_at",
)
EVENT_COLUMNS = ("case_id", "at", "actor", "kind", "detail")
CUSTOMER_COLUMNS = ("external_id", "name", "email", "phone", "created_at", "updated_at")
#: The keys of `cxbot.outbox.queue.outbox_row`, in this order.
OUTBOX_COLUMNS = (
    "kind",
    "platform",
    "destination",
    "payload",
    "dedupe_key",
    "case_id",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)


def _scalar_defaults(table: Table, given: Sequence[str]) -> dict[str, Any]:
    """The model's constant Python-side defaults for the columns a raw INSERT leaves out.

    A Core INSERT fills these in; a driver-level one must send them itself, or it would store NULL
    where the portable path stores `new` or 0. A column with a computed default must be given.
    """
    defaults: dict[str, Any] = {}
    for column in table.columns:
        if column.name in given or column.default is None:
            continue
        default = column.default
        if getattr(default, "is_scalar", False):
            defaults[column.name] = default.arg  # type: ignore[attr-defined]
        elif not column.primary_key:
            raise RuntimeError(f"{table.name}.{column.name}: computed default; the bulk writer must set it")
    return defaults


_CASE_DEFAULTS = _scalar_defaults(Case.__table__, CASE_COLUMNS)  # type: ignore[arg-type]
_FEEDBACK_DEFAULTS = _scalar_defaults(Feedback.__table__, FEEDBACK_COLUMNS)  # type: ignore[arg-type]
_EVENT_DEFAULTS = _scalar_defaults(CaseEvent.__table__, (*EVENT_COLUMNS, "data"))  # type: ignore[arg-type]
_CUSTOMER_DEFAULTS = _scalar_defaults(Customer.__table__, CUSTOMER_COLUMNS)  # type: ignore[arg-type]
_OUTBOX_DEFAULTS = _scalar_defaults(OutboxMessage.__table__, OUTBOX_COLUMNS)  # type: ignore[arg-type]
# The lists above name every defaulted column.
if _FEEDBACK_DEFAULTS or _EVENT_DEFAULTS or _CUSTOMER_DEFAULTS or _OUTBOX_DEFAULTS:
    raise RuntimeError("bulk writer: a column with a default is missing from its column list")


class _StoredCustomer(NamedTuple):
    id: int
    external_id: str
    name: str | None
    email: str | None
    phone: str | None
    forgotten_at: Any


class _Driver:
    """SQL text and values the way one driver takes them (placeholders, timestamps, JSON)."""

    def __init__(self, dialect: Any) -> None:
        self.sqlite = dialect.name == "sqlite"
        self.postgresql = dialect.name == "postgresql"
        self._values: dict[tuple[int, int], str] = {}

    def when(self, value: datetime) -> Any:
        """A timestamp as `UtcDateTime` stores it: naive UTC text on SQLite, aware on PostgreSQL."""
        if value.tzinfo is not UTC:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(UTC)
        if self.sqlite:
            # SQLAlchemy's SQLite DATETIME format, "%Y-%m-%d %H:%M:%S.%f": isoformat without "+00:00".
            return value.isoformat(" ", "microseconds")[:-6]
        return value

    def placeholder(self, number: int) -> str:
        """The `number`-th (from 1) bound parameter of a statement."""
        return "?" if self.sqlite else f"${number}"

    def any_of(self, column: str, values: Sequence[str], *, number: int = 1) -> tuple[str, tuple[Any, ...]]:
        """`column IN (…)` and its parameters: one array on PostgreSQL, one placeholder each on SQLite.

        `number` is the position of the first of them among the statement's parameters.
        """
        if self.sqlite:
            return f"{column} IN ({', '.join('?' * len(values))})", tuple(values)
        return f"{column} = ANY(${number}::varchar[])", (list(values),)

    def values(self, rows: int, width: int) -> str:
        """`(?, ?), (?, ?)` or `($1, $2), ($3, $4)` for `rows` rows of `width` values."""
        key = (rows, width)
        text = self._values.get(key)
        if text is None:
            if self.sqlite:
                one = "(" + ", ".join("?" * width) + ")"
                text = ", ".join([one] * rows)
            else:
                text = ", ".join(
                    "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(rows)
                )
            self._values[key] = text
        return text


async def _insert_returning(
    connection: AsyncConnection,
    driver: _Driver,
    *,
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    conflict: str,
    returning: str,
    count: int | None = None,
) -> list[Any]:
    """Multi-row INSERT … ON CONFLICT (…) DO NOTHING RETURNING, in as few statements as the limits allow.

    `rows` may be a generator: the next statement's rows are built while the database runs the
    current statement (one at a time, in order), so the bot's thread and the database's overlap.
    PostgreSQL takes the rows through COPY instead (:func:`_copy_returning`), straight into the
    table when `count` says how many rows there are and that only another writer could conflict.
    """
    if driver.postgresql:
        return await _copy_returning(
            connection,
            table=table,
            columns=columns,
            rows=rows,
            conflict=conflict,
            returning=returning,
            count=count,
        )
    width = len(columns)
    per_statement = max(1, MAX_PARAMETERS // width)
    returned: list[Any] = []
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    tail = f" ON CONFLICT ({conflict}) DO NOTHING RETURNING {returning}"
    pending = iter(rows)
    running: asyncio.Future[list[Any]] | None = None
    try:
        while chunk := list(islice(pending, per_statement)):
            flat = tuple(chain.from_iterable(chunk))  # a tuple: a list would mean executemany
            statement = head + driver.values(len(chunk), width) + tail
            if running is not None:
                returned.extend(await running)
            running = asyncio.ensure_future(_fetch_all(connection, statement, flat))
            await asyncio.sleep(0)  # let it hand the statement to the database before building more
        if running is not None:
            returned.extend(await running)
    finally:
        if running is not None and not running.done():
            # Building the rows failed: the statement in flight ends before the transaction rolls back.
            await asyncio.gather(running, return_exceptions=True)
    return returned


async def _copy_returning(
    connection: AsyncConnection,
    *,
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    conflict: str,
    returning: str,
    count: int | None = None,
) -> list[Any]:
    """PostgreSQL: the rows COPY into a temporary table, then one INSERT … SELECT … ON CONFLICT.

    What lands is what the multi-row INSERT writes (same conflict rule, ids drawn in the rows' order:
    the SELECT reads the freshly filled table in the order COPY wrote it), but the server no longer
    parses 30,000 bound values per statement: a batch of 10,000 feedback rows went from 0.4-0.5 s to
    0.2 s (docs/performance.md, Ingest). The temporary table lives until the commit and is emptied
    after each use, so a second round in the same transaction finds it empty.

    `count`: the caller knows there are exactly that many rows and that none can conflict unless
    another writer stored the same key meanwhile. They are then copied straight into the table
    (:func:`_copy_direct`), and only if that meets a conflict do they take the way above.
    """
    pending = iter(rows)
    if count is not None:
        kept: list[tuple[Any, ...]] = []
        returned = await _copy_direct(
            connection,
            table=table,
            columns=columns,
            rows=pending,
            count=count,
            returning=returning,
            kept=kept,
        )
        if returned is not None:
            return returned
        pending = chain(kept, pending)
    staging = f"cxbot_copy_{table}"
    names = ", ".join(columns)
    await connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DROP"
        f" AS SELECT {names} FROM {table} WITH NO DATA"
    )
    await _copy(connection, staging, columns, pending)
    returned = await _fetch_all(
        connection,
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging}"
        f" ON CONFLICT ({conflict}) DO NOTHING RETURNING {returning}",
        (),
    )
    await connection.exec_driver_sql(f"TRUNCATE {staging}")
    return returned


#: `count` ids from a table's own sequence, in the order its default would have drawn them.
DRAW_IDS = "SELECT nextval(s) FROM pg_get_serial_sequence($1, 'id') AS s, generate_series(1, $2) ORDER BY 1"
_SAVEPOINT = "cxbot_copy_direct"


async def _copy_direct(
    connection: AsyncConnection,
    *,
    table: str,
    columns: Sequence[str],
    rows: Iterator[tuple[Any, ...]],
    count: int,
    returning: str,
    kept: list[tuple[Any, ...]],
) -> list[Any] | None:
    """PostgreSQL: COPY `count` rows straight into `table` with ids drawn first; what RETURNING would say.

    The server stores each row while the next ones are still being built and sent, instead of
    after the last one (the temporary table's way), and two statements and a scan go. The ids are
    the ones `INSERT … SELECT` would draw, one per row in order. A unique key another writer took
    first makes the COPY fail: it ran under a savepoint, so it is undone, the rows it consumed are
    in `kept`, and None says to take the ON CONFLICT way (the ids drawn are then skipped, as a
    rolled-back insert skips them).
    """
    from asyncpg import UniqueViolationError  # PostgreSQL only: asyncpg is an optional dependency

    wanted = [name.strip() for name in returning.split(",")]
    if wanted[0] != "id":
        raise ValueError(f"returning {returning!r}: the id comes first")
    positions = [columns.index(name) for name in wanted[1:]]
    # Through SQLAlchemy, which begins the transaction if nothing did yet; then the driver's own.
    ids = [ident for (ident,) in await _fetch_all(connection, DRAW_IDS, (table, count))]
    raw = (await connection.get_raw_connection()).driver_connection

    def numbered() -> Iterator[tuple[Any, ...]]:
        for ident, row in zip(ids, rows, strict=True):
            kept.append(row)
            yield (ident, *row)

    await raw.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        await raw.copy_records_to_table(table, records=numbered(), columns=["id", *columns])
    except UniqueViolationError:
        await raw.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        await raw.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        return None
    await raw.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    if not positions:
        return [(ident,) for ident in ids]
    return [(ident, *[row[i] for i in positions]) for ident, row in zip(ids, kept, strict=True)]


async def _copy(
    connection: AsyncConnection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """COPY rows (tuples in the driver's types) into a table, on the transaction's own connection."""
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(table, records=rows, columns=list(columns))


async def _insert(
    connection: AsyncConnection,
    driver: _Driver,
    *,
    table: str,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
) -> None:
    """Rows that cannot conflict and whose ids nobody needs: COPY on PostgreSQL, else multi-row INSERTs."""
    if driver.postgresql:
        await _copy(connection, table, columns, rows)
        return
    width = len(columns)
    per_statement = MAX_PARAMETERS // width
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        flat = tuple(chain.from_iterable(chunk))
        await connection.exec_driver_sql(head + driver.values(len(chunk), width), flat)


async def _fetch_all(connection: AsyncConnection, statement: str, parameters: tuple[Any, ...]) -> list[Any]:
    result = await connection.exec_driver_sql(statement, parameters)
    rows = result.cursor.fetchall()  # the driver's tuples: no Row objects for 10,000 rows
    result.close()
    return rows


class BulkWriter:
    """Writes new feedback and opens cases for one router; remembers verdicts, tags and SLA clocks."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.config = router.config
        self._verdicts: dict[tuple[Any, ...], Verdict] = {}
        self._tags: dict[tuple[str, ...], str] = {(): "[]"}
        self._tombstones: dict[str, dict[str, str]] = {}
        self._drivers: dict[str, _Driver] = {}

    def _driver(self, connection: AsyncConnection) -> _Driver:
        driver = self._drivers.get(connection.dialect.name)
        if driver is None:
            driver = self._drivers[connection.dialect.name] = _Driver(connection.dialect)
        return driver

    def _judge(self, p: PendingItem) -> Verdict:
        """Router.judge, remembered: it depends only on the metric, score, comment and route."""
        item, route = p.item, p.route
        if item.comment is None:
            return self.router.judge(item, route)
        key = (item.metric, item.score, item.comment, route.team, route.touchpoint_key)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self.router.judge(item, route)
            if len(self._verdicts) >= VERDICT_CACHE_SIZE:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict

    def _tags_json(self, tags: tuple[str, ...]) -> str:
        text = self._tags.get(tags)
        if text is None:
            text = json.dumps(list(tags))  # what SQLAlchemy's JSON type writes
            if len(self._tags) >= _TAGS_CACHE_SIZE:
                self._tags = {(): "[]"}
            self._tags[tags] = text
        return text

    def _tombstones_of(self, keys: list[str]) -> dict[str, str]:
        """`tombstones_of`, remembered per customer id."""
        cache = self._tombstones
        tombstones: dict[str, str] = {}
        for key in keys:
            known = cache.get(key)
            if known is None:
                known = tombstones_of([key])
                if len(cache) >= _TOMBSTONES_CACHE_SIZE:
                    cache.clear()
                cache[key] = known
            tombstones.update(known)
        return tombstones

    async def stored(self, session: AsyncSession, items: list[FeedbackIn]) -> list[FeedbackIn]:
        """The items whose (source, external id) is already stored: one index probe per source and batch."""
        connection = await session.connection()
        driver = self._driver(connection)
        by_source: dict[str, list[str]] = {}
        for item in items:
            by_source.setdefault(item.source, []).append(item.external_id)
        found: set[tuple[str, str]] = set()
        step = MAX_PARAMETERS - 1
        probe = f"SELECT external_id FROM feedback WHERE source = {driver.placeholder(1)} AND "
        # As in Ingestor._existing: a generic plan on a fresh, unanalysed table scans the source.
        async with custom_plans(session):
            for source, external_ids in by_source.items():
                for start in range(0, len(external_ids), step):
                    keys = external_ids[start : start + step]
                    where, parameters = driver.any_of("external_id", keys, number=2)
                    rows = await connection.exec_driver_sql(probe + where, (source, *parameters))
                    found.update((source, external_id) for (external_id,) in rows)
        if not found:
            return []
        return [item for item in items if (item.source, item.external_id) in found]

    async def customer_ids(
        self, session: AsyncSession, customers: list[CustomerIn], *, now: datetime
    ) -> CustomerIds:
        """Find or create customers by their external id, refreshing PII that the source sent.

        Erased customers are found by id or tombstone and stay erased, as in the portable writer.
        """
        connection = await session.connection()
        driver = self._driver(connection)
        latest: dict[str, CustomerIn] = {c.id: c for c in customers}
        keys = list(latest)
        tombstones = self._tombstones_of(keys)
        wanted = [*keys, *tombstones]
        known: list[_StoredCustomer] = []
        for start in range(0, len(wanted), MAX_PARAMETERS):
            where, parameters = driver.any_of("external_id", wanted[start : start + MAX_PARAMETERS])
            result = await connection.exec_driver_sql(
                f"SELECT id, external_id, name, email, phone, forgotten_at FROM customers WHERE {where}",
                parameters,
            )
            # The driver's tuples, as in _insert_returning.
            known.extend(_StoredCustomer(*row) for row in result.cursor.fetchall())
            result.close()
        found, stored = sort_customer_rows(known, tombstones, latest)
        ids = found.ids
        # Sorted, so two concurrent batches lock new customers in the same order and cannot deadlock.
        missing = [latest[k] for k in sorted(keys) if k not in ids]
        if missing:
            stamp = driver.when(now)
            returned = await _insert_returning(
                connection,
                driver,
                table="customers",
                columns=CUSTOMER_COLUMNS,
                rows=[(c.id, c.name, c.email, c.phone, stamp, stamp) for c in missing],
                conflict="external_id",
                returning="id, external_id",
                count=len(missing),  # none was found just now
            )
            ids.update({external_id: ident for ident, external_id in returned})
            raced = [c.id for c in missing if c.id not in ids]
            if raced:
                where, parameters = driver.any_of("external_id", raced)
                rows = await connection.exec_driver_sql(
                    f"SELECT id, external_id FROM customers WHERE {where}", parameters
                )
                ids.update({external_id: ident for ident, external_id in rows})
        await refresh_customers(session, stored, latest, now=now)
        return found

    async def insert(
        self,
        session: AsyncSession,
        fresh: list[PendingItem],
        customer_ids: dict[str, int],
        *,
        now: datetime,
        negatives: list[tuple[PendingItem, int, str]],
    ) -> list[PendingItem]:
        """Insert new feedback; return the items another writer inserted first (they become updates)."""
        connection = await session.connection()
        driver = self._driver(connection)
        when = driver.when
        stamp = when(now)
        json_tags = self._tags_json
        judge = self._judge
        verdicts: list[Verdict] = []

        def rows() -> Iterator[tuple[Any, ...]]:
            for p in fresh:
                item, route = p.item, p.route
                verdict = judge(p)
                verdicts.append(verdict)
                customer = item.customer
                yield (
                    item.source,
                    item.external_id,
                    item.metric,
                    item.score,
                    item.raw_score if item.raw_score != item.score else None,
                    item.comment,
                    item.touchpoint,
                    route.touchpoint_key,
                    route.team,
                    customer_ids.get(customer.id) if customer is not None else None,
                    verdict.sentiment,
                    verdict.negative,
                    json_tags(item.tags),
                    when(item.received_at),
                    stamp,
                    stamp,
                )

        returned = await _insert_returning(
            connection,
            driver,
            table="feedback",
            columns=FEEDBACK_COLUMNS,
            rows=rows(),
            conflict="source, external_id",
            returning="id, source, external_id",
            count=len(fresh),  # keys the probe did not find, each once in the round
        )
        inserted = {(source, external_id): ident for ident, source, external_id in returned}
        raced = []
        for p, verdict in zip(fresh, verdicts, strict=True):
            ident = inserted.get((p.item.source, p.item.external_id))
            if ident is None:
                raced.append(p)
                continue
            p.result.feedback_id = ident
            if verdict.negative and verdict.reason:
                negatives.append((p, ident, verdict.reason))
        return raced

    async def open_cases(
        self,
        session: AsyncSession,
        negatives: list[tuple[PendingItem, int, str]],
        customer_ids: dict[str, int],
        *,
        now: datetime,
    ) -> None:
        """One case per negative feedback, its `created` event and its card in the outbox."""
        connection = await session.connection()
        driver = self._driver(connection)
        stamp = driver.when(now)
        due: dict[str, tuple[Any, Any]] = {}
        defaults = tuple(_CASE_DEFAULTS.values())
        rows = []
        team_of: dict[int, str] = {}
        for p, feedback_id, why in negatives:
            route = p.route
            team = route.team
            if team not in due:
                ack_due, resolve_due = deadlines(self.config, team=team, start=now)
                due[team] = (driver.when(ack_due), driver.when(resolve_due))
            ack_due, resolve_due = due[team]
            customer = p.item.customer
            team_of[feedback_id] = team
            rows.append(
                (
                    feedback_id,
                    customer_ids.get(customer.id) if customer is not None else None,
                    team,
                    route.touchpoint_key,
                    case_title(p.item, route),
                    route.rule,
                    routing_reason(why, route),
                    SYSTEM_ACTOR,
                    stamp,
                    stamp,
                    ack_due,
                    resolve_due,
                    *defaults,
                )
            )
        # Feedback this transaction inserted can have no case yet; an updated one may.
        inserted = all(p.result.status == "created" for p, _, _ in negatives)
        returned = await _insert_returning(
            connection,
            driver,
            table="cases",
            columns=(*CASE_COLUMNS, *_CASE_DEFAULTS),
            rows=rows,
            conflict="feedback_id",
            returning="id, feedback_id, routing_reason",
            count=len(rows) if inserted else None,
        )
        if not returned:
            return
        # The portable path numbers events in the order the cases came back; do the same.
        opened = {feedback_id: case_id for case_id, feedback_id, _ in returned}
        if inserted:  # every case is new, and so is its feedback, received when the item says
            received = {feedback_id: p.item.received_at for p, feedback_id, _ in negatives}
            customer_of = {row[0]: row[1] for row in rows}
            await raise_priority(
                session,
                config=self.config,
                case_ids=(),
                now=now,
                opened=[(c, customer_of[f], received[f]) for c, f, _ in returned],
            )
        else:
            await raise_priority(session, config=self.config, case_ids=list(opened.values()), now=now)
        events = [(case_id, stamp, SYSTEM_ACTOR, "created", reason) for case_id, _, reason in returned]
        await _insert(connection, driver, table="case_events", columns=EVENT_COLUMNS, rows=events)
        await queue_case_cards(
            session, [(c, team_of[f]) for f, c in opened.items()], now=now, write=self.write_outbox
        )
        for p, feedback_id, _ in negatives:
            case_id = opened.get(feedback_id)
            if case_id is not None:
                p.result.case = f"CX-{case_id}"

    async def write_outbox(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """The `OutboxWriter` of a bulk import: the rows `queue_case_cards` chose, COPY on PostgreSQL.

        Same `ON CONFLICT (dedupe_key) DO NOTHING` as the portable writer, ids in the rows' order,
        the payload as the JSON text SQLAlchemy's JSON type writes.
        """
        connection = await session.connection()
        driver = self._driver(connection)
        when = driver.when
        dumps = json.dumps
        await _insert_returning(
            connection,
            driver,
            table="outbox",
            columns=OUTBOX_COLUMNS,
            rows=[
                (
                    row["kind"],
                    row["platform"],
                    row["destination"],
                    dumps(row["payload"]),
                    row["dedupe_key"],
                    row["case_id"],
                    row["status"],
                    row["attempts"],
                    when(row["next_attempt_at"]),
                    when(row["created_at"]),
                )
                for row in rows
            ],
            conflict="dedupe_key",
            returning="id",
            count=len(rows),  # the first cards of cases opened in this transaction
        )
