"""Bad input to the HTTP API gets a precise 4xx or item error, and nothing half-written (design.md §11)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cxbot.config import Config
from cxbot.models import Case, CaseEvent, Customer, Feedback
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from cxbot.web.ingest import MAX_ITEMS_PER_REQUEST
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock

INTERNAL_ERROR = {"error": "internal error; the server log has the details"}


def item(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "external_id": "r-1",
        "source": "api-test",
        "metric": "nps",
        "score": 3,
        "comment": "Took three tries to pay",
        "touchpoint": "checkout",
        "customer": {"id": "c-1", "name": "Ada Lovelace", "email": "ada@example.com"},
        "received_at": "2026-11-01T10:00:00Z",
        "tags": ["web"],
    }
    base.update(overrides)
    return base


async def counts(runtime: Runtime) -> dict[str, int]:
    """Rows in every table that ingest writes to."""
    out: dict[str, int] = {}
    async with runtime.sessions() as session:
        for name, model in (
            ("feedback", Feedback),
            ("customers", Customer),
            ("cases", Case),
            ("case_events", CaseEvent),
        ):
            out[name] = (await session.execute(select(func.count()).select_from(model))).scalar_one()
    return out


NOTHING = {"feedback": 0, "customers": 0, "cases": 0, "case_events": 0}


@asynccontextmanager
async def serve(
    settings: Settings, config: Config, clock: FrozenClock, *, sync: bool = True
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """A runtime and an authenticated client for settings other than the shared fixture's."""
    runtime = Runtime.build(settings=settings, config=config, clock=clock)
    if sync:
        await runtime.sync_directory()
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://cxbot.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as http:
            yield runtime, http
    finally:
        await runtime.close()


def settings_for(database_url: str, **env: Any) -> Settings:
    values: dict[str, Any] = {"DATABASE_URL": database_url, "CXBOT_API_KEY": API_KEY, **env}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# --- the body is not feedback JSON at all -> 422, nothing stored ---------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b'[{"external_id": "r-1", "score": 9,}]',
            "body is not JSON: Expecting property name enclosed in double quotes at line 1 column 36",
        ),
        (
            b'[\n  {"external_id": "r-1"},\n  {"external_id": }\n]',
            "body is not JSON: Expecting value at line 3 column 19",
        ),
        (b"", "body is not JSON: Expecting value at line 1 column 1"),
        (b'{"external_id": "r-1"} trailing', "body is not JSON: Extra data at line 1 column 24"),
        (b'{"comment": "caf\xe9"}', "body is not UTF-8 text"),
        (b'"just a string"', "body must be a feedback object or a list of them, not str"),
        (b"42", "body must be a feedback object or a list of them, not int"),
        (b"null", "body must be a feedback object or a list of them, not NoneType"),
        (b"[]", "body is an empty list"),
    ],
    ids=[
        "trailing-comma",
        "multi-line",
        "empty",
        "extra-data",
        "latin-1",
        "string",
        "number",
        "null",
        "empty-list",
    ],
)
async def test_body_that_is_not_feedback_json_is_422_with_the_reason(
    client: httpx.AsyncClient, runtime: Runtime, body: bytes, reason: str
) -> None:
    response = await client.post("/feedback", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {"error": reason}
    assert await counts(runtime) == NOTHING


async def test_number_too_long_to_parse_is_422_not_a_crash(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # Python refuses to turn more than 4300 digits into an int; that is bad JSON input, not a server fault.
    body = b'{"external_id": "r-1", "metric": "nps", "score": ' + b"9" * 5000 + b"}"
    response = await client.post("/feedback", content=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith("body is not JSON: ")
    assert "4300" in response.json()["error"]
    assert await counts(runtime) == NOTHING


async def test_json_nested_too_deeply_is_422_not_a_crash(client: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await client.post("/feedback", content=b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 422
    assert response.json() == {"error": "body is not JSON: nested too deeply"}
    assert await counts(runtime) == NOTHING


# --- per-item errors: the item gets the reason, the valid items of the batch are stored ----------

BAD_ITEMS: list[tuple[str, dict[str, object], str]] = [
    ("score-text", item(score="abc"), "score: 'abc' is not a number"),
    ("score-bool", item(score=True), "score: expected a number, got bool"),
    ("score-object", item(score={"value": 3}), "score: expected a number, got dict"),
    ("score-missing", item(score=None), "score: required for metric 'nps'"),
    ("customer-list", item(customer=["c-1"]), "customer: expected an object, got list"),
    ("customer-without-id", item(customer={"email": "ada@example.com"}), "customer.id: required"),
    (
        "customer-bad-email",
        item(customer={"id": "c-1", "email": "ada"}),
        "customer.email: 'ada' is not an email address",
    ),
    ("tags-string", item(tags="web"), "tags: expected a list of strings"),
    ("tags-numbers", item(tags=[1, 2]), "tags: expected a list of strings"),
    (
        "received-at-word",
        item(received_at="yesterday"),
        "received_at: 'yesterday' is not an ISO 8601 timestamp",
    ),
    (
        "received-at-month-13",
        item(received_at="2026-13-01T00:00:00Z"),
        "received_at: '2026-13-01T00:00:00Z' is not an ISO 8601 timestamp",
    ),
    (
        "received-at-list",
        item(received_at=[2026, 11, 1]),
        "received_at: expected an ISO 8601 timestamp, got list",
    ),
    ("received-at-epoch-too-big", item(received_at=1e20), "received_at: 1e+20 is out of range"),
    (
        "received-at-before-year-1-in-utc",
        item(received_at="0001-01-01T00:00:00+01:00"),
        "received_at: '0001-01-01T00:00:00+01:00' is out of range",
    ),
    ("comment-number", item(comment=12.5), "comment: expected a string, got float"),
    ("metric-unknown", item(metric="stars"), "metric: expected one of nps, csat, ces, comment, got 'stars'"),
    ("metric-missing", item(metric=None), "metric: expected one of nps, csat, ces, comment, got None"),
    ("external-id-missing", item(external_id=None), "external_id: required"),
    ("external-id-blank", item(external_id="  "), "external_id: required"),
    ("external-id-too-long", item(external_id="x" * 201), "external_id: longer than 200 characters"),
    ("source-too-long", item(source="s" * 65), "source: longer than 64 characters"),
    ("comment-score", item(metric="comment", score=3), "score: must be null for metric 'comment'"),
    (
        "comment-without-text",
        item(metric="comment", score=None, comment=None),
        "comment: required for metric 'comment'",
    ),
    ("item-not-object", "just text", "item: expected an object, got str"),  # type: ignore[list-item]
]


async def test_wrong_types_fail_only_their_item_and_name_the_field(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # Each bad item sits between two good ones; the good ones must be stored, the bad ones must not.
    batch: list[object] = []
    for n, (name, bad, _) in enumerate(BAD_ITEMS):
        batch.append(item(external_id=f"good-{n}", score=9, customer={"id": f"c-{n}"}))
        if isinstance(bad, dict) and not name.startswith("external-id"):
            bad = {**bad, "external_id": f"bad-{n}"}
        batch.append(bad)
    batch.append(item(external_id="good-last", score=10, customer={"id": "c-last"}))

    response = await client.post("/feedback", json=batch)

    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == len(batch)
    for n, (name, _, reason) in enumerate(BAD_ITEMS):
        assert results[2 * n] == {"index": 2 * n, "status": "created", "id": n + 1}, name
        assert results[2 * n + 1] == {"index": 2 * n + 1, "status": "error", "reason": reason}, name
    assert results[-1]["status"] == "created"
    stored = await counts(runtime)
    assert stored == {
        "feedback": len(BAD_ITEMS) + 1,
        "customers": len(BAD_ITEMS) + 1,
        "cases": 0,
        "case_events": 0,
    }
    async with runtime.sessions() as session:
        external_ids = set((await session.execute(select(Feedback.external_id))).scalars())
    assert external_ids == {f"good-{n}" for n in range(len(BAD_ITEMS))} | {"good-last"}


@pytest.mark.parametrize(
    ("metric", "score", "reason"),
    [
        ("nps", 11, "score: 11 is out of range 0-10 for nps"),
        ("nps", -1, "score: -1 is out of range 0-10 for nps"),
        ("nps", 7.5, "score: 7.5 is not a whole number on the nps scale (0-10)"),
        ("nps", "7.5", "score: 7.5 is not a whole number on the nps scale (0-10)"),
        ("nps", 10**400, "score: inf is out of range 0-10 for nps"),
        ("nps", "1e999", "score: inf is out of range 0-10 for nps"),
        ("csat", 0, "score: 0 is out of range 1-5 for csat"),
        ("csat", 6, "score: 6 is out of range 1-5 for csat"),
        ("ces", 8, "score: 8 is out of range 1-7 for ces"),
        ("ces", 0, "score: 0 is out of range 1-7 for ces"),
        ("ces", 2.5, "score: 2.5 is not a whole number on the ces scale (1-7)"),
        ("nps", "NaN", "score: NaN is not a number"),
    ],
    ids=[
        "nps-11",
        "nps-minus-1",
        "nps-7.5",
        "nps-7.5-as-text",
        "nps-400-digits",
        "nps-1e999-as-text",
        "csat-0",
        "csat-6",
        "ces-8",
        "ces-0",
        "ces-2.5",
        "nps-NaN-as-text",
    ],
)
async def test_score_out_of_range_for_its_metric_is_an_item_error_with_the_range(
    client: httpx.AsyncClient, runtime: Runtime, metric: str, score: object, reason: str
) -> None:
    response = await client.post(
        "/feedback",
        json=[item(metric=metric, score=score), item(external_id="r-2", metric=metric, score=5)],
    )
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first == {"index": 0, "status": "error", "reason": reason}
    assert second["status"] == "created"
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Feedback.external_id, Feedback.score))).all()
    assert [tuple(r) for r in rows] == [("r-2", 5.0)]


async def test_nan_literal_in_the_body_is_an_item_error(client: httpx.AsyncClient, runtime: Runtime) -> None:
    # Python's parser accepts the non-standard NaN literal; the item must still be refused clearly.
    body = b'[{"external_id": "r-1", "source": "s", "metric": "nps", "score": NaN}]'
    response = await client.post("/feedback", content=body)
    assert response.json() == {
        "results": [{"index": 0, "status": "error", "reason": "score: NaN is not a number"}]
    }
    assert await counts(runtime) == NOTHING


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"comment": "nul \x00 inside"}, "comment: contains a NUL character"),
        ({"touchpoint": "check\x00out"}, "touchpoint: contains a NUL character"),
        (
            {"comment": "half a pair \ud83d here"},
            "comment: contains an unpaired surrogate, which is not text",
        ),
        ({"customer": {"id": "c-\udc00"}}, "customer.id: contains an unpaired surrogate, which is not text"),
    ],
    ids=["nul-comment", "nul-touchpoint", "surrogate-comment", "surrogate-customer"],
)
async def test_text_that_no_database_can_store_is_an_item_error(
    client: httpx.AsyncClient, runtime: Runtime, overrides: dict[str, object], reason: str
) -> None:
    # JSON can carry \u0000 and lone surrogates; neither is storable text (PostgreSQL refuses NUL,
    # neither backend can encode a lone surrogate), so both backends must refuse them the same way.
    bad = json.dumps(item(**overrides))
    good = json.dumps(item(external_id="r-2", customer={"id": "c-2"}))
    response = await client.post("/feedback", content=f"[{bad}, {good}]".encode())
    assert response.status_code == 200
    assert response.json()["results"][0] == {"index": 0, "status": "error", "reason": reason}
    assert response.json()["results"][1]["status"] == "created"
    assert await counts(runtime) == {"feedback": 1, "customers": 1, "cases": 1, "case_events": 1}


async def test_touchpoint_full_of_control_characters_still_opens_a_case(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # The unknown touchpoint is quoted in the routing reason; its escaped form must not overflow the
    # column (500 characters) on PostgreSQL.
    response = await client.post("/feedback", json=item(touchpoint="\x01" * 200, comment=None))
    result = response.json()["results"][0]
    assert (result["status"], result["case"]) == ("created", "CX-1")
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
    assert (case.team_key, case.routing_rule) == ("support", "fallback")
    assert len(case.routing_reason) <= 500
    assert case.routing_reason.startswith("NPS 3 is at or below 6; unknown touchpoint '\\x01")


async def test_unknown_touchpoint_is_created_with_a_warning_and_goes_to_the_fallback_team(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post(
        "/feedback",
        json=[
            item(touchpoint="kiosk", comment="Long queue at the till"),
            item(external_id="r-2", touchpoint=None, comment="Nobody answered"),
        ],
    )
    unknown, missing = response.json()["results"]
    assert unknown["status"] == "created"
    assert unknown["case"] == "CX-1"
    assert unknown["warnings"] == [
        "unknown touchpoint 'kiosk'; no rule matched, so the fallback team support owns it"
    ]
    assert missing["warnings"] == ["no touchpoint; no rule matched, so the fallback team support owns it"]
    async with runtime.sessions() as session:
        cases = (await session.execute(select(Case).order_by(Case.id))).scalars().all()
        feedback = (await session.execute(select(Feedback).order_by(Feedback.id))).scalars().all()
    assert [(c.team_key, c.routing_rule, c.touchpoint_key) for c in cases] == [
        ("support", "fallback", None),
        ("support", "fallback", None),
    ]
    assert "unknown touchpoint 'kiosk'" in cases[0].routing_reason
    assert [(f.touchpoint, f.touchpoint_key, f.team_key) for f in feedback] == [
        ("kiosk", None, "support"),
        (None, None, "support"),
    ]


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing bearer token (Authorization: Bearer <CXBOT_API_KEY>)"),
        ("", "missing bearer token (Authorization: Bearer <CXBOT_API_KEY>)"),
        ("Bearer ", "missing bearer token (Authorization: Bearer <CXBOT_API_KEY>)"),
        (f"Basic {API_KEY}", "missing bearer token (Authorization: Bearer <CXBOT_API_KEY>)"),
        ("Bearer not-the-key", "bearer token is not valid"),
        (f"Bearer {API_KEY}x", "bearer token is not valid"),
        (f"Bearer {API_KEY[:-1]}", "bearer token is not valid"),
    ],
    ids=["absent", "empty", "no-token", "basic", "wrong", "longer", "shorter"],
)
async def test_missing_or_wrong_key_is_401_and_nothing_is_stored(
    runtime: Runtime, authorization: str | None, reason: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://cxbot.test", headers=headers) as anon:
        response = await anon.post("/feedback", json=item())
        assert response.status_code == 401
        assert response.json() == {"error": reason}
        assert await counts(runtime) == NOTHING
        for path in ("/api/scores", "/api/cases"):
            read = await anon.get(path)
            assert (read.status_code, read.json()) == (401, {"error": reason})


async def test_server_without_api_key_is_503_naming_the_variable(
    database_url: str, example_config: Config, clock: FrozenClock
) -> None:
    settings = settings_for(database_url, CXBOT_API_KEY=None)
    async with serve(settings, example_config, clock) as (runtime, http):
        for method, path in (("POST", "/feedback"), ("GET", "/api/scores"), ("GET", "/api/cases")):
            response = await http.request(method, path, json=item() if method == "POST" else None)
            assert response.status_code == 503, path
            assert response.json() == {
                "error": "CXBOT_API_KEY is not set on the server, so the API is disabled"
            }
        assert await counts(runtime) == NOTHING


# --- size limits ------------------------------------------------------------------------------------

SMALL_LIMIT = 2048


async def test_body_over_the_limit_with_content_length_is_413(
    database_url: str, example_config: Config, clock: FrozenClock
) -> None:
    settings = settings_for(database_url, CXBOT_MAX_BODY_BYTES=SMALL_LIMIT)
    async with serve(settings, example_config, clock) as (runtime, http):
        big = [item(external_id=f"r-{n}") for n in range(20)]
        body = json.dumps(big).encode()
        assert len(body) > SMALL_LIMIT
        response = await http.post("/feedback", content=body)
        assert response.request.headers["content-length"] == str(len(body))
        assert response.status_code == 413
        assert response.json() == {"error": f"body is larger than the limit of {SMALL_LIMIT} bytes"}
        assert await counts(runtime) == NOTHING
        # Just under the limit is fine.
        small = json.dumps([item()]).encode()
        assert len(small) <= SMALL_LIMIT
        ok = await http.post("/feedback", content=small)
        assert ok.json()["results"][0]["status"] == "created"


async def _chunks(body: bytes, size: int = 256) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_chunked_body_over_the_limit_is_413(
    database_url: str, example_config: Config, clock: FrozenClock
) -> None:
    settings = settings_for(database_url, CXBOT_MAX_BODY_BYTES=SMALL_LIMIT)
    async with serve(settings, example_config, clock) as (runtime, http):
        body = json.dumps([item(external_id=f"r-{n}") for n in range(20)]).encode()
        response = await http.post("/feedback", content=_chunks(body))
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert response.status_code == 413
        assert response.json() == {"error": f"body is larger than the limit of {SMALL_LIMIT} bytes"}
        assert await counts(runtime) == NOTHING
        # A chunked body under the limit is read whole and stored.
        ok = await http.post("/feedback", content=_chunks(json.dumps([item()]).encode(), size=7))
        assert ok.status_code == 200
        assert ok.json()["results"][0]["status"] == "created"


async def test_too_many_items_is_413_and_nothing_is_stored(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    batch = [{"external_id": f"r-{n}", "source": "s", "metric": "nps", "score": 9} for n in range(5_001)]
    assert MAX_ITEMS_PER_REQUEST == 5_000
    response = await client.post("/feedback", json=batch)
    assert response.status_code == 413
    assert response.json() == {"error": "5001 items in one request; send at most 5000"}
    assert await counts(runtime) == NOTHING


# --- unexpected failures ----------------------------------------------------------------------------


async def test_unexpected_exception_is_a_plain_500_without_a_traceback(
    tmp_path: Path, example_config: Config, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    # A database that was never migrated: every query fails inside the handler with "no such table".
    settings = settings_for(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    caplog.set_level(logging.ERROR, logger="cxbot.web")
    async with serve(settings, example_config, clock, sync=False) as (_, http):
        for method, path in (("POST", "/feedback"), ("GET", "/api/cases"), ("GET", "/api/scores")):
            response = await http.request(method, path, json=item() if method == "POST" else None)
            assert response.status_code == 500, path
            assert response.json() == INTERNAL_ERROR
            assert response.headers["content-type"] == "application/json"
            for leak in ("Traceback", "no such table", "sqlite", "File "):
                assert leak not in response.text
    logged = [r for r in caplog.records if r.getMessage().startswith("unhandled error on ")]
    assert [r.getMessage() for r in logged] == [
        "unhandled error on POST /feedback",
        "unhandled error on GET /api/cases",
        "unhandled error on GET /api/scores",
    ]
    assert all(r.exc_info is not None for r in logged)
