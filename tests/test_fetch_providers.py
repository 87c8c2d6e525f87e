"""Webhooks that carry only ids (SurveyMonkey): answered at once, fetched later through the durable queue.

The provider's API is tests/support/fake_providers.py on loopback, started here; it serves the
response details and is scripted to fail (429 with Retry-After, 5xx, a hang the client's timeout
cuts). Signatures are computed here with hmac from SurveyMonkey's documented scheme:
base64(HMAC-SHA1(`api_key&api_secret`, raw body)) in `Sm-Signature`. Payloads: tests/fixtures/surveys
(PROVENANCE.md there).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from sqlalchemy import func, select, update

from cxbot.config import parse_config
from cxbot.ingest.fetch_queue import FetchWorker, fetch_sources
from cxbot.models import Case, Feedback, ProviderFetch
from cxbot.outbox.worker import RetryPolicy
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.conftest import ROOT
from tests.support.clock import FrozenClock
from tests.support.fake_providers import HANG, FakeProviders, Reply

SURVEYS = Path(__file__).parent / "fixtures" / "surveys"
API_KEY = "sm-api-key-5c1d"
API_SECRET = "sm-api-secret-9e2f"
TOKEN = "sm-access-token-77aa"
SURVEY = "508912377"
RESPONSE = "114958291633"
DETAILS_PATH = f"/v3/surveys/{SURVEY}/responses/{RESPONSE}/details"
SHARED_KEY = "qualtrics-shared-key-41b7"
QUALTRICS_TOKEN = "qualtrics-api-token-0c3e"
QUALTRICS_SURVEY = "SV_0Ae4Yk5w8n3HbG6"
QUALTRICS_RESPONSE = "R_3fMk2Jt9qWx1YzA"
QUALTRICS_PATH = f"/API/v3/surveys/{QUALTRICS_SURVEY}/responses/{QUALTRICS_RESPONSE}"
QUALTRICS_SECTION: dict[str, Any] = {
    "metric": "csat",
    "score_qid": "QID1",
    "comment_qid": "QID2_TEXT",
    "touchpoint_field": "touchpoint",
}
#: The NPS question's eleven choices, 0..10.
CHOICES = {str(830000000 + n): n for n in range(11)}


def raw(name: str) -> bytes:
    return (SURVEYS / name).read_bytes()


def details(**changes: Any) -> dict[str, Any]:
    document = json.loads(raw("surveymonkey_response_details.json"))
    document.update(changes)
    return document


def sm_headers(body: bytes, *, key: str = API_KEY, secret: str = API_SECRET) -> dict[str, str]:
    digest = hmac.new(f"{key}&{secret}".encode(), body, hashlib.sha1).digest()
    return {"Sm-Signature": base64.b64encode(digest).decode(), "Content-Type": "application/json"}


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders.running() as running:
        running.route(DETAILS_PATH, Reply(200, details()))
        running.route(QUALTRICS_PATH, Reply(200, json.loads(raw("qualtrics_response.json"))))
        yield running


def section(fake: FakeProviders, **changes: Any) -> dict[str, Any]:
    return {
        "api_url": fake.base,
        "metric": "nps",
        "score_question": "126001001",
        "choice_scores": CHOICES,
        "comment_question": "126001002",
        "touchpoint_variable": "touchpoint",
        **changes,
    }


@pytest.fixture
async def runtime(settings: Settings, clock: FrozenClock, fake: FakeProviders) -> AsyncIterator[Runtime]:
    document = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    document["webhooks"] = {
        "surveymonkey": section(fake),
        "qualtrics": QUALTRICS_SECTION | {"api_url": fake.base},
    }
    built = Runtime.build(settings=settings, config=parse_config(document), clock=clock)
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURVEYMONKEY_API_KEY", API_KEY)
    monkeypatch.setenv("SURVEYMONKEY_API_SECRET", API_SECRET)
    monkeypatch.setenv("SURVEYMONKEY_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("QUALTRICS_SHARED_KEY", SHARED_KEY)
    monkeypatch.setenv("QUALTRICS_API_TOKEN", QUALTRICS_TOKEN)


def worker(runtime: Runtime, **kwargs: Any) -> FetchWorker:
    retry = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=5), max_attempts=5)
    return FetchWorker(runtime, fetch_sources(runtime.config), retry=retry, timeout=0.5, **kwargs)


async def deliver(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/webhooks/surveymonkey", content=body, headers={**headers, "Authorization": ""})


async def stored(runtime: Runtime) -> tuple[int, list[tuple[str, str | None]]]:
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(func.count()).select_from(Feedback))).scalar_one()
        fetches = (await session.execute(select(ProviderFetch.status, ProviderFetch.last_error))).all()
    return feedback, [tuple(row) for row in fetches]


async def test_head_verification_is_200_and_stores_nothing(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    response = await client.head("/webhooks/surveymonkey")
    assert (response.status_code, response.content) == (200, b"")
    assert await stored(runtime) == (0, [])


async def test_event_is_answered_at_once_then_fetched_and_stored(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, fake: FakeProviders
) -> None:
    body = raw("surveymonkey_response_completed.json")
    response = await deliver(client, body, sm_headers(body))

    assert response.status_code == 202
    assert response.json() == {"queued": 1, "already_queued": 0}
    assert await stored(runtime) == (0, [("pending", None)])
    assert fake.requests(DETAILS_PATH) == []  # nothing fetched while the webhook waits

    stats = await worker(runtime).run_once()

    assert (stats.claimed, stats.done) == (1, 1)
    [request] = fake.requests(DETAILS_PATH)
    assert (request.method, request.headers["authorization"]) == ("GET", f"Bearer {TOKEN}")
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
        case = (await session.execute(select(Case))).scalar_one()
        fetch = (await session.execute(select(ProviderFetch))).scalar_one()
    assert (feedback.source, feedback.external_id, feedback.metric, feedback.score) == (
        "surveymonkey",
        RESPONSE,
        "nps",
        3.0,
    )
    assert feedback.comment == "The courier left the parcel in the rain."
    assert (feedback.touchpoint_key, feedback.team_key) == ("delivery", "logistics")
    assert feedback.received_at == datetime(2026, 11, 2, 11, 40, 12, tzinfo=UTC)
    assert case.team_key == "logistics"
    assert (fetch.status, fetch.attempts, fetch.feedback_id) == ("done", 1, feedback.id)
    metrics = (await client.get("/metrics")).text
    assert 'cxbot_provider_fetches_total{provider="surveymonkey",status="done"} 1' in metrics


async def test_redelivered_event_is_one_fetch_and_one_feedback(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    body = raw("surveymonkey_response_completed.json")
    first = await deliver(client, body, sm_headers(body))
    again = await deliver(client, body, sm_headers(body))
    assert again.json() == {"queued": 0, "already_queued": 1}
    assert first.status_code == again.status_code == 202
    await worker(runtime).run_once()
    assert len(fake.requests(DETAILS_PATH)) == 1
    assert await stored(runtime) == (1, [("done", None)])


async def test_updated_response_is_fetched_again_and_updates_the_same_feedback(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    body = raw("surveymonkey_response_completed.json")
    await deliver(client, body, sm_headers(body))
    await worker(runtime).run_once()
    event = json.loads(body)
    event.update(event_type="response_updated", event_id="10000123999")
    updated = json.dumps(event).encode()
    fake.route(
        DETAILS_PATH,
        Reply(
            200,
            details(
                pages=[
                    {
                        "id": "1",
                        "questions": [
                            {"id": "126001001", "answers": [{"choice_id": "830000009"}]},
                        ],
                    }
                ]
            ),
        ),
    )
    response = await deliver(client, updated, sm_headers(updated))
    assert response.json() == {"queued": 1, "already_queued": 0}
    await worker(runtime).run_once()
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
    assert (feedback.score, feedback.comment) == (9.0, "The courier left the parcel in the rain.")


async def test_rate_limit_outage_and_timeout_are_retried_and_the_response_lands_once(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, fake: FakeProviders
) -> None:
    body = raw("surveymonkey_response_completed.json")
    await deliver(client, body, sm_headers(body))
    fake.script(
        DETAILS_PATH,
        Reply(429, {"error": {"message": "Too many requests"}}, {"Retry-After": "30"}),
        Reply(503, {"error": {"message": "Service unavailable"}}),
        HANG,
    )
    fetches = worker(runtime)

    first = await fetches.run_once()
    assert (first.retried, await stored(runtime)) == (1, (0, [("pending", "surveymonkey: 429")]))
    assert (await fetches.run_once(now=clock.advance(seconds=29))).claimed == 0  # Retry-After holds it
    second = await fetches.run_once(now=clock.advance(seconds=2))
    assert (second.retried, await stored(runtime)) == (1, (0, [("pending", "surveymonkey: 503")]))
    third = await fetches.run_once(now=clock.advance(seconds=20))  # backoff 20 s after attempt 2
    assert third.retried == 1
    assert (await stored(runtime))[1] == [("pending", "surveymonkey timed out (ReadTimeout)")]
    fourth = await fetches.run_once(now=clock.advance(seconds=40))
    assert fourth.done == 1
    assert len(fake.requests(DETAILS_PATH)) == 4
    assert await stored(runtime) == (1, [("done", None)])
    assert (await fetches.run_once(now=clock.advance(hours=1))).claimed == 0


async def test_a_fetch_claimed_by_a_worker_that_died_is_taken_again_after_its_lease(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, fake: FakeProviders
) -> None:
    body = raw("surveymonkey_response_completed.json")
    await deliver(client, body, sm_headers(body))
    async with runtime.sessions() as session, session.begin():  # claimed, then the process died
        lease = clock() + timedelta(minutes=2)
        await session.execute(update(ProviderFetch).values(status="fetching", next_attempt_at=lease))
    assert (await worker(runtime).run_once()).claimed == 0  # still leased
    after_restart = await worker(runtime).run_once(now=clock.advance(minutes=3))
    assert after_restart.done == 1
    assert await stored(runtime) == (1, [("done", None)])


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"score_question": "999", "comment_question": "998"},
            "question 999, 998 not in response 114958291633",
        ),
        ({"choice_scores": {"830000010": 10}}, "choice 830000003 of question 126001001 is not mapped"),
    ],
    ids=["unknown-question", "unmapped-choice"],
)
async def test_response_that_does_not_fit_the_mapping_is_a_recorded_skip(
    client: httpx.AsyncClient,
    runtime: Runtime,
    fake: FakeProviders,
    changes: dict[str, Any],
    reason: str,
) -> None:
    body = raw("surveymonkey_response_completed.json")
    await deliver(client, body, sm_headers(body))
    document = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    document["webhooks"] = {"surveymonkey": section(fake, **changes)}
    stats = await FetchWorker(runtime, fetch_sources(parse_config(document))).run_once()
    assert stats.skipped == 1
    assert await stored(runtime) == (0, [("skipped", reason)])


@pytest.mark.parametrize("status", [401, 404])
async def test_permanent_api_error_gives_up_at_once_with_the_reason(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders, status: int
) -> None:
    body = raw("surveymonkey_response_completed.json")
    await deliver(client, body, sm_headers(body))
    fake.script(DETAILS_PATH, Reply(status, {"error": {"message": "no"}}))
    stats = await worker(runtime).run_once()
    assert stats.dead == 1
    feedback, [(state, error)] = await stored(runtime)
    assert (feedback, state) == (0, "dead")
    assert error is not None and error.startswith(f"surveymonkey: {status} ")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "surveymonkey signature rejected: missing Sm-Signature header"),
        ({"Sm-Signature": "AAAA"}, "surveymonkey signature rejected: signature does not match"),
    ],
)
async def test_bad_signature_is_401_and_nothing_is_queued(
    client: httpx.AsyncClient, runtime: Runtime, headers: dict[str, str], reason: str
) -> None:
    response = await deliver(client, raw("surveymonkey_response_completed.json"), headers)
    assert response.status_code == 401
    assert response.json() == {"error": reason}
    assert await stored(runtime) == (0, [])


async def test_wrong_api_secret_is_401(client: httpx.AsyncClient, runtime: Runtime) -> None:
    body = raw("surveymonkey_response_completed.json")
    response = await deliver(client, body, sm_headers(body, secret="another-secret"))
    assert response.status_code == 401
    assert await stored(runtime) == (0, [])


@pytest.mark.parametrize("variable", ["SURVEYMONKEY_API_KEY", "SURVEYMONKEY_API_SECRET"])
async def test_missing_key_or_secret_is_503_naming_it(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv(variable)
    body = raw("surveymonkey_response_completed.json")
    response = await deliver(client, body, sm_headers(body))
    assert response.status_code == 503
    assert response.json() == {
        "error": f"{variable} is not set on the server, so surveymonkey webhooks are disabled"
    }


async def test_other_event_types_are_acknowledged_and_ignored(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = json.dumps(
        {"event_type": "collector_created", "object_type": "collector", "object_id": "1"}
    ).encode()
    response = await deliver(client, body, sm_headers(body))
    assert response.status_code == 200
    assert response.json() == {"results": [], "note": "event carries no survey response; ignored"}
    assert await stored(runtime) == (0, [])


# --- Qualtrics --------------------------------------------------------------------------------------


def qualtrics_form(
    *,
    key: str = SHARED_KEY,
    topic: str = f"surveyengine.completedResponse.{QUALTRICS_SURVEY}",
    sign: bool = True,
) -> bytes:
    message = raw("qualtrics_completed_response_msg.json").decode().strip()
    fields = {"Topic": topic, "MSG": message}
    if sign:
        fields["HMAC"] = hmac.new(key.encode(), message.encode(), hashlib.sha512).hexdigest()
    return urlencode(fields).encode()


async def deliver_qualtrics(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": ""}
    return await client.post("/webhooks/qualtrics", content=body, headers=headers)


async def test_qualtrics_event_is_queued_then_fetched_with_the_api_token(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    response = await deliver_qualtrics(client, qualtrics_form())
    assert (response.status_code, response.json()) == (202, {"queued": 1, "already_queued": 0})
    assert (await deliver_qualtrics(client, qualtrics_form())).json() == {"queued": 0, "already_queued": 1}

    stats = await worker(runtime).run_once()

    assert stats.done == 1
    [request] = fake.requests(QUALTRICS_PATH)
    assert (request.method, request.headers["x-api-token"]) == ("GET", QUALTRICS_TOKEN)
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
        case = (await session.execute(select(Case))).scalar_one()
    assert (feedback.source, feedback.external_id, feedback.metric, feedback.score) == (
        "qualtrics",
        QUALTRICS_RESPONSE,
        "csat",
        2.0,
    )
    assert (feedback.comment, feedback.touchpoint_key) == (
        "The agent could not find my order.",
        "support-phone",
    )
    assert case.team_key == "support"


async def test_qualtrics_rate_limit_outage_and_timeout_are_retried_and_the_response_lands_once(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, fake: FakeProviders
) -> None:
    await deliver_qualtrics(client, qualtrics_form())
    fake.script(
        QUALTRICS_PATH,
        Reply(429, {"meta": {"httpStatus": "429 - Too Many Requests"}}, {"Retry-After": "5"}),
        Reply(500, {"meta": {"httpStatus": "500 - Internal Server Error"}}),
        HANG,
    )
    fetches = worker(runtime)
    assert (await fetches.run_once()).retried == 1
    assert (await fetches.run_once(now=clock.advance(seconds=4))).claimed == 0  # Retry-After: 5
    assert (await fetches.run_once(now=clock.advance(seconds=2))).retried == 1
    assert (await fetches.run_once(now=clock.advance(seconds=21))).retried == 1  # the hang, cut at 0.5 s
    assert (await fetches.run_once(now=clock.advance(seconds=41))).done == 1
    assert len(fake.requests(QUALTRICS_PATH)) == 4
    feedback, fetches_stored = await stored(runtime)
    assert (feedback, fetches_stored) == (1, [("done", None)])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (qualtrics_form(key="another-key"), "qualtrics signature rejected: signature does not match"),
        (
            qualtrics_form(sign=False),
            "qualtrics signature rejected: missing MSG or HMAC field (set a shared key on the subscription)",
        ),
    ],
    ids=["wrong-key", "unsigned"],
)
async def test_qualtrics_bad_hmac_is_401_and_nothing_is_queued(
    client: httpx.AsyncClient, runtime: Runtime, body: bytes, reason: str
) -> None:
    response = await deliver_qualtrics(client, body)
    assert (response.status_code, response.json()) == (401, {"error": reason})
    assert await stored(runtime) == (0, [])


async def test_qualtrics_other_topic_is_ignored_and_unset_key_is_503(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await deliver_qualtrics(client, qualtrics_form(topic="controlpanel.activateSurvey"))
    assert (other.status_code, other.json()["results"]) == (200, [])
    monkeypatch.delenv("QUALTRICS_SHARED_KEY")
    disabled = await deliver_qualtrics(client, qualtrics_form())
    assert disabled.status_code == 503
    assert disabled.json() == {
        "error": "QUALTRICS_SHARED_KEY is not set on the server, so qualtrics webhooks are disabled"
    }
    assert await stored(runtime) == (0, [])


async def test_qualtrics_unknown_qids_are_a_recorded_skip(
    client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders
) -> None:
    await deliver_qualtrics(client, qualtrics_form())
    document = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    wrong = {"api_url": fake.base, "score_qid": "QID9", "comment_qid": "QID8_TEXT"}
    document["webhooks"] = {"qualtrics": QUALTRICS_SECTION | wrong}
    stats = await FetchWorker(runtime, fetch_sources(parse_config(document))).run_once()
    assert stats.skipped == 1
    assert await stored(runtime) == (
        0,
        [("skipped", f"QID9, QID8_TEXT not in response {QUALTRICS_RESPONSE}")],
    )
