"""`sync <provider>`: a gap of missed webhooks is filled from the provider's API, nothing doubled, a re-run
is a no-op. The APIs are tests/support/fake_providers.py on loopback, started here, scripted to
answer 429 with Retry-After, 5xx and a hang (cut by the client's timeout) before they answer.

Record shapes follow each provider's documented list API: Zendesk satisfaction ratings (`id`,
`ticket_id`, `score`, `comment`, `requester_id`, `group_id`, `created_at`, `updated_at`), Intercom's
conversation search (`conversations[]` with `conversation_rating`, `pages.next.starting_after`),
SurveyMonkey's bulk responses (`data[]` of response details, `links.next`). Webhook bodies are the
fixtures of tests/fixtures/surveys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from cxbot.cli import main
from cxbot.config import ConfigError, parse_config
from cxbot.ingest.sync import DailySync, SyncError, daily_syncs, run_daily_sync, sync_provider
from cxbot.models import Feedback
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.conftest import ROOT
from tests.support.clock import FrozenClock
from tests.support.fake_providers import HANG, FakeProviders, Reply

SURVEYS = Path(__file__).parent / "fixtures" / "surveys"
ZENDESK_SECRET = "zd-signing-secret-6f2b9c1e"
INTERCOM_SECRET = "ic-client-secret-0d7e4a3b"
ENV = {
    "ZENDESK_API_TOKEN": "agent@example.com/token:zd-api-token",
    "INTERCOM_ACCESS_TOKEN": "ic-access-token",
    "SURVEYMONKEY_ACCESS_TOKEN": "sm-access-token",
    "QUALTRICS_API_TOKEN": "qualtrics-api-token",
}
RATINGS = "/api/v2/satisfaction_ratings.json"
RATINGS_PAGE_2 = "/api/v2/satisfaction_ratings/page-2.json"
SEARCH = "/conversations/search"
BULK = "/v3/surveys/508912377/responses/bulk"
QUALTRICS_SURVEY = "SV_0Ae4Yk5w8n3HbG6"
EXPORT = f"/API/v3/surveys/{QUALTRICS_SURVEY}/export-responses"


def raw(name: str) -> bytes:
    return (SURVEYS / name).read_bytes()


def zendesk_rating(ticket: int, score: str, comment: str | None = None) -> dict[str, Any]:
    return {
        "id": 1000 + ticket,
        "url": f"https://acme.zendesk.com/api/v2/satisfaction_ratings/{1000 + ticket}.json",
        "assignee_id": 6596848300001,
        "group_id": 360009876543,
        "requester_id": 6596848315901 if ticket == 35436 else 7000000000000 + ticket,
        "ticket_id": ticket,
        "score": score,
        "comment": comment,
        "created_at": "2026-11-01T09:00:00Z",
        "updated_at": "2026-11-01T09:05:00Z",
    }


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders.running() as running:
        yield running


@pytest.fixture
async def runtime(settings: Settings, clock: FrozenClock, fake: FakeProviders) -> AsyncIterator[Runtime]:
    built = Runtime.build(settings=settings, config=parse_config(document(fake)), clock=clock)
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


def document(fake: FakeProviders) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    config["webhooks"]["zendesk"]["api_url"] = fake.base
    config["webhooks"]["intercom"].update(api_url=fake.base, app_id="i6wc9ipe")
    config["webhooks"]["surveymonkey"]["api_url"] = fake.base
    config["webhooks"]["qualtrics"].update(api_url=fake.base, surveys=[QUALTRICS_SURVEY])
    return config


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENDESK_WEBHOOK_SECRET", ZENDESK_SECRET)
    monkeypatch.setenv("INTERCOM_CLIENT_SECRET", INTERCOM_SECRET)


class Waits:
    """Stands in for asyncio.sleep: records what the sync would have waited, returns at once."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def external_ids(runtime: Runtime) -> list[tuple[str, str, float | None]]:
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Feedback.source, Feedback.external_id, Feedback.score))).all()
    return sorted((source, ident, score) for source, ident, score in rows)


async def zendesk_webhook(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    body = raw("zendesk_trigger_csat_bad.json")
    stamp = clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(ZENDESK_SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
    headers = {
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "Content-Type": "application/json",
        "Authorization": "",
    }
    response = await client.post("/webhooks/zendesk", content=body, headers=headers)
    assert response.json()["results"][0]["status"] == "created"


async def test_zendesk_sync_fills_the_gap_through_429_5xx_and_a_timeout_and_reruns_as_a_no_op(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, fake: FakeProviders
) -> None:
    await zendesk_webhook(client, clock)  # ticket 35436 arrived by webhook; 35437 and 35438 were lost
    fake.route(
        RATINGS,
        Reply(
            200,
            {
                "satisfaction_ratings": [
                    zendesk_rating(35436, "bad", "Nobody answered my refund question for four days."),
                    zendesk_rating(35437, "good"),
                ],
                "meta": {"has_more": True},
                "links": {"next": fake.base + RATINGS_PAGE_2},
            },
        ),
    )
    fake.route(
        RATINGS_PAGE_2,
        Reply(
            200,
            {
                "satisfaction_ratings": [
                    zendesk_rating(35438, "bad", "Wrong size twice."),
                    zendesk_rating(35439, "offered"),
                ],
                "meta": {"has_more": False},
                "links": {"next": None},
            },
        ),
    )
    fake.script(RATINGS, Reply(429, {"error": "TooManyRequests"}, {"Retry-After": "7"}), Reply(502, {}), HANG)
    waits = Waits()
    pages: list[int] = []

    report = await sync_provider(
        runtime, "zendesk", since=timedelta(days=7), env=ENV, timeout=0.3, wait=waits, progress=pages.append
    )

    assert (report.statuses["created"], report.statuses["updated"], report.statuses["duplicate"]) == (2, 0, 1)
    assert (report.pages, report.retries, pages) == (2, 3, [2, 2])
    assert waits.seconds == [7.0, 4.0, 8.0]  # Retry-After, then backoff
    [first, *_] = fake.requests(RATINGS)
    assert (
        first.headers["authorization"]
        == "Basic " + base64.b64encode(ENV["ZENDESK_API_TOKEN"].encode()).decode()
    )
    assert "score=received" in first.path and "start_time=" in first.path
    assert await external_ids(runtime) == [
        ("zendesk", "35436", 1.0),
        ("zendesk", "35437", 5.0),
        ("zendesk", "35438", 1.0),
    ]

    again = await sync_provider(runtime, "zendesk", since=timedelta(days=7), env=ENV, wait=waits)
    assert (again.statuses["created"], again.statuses["duplicate"]) == (0, 3)
    assert len(await external_ids(runtime)) == 3


async def test_intercom_sync_adds_the_missed_rating_under_the_webhooks_key(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, fake: FakeProviders
) -> None:
    body = raw("intercom_conversation_rating_added.json")
    signature = "sha1=" + hmac.new(INTERCOM_SECRET.encode(), body, hashlib.sha1).hexdigest()
    headers = {"X-Hub-Signature": signature, "Content-Type": "application/json", "Authorization": ""}
    assert (await client.post("/webhooks/intercom", content=body, headers=headers)).status_code == 200
    seen = json.loads(body)["data"]["item"]
    missed = json.loads(json.dumps(seen))
    missed["id"] = "21322009555"
    missed["conversation_rating"].update(rating=1, remark="Never got an answer.")
    unrated = {**seen, "id": "21322009600", "conversation_rating": None}
    page_1 = Reply(
        200,
        {
            "type": "conversation.list",
            "conversations": [seen, unrated],
            "pages": {"next": {"starting_after": "WzE2"}},
        },
    )
    page_2 = Reply(200, {"type": "conversation.list", "conversations": [missed], "pages": {}})
    fake.script(SEARCH, Reply(429, {"type": "error.list"}, {"Retry-After": "3"}), page_1, HANG, page_2)
    waits = Waits()

    report = await sync_provider(
        runtime, "intercom", since=timedelta(days=7), env=ENV, timeout=0.3, wait=waits
    )

    assert (report.statuses["created"], report.statuses["duplicate"], report.retries) == (1, 1, 2)
    assert waits.seconds == [3.0, 2.0]
    _, first, _, second = fake.requests(SEARCH)
    assert first.method == "POST" and first.headers["authorization"] == "Bearer ic-access-token"
    assert second.json()["pagination"]["starting_after"] == "WzE2"
    assert first.json()["query"]["field"] == "updated_at"
    assert await external_ids(runtime) == [
        ("intercom", "i6wc9ipe:21322009097", 2.0),
        ("intercom", "i6wc9ipe:21322009555", 1.0),
    ]
    fake.script(SEARCH, page_1, page_2)
    again = await sync_provider(runtime, "intercom", since=timedelta(days=7), env=ENV)
    assert (again.statuses["created"], again.statuses["duplicate"]) == (0, 2)


async def test_surveymonkey_sync_maps_bulk_responses_and_records_skips(
    runtime: Runtime, fake: FakeProviders
) -> None:
    good = json.loads(raw("surveymonkey_response_details.json"))
    unmapped = {
        **good,
        "id": "114958299999",
        "pages": [{"id": "1", "questions": [{"id": "126001001", "answers": [{"choice_id": "999"}]}]}],
    }
    fake.route(BULK, Reply(200, {"data": [good, unmapped], "per_page": 100, "links": {}}))

    report = await sync_provider(runtime, "surveymonkey", since=timedelta(days=7), env=ENV)

    assert report.statuses["created"] == 1
    assert report.skipped == ["choice 999 of question 126001001 is not mapped"]
    assert await external_ids(runtime) == [("surveymonkey", "114958291633", 3.0)]
    [request] = fake.requests(BULK)
    assert (
        "start_modified_at=" in request.path and request.headers["authorization"] == "Bearer sm-access-token"
    )


async def test_sync_stops_with_the_reason_on_a_permanent_error_or_missing_token(
    runtime: Runtime, fake: FakeProviders
) -> None:
    fake.script(RATINGS, Reply(401, {"error": "Couldn't authenticate you"}))
    with pytest.raises(SyncError, match="zendesk pull stopped: zendesk: 401"):
        await sync_provider(runtime, "zendesk", since=timedelta(days=1), env=ENV)
    with pytest.raises(SyncError, match="INTERCOM_ACCESS_TOKEN is not set"):
        await sync_provider(runtime, "intercom", since=timedelta(days=1), env={})
    with pytest.raises(SyncError, match="cannot sync 'typeform'"):
        await sync_provider(runtime, "typeform", since=timedelta(days=1), env=ENV)


def test_cli_sync_runs_and_bad_usage_is_one_line(
    tmp_path: Path, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cxbot.yaml"
    config.write_text(yaml.safe_dump(document(fake)), encoding="utf-8")
    monkeypatch.setenv("CXBOT_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cxbot.db'}")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    fake.route(
        RATINGS, Reply(200, {"satisfaction_ratings": [zendesk_rating(1, "bad")], "meta": {"has_more": False}})
    )

    assert main(["sync", "zendesk", "--since", "3d", "--no-progress"]) == 0
    assert (
        "sync zendesk: 1 created, 0 updated, 0 duplicate, 0 error, 0 skipped (1 pages, 0 retries)"
        in capsys.readouterr().err
    )
    assert main(["sync", "zendesk", "--since", "3d", "--no-progress"]) == 0
    assert "0 created, 0 updated, 1 duplicate" in capsys.readouterr().err

    assert main(["sync", "medallia"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "sync: cannot sync 'medallia' (can: intercom, qualtrics, surveymonkey, zendesk)"
    )
    assert main(["sync", "zendesk", "--since", "soon"]) == 2
    assert "--since: 'soon' is not a duration" in capsys.readouterr().err


async def test_qualtrics_sync_runs_the_export_and_reruns_as_a_no_op(
    runtime: Runtime, fake: FakeProviders
) -> None:
    record = json.loads(raw("qualtrics_response.json"))["result"]
    unmapped = {"responseId": "R_9zz", "values": {"recordedDate": "2026-11-02T10:00:00Z", "QID7": 4}}
    fake.route(EXPORT, Reply(200, {"result": {"progressId": "ES_1", "status": "inProgress"}, "meta": {}}))
    fake.route(f"{EXPORT}/ES_1", Reply(200, {"result": {"fileId": "F_1", "status": "complete"}}))
    fake.script(
        f"{EXPORT}/ES_1",
        Reply(200, {"result": {"status": "inProgress", "percentComplete": 40.0}}),
        Reply(503, {}),
    )
    fake.route(f"{EXPORT}/F_1/file", Reply(200, {"responses": [record, unmapped]}))
    waits = Waits()

    report = await sync_provider(runtime, "qualtrics", since=timedelta(days=7), env=ENV, wait=waits)

    assert report.statuses["created"] == 1
    assert report.skipped == ["QID1, QID2_TEXT not in response R_9zz"]
    assert waits.seconds == [2.0, 2.0]  # one poll still in progress, one 503 retried
    [start] = [r for r in fake.requests(EXPORT) if r.method == "POST"]
    assert start.json()["format"] == "json" and start.json()["compress"] is False
    assert start.headers["x-api-token"] == "qualtrics-api-token"
    assert await external_ids(runtime) == [("qualtrics", "R_3fMk2Jt9qWx1YzA", 2.0)]
    again = await sync_provider(runtime, "qualtrics", since=timedelta(days=7), env=ENV, wait=waits)
    assert (again.statuses["created"], again.statuses["duplicate"]) == (0, 1)


async def test_daily_sync_from_the_config_pulls_and_never_raises(
    settings: Settings, clock: FrozenClock, fake: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    config = document(fake)
    config["webhooks"]["zendesk"].update(sync_daily_at="03:30", sync_since="36h")
    parsed = parse_config(config)
    assert daily_syncs(parsed) == [DailySync("zendesk", 3, 30, timedelta(hours=36))]
    built = Runtime.build(settings=settings, config=parsed, clock=clock)
    await built.sync_directory()
    try:
        fake.route(RATINGS, Reply(200, {"satisfaction_ratings": [zendesk_rating(7, "bad")], "meta": {}}))
        [job] = daily_syncs(parsed)
        report = await run_daily_sync(built, job, env=ENV)
        assert report is not None and report.statuses["created"] == 1
        [request] = fake.requests(RATINGS)
        assert f"start_time={int((clock() - timedelta(hours=36)).timestamp())}" in request.path
        fake.script(RATINGS, Reply(403, {"error": "Forbidden"}))
        assert await run_daily_sync(built, job, env=ENV) is None
        assert "daily sync zendesk: zendesk pull stopped: zendesk: 403" in caplog.text
    finally:
        await built.close()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sync_daily_at": "25:00"}, "sync_daily_at: '25:00' is not a time of day like 03:30"),
        ({"sync_since": "a week"}, "sync_since: 'a week' is not a number of days or hours like 2d"),
    ],
)
def test_check_config_rejects_a_bad_daily_sync(changes: dict[str, str], message: str) -> None:
    config = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    config["webhooks"]["intercom"].update(changes)
    with pytest.raises(ConfigError, match=message):
        parse_config(config)
