"""The bulk import path (lean row check + set-based writer) stores exactly what the portable path stores.

The same mixed file goes through `import_csv` twice on the same database, emptied in between: once
with `bulk=False` (each row as a dict through `validate_item`, SQLAlchemy statements per batch) and once
with `bulk=True`. Every row of every table the ingest writes is then compared as the driver returns it,
so a timestamp written in another text format or a JSON list spelled differently would show.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, text

from cxbot.config import Config
from cxbot.db import transaction
from cxbot.ingest.bulk import DRAW_IDS, BulkWriter
from cxbot.ingest.common import ItemResult, PendingItem
from cxbot.ingest.csv_import import ImportOptions, ImportReport, _Converter, _RowError, import_csv
from cxbot.ingest.routing import Router
from cxbot.ingest.schema import ItemError, validate_item
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.models import Base
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.support.clock import FrozenClock
from tests.support.databases import fresh_sqlite, postgres_admin_url, truncate_sql

SOURCE = "shop"
OPTIONS = ImportOptions(
    mapping={
        "external_id": "id",
        "metric": "metric",
        "score": "score",
        "comment": "comment",
        "touchpoint": "touchpoint",
        "received_at": "received_at",
        "customer_id": "customer",
        "customer_name": "name",
        "customer_email": "email",
        "tags": "tags",
        "scale": "scale",
    },
    source=SOURCE,
)
HEADER = "id,metric,score,comment,touchpoint,received_at,customer,name,email,tags,scale"
#: (line in the file, CSV record): every kind of row an export brings, good and broken.
ROWS = [
    (2, "r1,nps,10,Great service thanks,checkout,2026-10-01T10:00:00Z,c1,Ann,ann@example.com,web;vip,"),
    (3, "r2,nps,3,,checkout,2026-10-01T11:00:00+02:00,c2,,,,"),
    (
        4,
        'r3,nps,7,"Terrible service, I was charged twice. Awful and useless.",,2026-10-02 09:30:00,'
        "c3,Bo,bo@example.com,,",
    ),
    (5, "r4,nps,8,It was fine.,Somewhere Else,2026-10-02,c1,,,,"),
    (
        6,
        'r5,comment,,"The courier left my parcel in the rain, it was ruined. Horrible!",,01-Oct-26,'
        "c4,,,promo,",
    ),
    (7, "r6,csat,2,,Inbound,2026-10-03T08:00:00Z,c5,,,,"),
    (8, "r7,ces,2,,app,2026-10-03T09:00:00Z,,,,,"),
    (9, "r1,nps,10,Great service thanks,checkout,2026-10-01T10:00:00Z,c1,Ann,ann@example.com,web;vip,"),
    (10, "r2,nps,2,Still waiting for my refund,checkout,2026-10-01T11:00:00+02:00,c2,Cy,cy@example.com,,"),
    (11, "r8,nps,11,,checkout,2026-10-04T00:00:00Z,c6,,,,"),
    (12, "r9,nps,abc,,checkout,2026-10-04T00:00:00Z,c6,,,,"),
    (13, "r10,foo,5,,checkout,2026-10-04T00:00:00Z,c6,,,,"),
    (14, ",nps,5,,checkout,2026-10-04T00:00:00Z,c6,,,,"),
    (15, "r11,nps,5,,checkout,,c7,,,,"),
    (16, "r12,nps,5"),
    (17, "r13,nps,9,,checkout,2026-10-04T00:00:00Z,c8,Dee,not-an-email,,"),
    (18, 'r14,nps, 7.0 ,"Awful lounge,\nterrible food, rude staff",lounge,2026-10-05T00:00:00Z,c3,,,,'),
    (20, "r15,ces,2,,,2026-10-05T00:00:00Z,c9,,,,1-5-low-good"),
    (21, "e1,nps,9,ok,checkout,2026-09-01T00:00:00Z,c1,Ann,ann@example.com,,"),
    (22, "e2,nps,2,,checkout,2026-09-02T00:00:00Z,c2,,,,"),
    (23, "e3,csat,4,Could be faster,support-chat,2026-09-03T00:00:00Z,,,,,"),
    (24, "r16,nps,1,,website,2026-10-06T00:00:00Z,c10,Eve,eve@example.com,,"),
    (25, "r17,nps,0,Broken again,website,2026-10-07T00:00:00Z,c10,,,,"),
    (26, "r18,nps,2,,Shopzilla Related,2026-10-08T00:00:00Z,c10,,,,"),
    (27, "r19,nps,6,Quite bad,Unknown Place,2026-10-08T00:00:00Z,c11,,,,"),
    (
        28,
        "r2,nps,2,Still waiting for my refund,checkout,2026-10-01T11:00:00+02:00,c2,Cy,cy@example.com,late,",
    ),
    (29, 'r20,nps,9,,checkout,2026-10-08T00:00:00Z,,Nameless,," , ;",'),
    (30, "r21,NPS,5,,mobile-app,2026-10-06T00:00:00.123456Z,c12,,,,"),
    (31, "r22,csat,5,Excellent,support-chat,2026-10-06T00:00:00-05:00,c13,,,;vip;,"),
    (32, "r23,comment,,Cannot log in to the app at all. Useless and frustrating.,,2026-10-07T00:00:00Z,,,,,"),
    (33, f"r24,nps,7,{'x' * 10_001},checkout,2026-10-07T00:00:00Z,,,,,"),
    (34, "r25,csat,3,,Refund Related,2026-10-07T00:00:00Z,c14,Fay,fay@example.com,,"),
]
#: Already stored before the import, through the portable HTTP path: one the file repeats as it is, one
#: whose score drops to a detractor's, one the file adds a comment to, and c1 with other PII.
EXISTING = [
    {
        "external_id": "e1",
        "metric": "nps",
        "score": 9,
        "comment": "ok",
        "touchpoint": "checkout",
        "received_at": "2026-09-01T00:00:00Z",
        "customer": {"id": "c1", "name": "Ann", "email": "ann@example.com"},
    },
    {
        "external_id": "e2",
        "metric": "nps",
        "score": 9,
        "touchpoint": "checkout",
        "received_at": "2026-09-02T00:00:00Z",
        "customer": {"id": "c2", "name": "Old Name"},
    },
    {
        "external_id": "e3",
        "metric": "csat",
        "score": 4,
        "touchpoint": "support-chat",
        "received_at": "2026-09-03T00:00:00Z",
    },
]
#: The rows each path must refuse, by line (the reasons are compared between the paths).
BROKEN_LINES = [11, 12, 13, 14, 15, 16, 17, 29, 33]
TABLES = ("customers", "feedback", "cases", "case_events", "outbox")


def write_file(directory: Path) -> Path:
    path = directory / "mixed.csv"
    path.write_text(HEADER + "\n" + "\n".join(record for _, record in ROWS) + "\n", encoding="utf-8")
    return path


async def reset(runtime: Runtime) -> None:
    """Empty every table and restart the ids, then load the teams and touchpoints again."""
    async with runtime.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text(truncate_sql()))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.execute(table.delete())
    await runtime.sync_directory()


async def dump(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables ingest writes, as the driver returns them (no type conversion)."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with runtime.engine.connect() as connection:
        for table in TABLES:
            result = await connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")
            names = list(result.keys())
            out[table] = [dict(zip(names, row, strict=True)) for row in result.all()]
    return out


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL SQLAlchemy sends inside the block (a COPY goes by the driver, so it is not among them)."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", record)


@contextmanager
def statements_and_parameters(runtime: Runtime) -> Iterator[list[tuple[str, Any]]]:
    """As :func:`statements`, each with its parameters."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        sent.append((statement, parameters))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", record)


async def typed_dump(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables ingest writes, read back through the models' types (so comparable
    across backends); `cases.updated_at` is left out, as SQLAlchemy's onupdate takes the wall clock."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with runtime.engine.connect() as connection:
        for name in TABLES:
            table = Base.metadata.tables[name]
            rows = (await connection.execute(select(table).order_by(table.c.id))).mappings().all()
            out[name] = [
                {k: v for k, v in row.items() if (name, k) != ("cases", "updated_at")} for row in rows
            ]
    return out


def counts(report: ImportReport) -> tuple[Any, ...]:
    return (report.rows, report.created, report.updated, report.duplicate, report.cases, report.errors)


async def run_scenario(
    runtime: Runtime, path: Path, *, bulk: bool, batch: int
) -> tuple[ImportReport, ImportReport, dict[str, list[dict[str, Any]]]]:
    await reset(runtime)
    async with transaction(runtime.sessions) as session:
        results = await ingest_items(
            session, ingestor_for(runtime.config), EXISTING, now=runtime.clock(), default_source=SOURCE
        )
    assert [r.status for r in results] == ["created"] * len(EXISTING)
    options = replace(OPTIONS, bulk=bulk, batch_size=batch)
    first = await import_csv(runtime, path, options)
    again = await import_csv(runtime, path, options)
    return first, again, await dump(runtime)


@pytest.mark.parametrize("batch", [3, 1000])
async def test_bulk_import_writes_exactly_what_the_portable_path_writes(
    runtime: Runtime, tmp_path: Path, batch: int
) -> None:
    path = write_file(tmp_path)
    portable = await run_scenario(runtime, path, bulk=False, batch=batch)
    with statements_and_parameters(runtime) as sent:
        bulk = await run_scenario(runtime, path, bulk=True, batch=batch)
    if runtime.engine.dialect.name == "postgresql":  # the rows went through COPY, not bound values
        # Straight into the tables, their ids drawn first: no other writer raced this import, so
        # nothing needed ON CONFLICT, except the cases of the batch where e2's update opens one (its
        # feedback may have had a case); in batches of 3 the other batches' cases go straight in.
        drawn = {parameters[0] for statement, parameters in sent if statement == DRAW_IDS}
        assert drawn == {"customers", "feedback", "outbox", *(["cases"] if batch == 3 else [])}
        for table in ("customers", "feedback", "outbox"):
            assert not any(f"FROM cxbot_copy_{table}" in statement for statement, _ in sent), table
        assert any("FROM cxbot_copy_cases" in statement for statement, _ in sent)

    assert counts(bulk[0]) == counts(portable[0])
    assert counts(bulk[1]) == counts(portable[1])
    for table in TABLES:
        assert bulk[2][table] == portable[2][table], table

    # The scenario really covers what it claims to, so the comparison above is not of two empty sets.
    first, again, stored = bulk
    assert [line for line, _ in first.errors] == BROKEN_LINES
    assert [line for line, _ in again.errors] == BROKEN_LINES
    assert (first.created, first.updated, first.duplicate) == (17, 4, 2)
    # Again: r2's later versions win over its first, so only those rows differ from what is stored.
    assert (again.created, again.updated, again.cases) == (0, 2, 0)
    cases = stored["cases"]
    reasons = [c["routing_reason"] for c in cases]
    assert any(r.startswith("negative text") for r in reasons)  # a passive with a bad comment
    assert any(r.startswith("NPS 2 is at or below") for r in reasons)  # e2, opened by its update
    assert {c["routing_rule"] for c in cases} >= {"fallback", "rule:money-words", "rule:parcel-words"}
    assert any(c["priority"] == "high" for c in cases)  # c10, a repeat detractor
    created = [e for e in stored["case_events"] if e["kind"] == "created"]
    first_cards = [o for o in stored["outbox"] if o["dedupe_key"].endswith(":opened")]
    assert len(created) == len(cases) == len(first_cards)
    # A later row that changes the score of a response whose case is open tells that case (issue #14).
    changed = [e for e in stored["case_events"] if e["kind"] == "rating_changed"]
    assert len(changed) == len(stored["case_events"]) - len(cases)
    assert all(e["detail"].startswith("Rating changed from ") for e in changed)
    customers = {c["external_id"]: c for c in stored["customers"]}
    assert customers["c2"]["name"] == "Cy" and customers["c1"]["name"] == "Ann"
    feedback = {f["external_id"]: f for f in stored["feedback"]}
    assert feedback["r15"]["score"] == 5.5 and feedback["r15"]["raw_score"] == 2.0
    assert feedback["r14"]["score"] == 7.0 and "\n" in feedback["r14"]["comment"]


#: Only new responses: d1's third negative in 90 days is n4 (n1 is older than the window), d2's is n9.
FRESH_ROWS = [
    "n1,nps,1,,checkout,2026-06-01T00:00:00Z,d1,,,,",
    "n2,nps,2,,checkout,2026-10-01T00:00:00Z,d1,,,,",
    "n3,nps,0,,checkout,2026-10-02T00:00:00+02:00,d1,,,,",
    "n4,nps,3,Awful,checkout,2026-10-03T00:00:00Z,d1,,,,",
    "n5,nps,9,,checkout,2026-10-03T00:00:00Z,d2,,,,",
    "n6,csat,1,,checkout,2026-10-04T00:00:00Z,d2,,,,",
    "n7,csat,2,,website,2026-10-05T00:00:00Z,d2,,,,",
    "n8,nps,1,,,2026-10-06T00:00:00Z,,,,,",
    "n9,csat,1,,Inbound,2026-10-06T12:00:00-05:00,d2,,,,",
]


@pytest.mark.parametrize("batch", [2, 1000])
async def test_repeat_detractors_of_new_rows_are_raised_as_on_the_portable_path(
    runtime: Runtime, tmp_path: Path, batch: int
) -> None:
    """When every case of a batch is new, so is its feedback: the bulk path hands raise_priority the
    cases with their received times instead of reading them back, and the same cases are raised."""
    path = tmp_path / "fresh.csv"
    path.write_text(HEADER + "\n" + "\n".join(FRESH_ROWS) + "\n", encoding="utf-8")
    outcomes = []
    for bulk in (False, True):
        await reset(runtime)
        with statements(runtime) as sent:
            report = await import_csv(runtime, path, replace(OPTIONS, bulk=bulk, batch_size=batch))
        outcomes.append((counts(report), await dump(runtime), sent))
    (portable, portable_rows, portable_sent), (bulk, bulk_rows, bulk_sent) = outcomes
    assert bulk == portable
    for table in TABLES:
        assert bulk_rows[table] == portable_rows[table], table
    external = {f["id"]: f["external_id"] for f in bulk_rows["feedback"]}
    raised = {external[c["feedback_id"]] for c in bulk_rows["cases"] if c["priority"] == "high"}
    assert raised == {"n4", "n9"}
    anchors = "coalesce(feedback.received_at, cases.created_at)"
    assert any(anchors in statement for statement in portable_sent)
    assert not any(anchors in statement for statement in bulk_sent)


@pytest.mark.skipif(not postgres_admin_url(), reason="PostgreSQL not configured (CXBOT_TEST_POSTGRES_URL)")
async def test_the_postgresql_copy_import_stores_what_the_sqlite_import_stores(
    sqlite_template: Path, postgres_database: str, tmp_path: Path, example_config: Config
) -> None:
    """The same file, the same clock: PostgreSQL's COPY path and SQLite's bound INSERTs store equal rows."""
    path = write_file(tmp_path)
    outcomes = []
    for url in (fresh_sqlite(sqlite_template, tmp_path), postgres_database):
        database = Settings(_env_file=None, DATABASE_URL=url)  # type: ignore[call-arg]
        runtime = Runtime.build(settings=database, config=example_config, clock=FrozenClock())
        try:
            first, again, _ = await run_scenario(runtime, path, bulk=True, batch=1000)
            outcomes.append((counts(first), counts(again), await typed_dump(runtime)))
        finally:
            await runtime.close()
    sqlite, postgresql = outcomes
    assert postgresql[:2] == sqlite[:2]
    for table in TABLES:
        if table == "outbox":  # queue_case_cards reads the team's destinations in no set order
            for stored in (sqlite, postgresql):
                stored[2][table] = sorted(
                    ({k: v for k, v in row.items() if k != "id"} for row in stored[2][table]),
                    key=lambda row: row["dedupe_key"],
                )
        assert postgresql[2][table] == sqlite[2][table], table
    assert len(sqlite[2]["feedback"]) == 20 and len(sqlite[2]["cases"]) > 5


async def test_keys_another_writer_stored_first_come_back_as_raced(
    runtime: Runtime,
) -> None:
    """Between the probe for stored keys and the insert, another writer may store the same response:
    the bulk insert (COPY on PostgreSQL) keeps that row and hands the item back to become an update."""
    async with transaction(runtime.sessions) as session:
        await ingest_items(
            session, ingestor_for(runtime.config), EXISTING[:1], now=runtime.clock(), default_source=SOURCE
        )
    items = [validate_item({**EXISTING[0], "score": 3}, now=NOW, default_source=SOURCE)]
    items.append(
        validate_item({"external_id": "new-1", "metric": "nps", "score": 9}, now=NOW, default_source=SOURCE)
    )
    writer = BulkWriter(Router(runtime.config))
    pending = [
        PendingItem(
            n,
            item,
            writer.router.route(touchpoint=item.touchpoint, comment=item.comment),
            ItemResult(n, "created"),
        )
        for n, item in enumerate(items)
    ]
    negatives: list[Any] = []
    async with transaction(runtime.sessions) as session:
        raced = await writer.insert(session, pending, {}, now=runtime.clock(), negatives=negatives)
    assert [p.item.external_id for p in raced] == ["e1"]
    assert pending[1].result.feedback_id is not None and not negatives
    async with runtime.sessions() as session:
        scores = dict((await session.execute(text("SELECT external_id, score FROM feedback"))).all())
    assert scores == {"e1": 9.0, "new-1": 9.0}


@pytest.mark.parametrize("bulk", [False, True])
async def test_only_the_key_probes_are_planned_per_run(runtime: Runtime, bulk: bool) -> None:
    """PostgreSQL: `force_custom_plan` covers the probes for stored keys and nothing after them.

    The setting also governs the cached plans of foreign-key checks: left on, every inserted row's
    checks were planned afresh (about 2.5 times their cost, docs/performance.md, Ingest).
    """
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner setting")
    async with transaction(runtime.sessions) as session:
        await ingest_items(
            session, ingestor_for(runtime.config), EXISTING[:1], now=runtime.clock(), default_source=SOURCE
        )
    later = [{**EXISTING[0], "score": 2}, {"external_id": "p1", "metric": "nps", "score": 1}]
    with statements(runtime) as sent:
        async with transaction(runtime.sessions) as session:
            results = await ingest_items(
                session,
                ingestor_for(runtime.config),
                later,
                now=runtime.clock(),
                default_source=SOURCE,
                bulk=bulk,
            )
            mode = (await session.execute(text("SHOW plan_cache_mode"))).scalar_one()
    assert [r.status for r in results] == ["updated", "created"] and all(r.case for r in results)
    assert mode == "auto"
    probes = [
        n
        for n, s in enumerate(sent)
        if s.startswith("SELECT") and "FROM feedback" in s and "external_id" in s
    ]
    assert probes
    mode_at = "auto"
    for n, statement in enumerate(sent):
        if "plan_cache_mode" in statement:
            mode_at = "force_custom_plan" if "force_custom_plan" in statement else "auto"
        elif n in probes:
            assert mode_at == "force_custom_plan", statement
        elif statement.startswith(("INSERT", "UPDATE")):
            assert mode_at == "auto", statement


async def test_bulk_ingest_answers_like_the_portable_path(runtime: Runtime) -> None:
    """`ingest_items(bulk=True)` gives each item the same result (ids, cases, warnings) as bulk=False."""
    items: list[Any] = [
        *EXISTING,
        {
            "external_id": "h1",
            "metric": "nps",
            "score": 2,
            "touchpoint": "nowhere",
            "comment": "refund please",
        },
        {"external_id": "h2", "metric": "csat", "score": 9},
        {"external_id": "h1", "metric": "nps", "score": 1, "touchpoint": "nowhere"},
        {
            "external_id": "e2",
            "metric": "nps",
            "score": 2,
            "customer": {"id": "c2", "email": "c2@example.com"},
        },
        "not an object",
        {"external_id": "h3", "metric": "comment", "comment": "Useless app, it crashes and I hate it."},
    ]
    answers = []
    for bulk in (False, True):
        await reset(runtime)
        async with transaction(runtime.sessions) as session:
            await ingest_items(
                session, ingestor_for(runtime.config), EXISTING, now=runtime.clock(), default_source=SOURCE
            )
        async with transaction(runtime.sessions) as session:
            results = await ingest_items(
                session,
                ingestor_for(runtime.config),
                items,
                now=runtime.clock(),
                default_source=SOURCE,
                bulk=bulk,
            )
        answers.append(([r.as_dict() for r in results], await dump(runtime)))
    assert answers[1] == answers[0]
    statuses = [r["status"] for r in answers[1][0]]
    assert statuses == [
        "duplicate",
        "duplicate",
        "duplicate",
        "created",
        "error",
        "updated",
        "updated",
        "error",
        "created",
    ]
    assert sum(1 for r in answers[1][0] if "case" in r) == 3


# --------------------------------------------------------------------------- the lean row check

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CELLS = {
    "id": ["r1", " r2 ", "", "x" * 201, "r\x00"],
    "metric": ["nps", "NPS", " csat ", "ces", "comment", "", "foo"],
    "score": ["0", "5", "7", "10", "11", " 7 ", "7.0", "", "abc", "-1", "3.5", "1e1", "nan"],
    "comment": ["", "  ", "fine", " Terrible, awful ", "x" * 10_001, "a\x00b"],
    "touchpoint": ["", "checkout", "Inbound", " nowhere ", "x" * 201],
    "received_at": [
        "2026-10-01T10:00:00Z",
        "2026-10-01",
        " 2026-10-01T10:00:00+02:00 ",
        "01-Oct-26",
        "2026-10-01 10:00:00",
        "",
        "not a date",
        "2026-13-01",
        "0001-01-01T00:00:00+01:00",
        "1700000000",
    ],
    "customer": ["", "c1", " c2 ", "x" * 201],
    "name": ["", "Ann", "x" * 201],
    "email": ["", "a@example.com", "nope", "x@" + "y" * 320],
    "tags": ["", "a;b", " , ", ";".join(["t"] * 51), "web, vip"],
    "scale": ["", "1-5-low-good", "bogus"],
}
VARIANTS = [
    OPTIONS,
    replace(OPTIONS, source=None, mapping={k: v for k, v in OPTIONS.mapping.items() if k != "external_id"}),
    replace(
        OPTIONS,
        mapping={
            k: v for k, v in OPTIONS.mapping.items() if k not in ("metric", "touchpoint", "customer_name")
        },
        constants={"metric": "nps", "touchpoint": "checkout", "customer_name": "Set Name"},
    ),
    replace(OPTIONS, date_format="%d/%m/%Y %H:%M"),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    variant=st.sampled_from(VARIANTS),
    row=st.fixed_dictionaries({name: st.sampled_from(values) for name, values in CELLS.items()}),
    width=st.sampled_from([0, 0, 0, -1, 1]),
)
def test_the_lean_check_accepts_a_row_only_as_validate_item_would(
    variant: ImportOptions, row: dict[str, str], width: int
) -> None:
    header = HEADER.split(",")
    convert = _Converter(header, variant, default_source="csv:file.csv")
    assert convert.lean is not None
    cells = [row[name] for name in header]
    cells = cells[:width] if width < 0 else cells + ["extra"] * width
    lean = convert.lean(cells)
    try:
        expected = validate_item(convert(cells), now=NOW, default_source=convert.default_source)
    except (_RowError, ItemError):
        assert lean is None
        return
    assert lean is None or lean == expected


def test_the_lean_check_takes_the_plain_rows() -> None:
    """Not vacuous: an ordinary export row does not fall back to the portable way."""
    header = HEADER.split(",")
    convert = _Converter(header, OPTIONS, default_source="csv:file.csv")
    assert convert.lean is not None
    reader = csv.reader(io.StringIO("\n".join(record for _, record in ROWS)))
    taken = [record[0] for record in reader if convert.lean(record) is not None]
    assert {"r1", "r2", "r3", "r4", "r5", "r6", "r7", "e1", "r16", "r21", "r22"} <= set(taken)
