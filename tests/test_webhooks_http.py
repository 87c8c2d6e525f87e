"""`POST /webhooks/<provider>`: real survey payloads, signed here with hmac, through the real ASGI app.

Signatures are computed independently of cxbot.ingest.providers, from each provider's documented
scheme (see that module's docstring): Delighted hex HMAC-SHA256 of the body, Typeform base64
HMAC-SHA256 prefixed `sha256=`, Formbricks Standard Webhooks (`{id}.{timestamp}.{body}`, whsec_ key).
Payloads are tests/fixtures/surveys (provenance in PROVENANCE.md there).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from cxbot.config import Config, parse_config
from cxbot.models import Case, CaseEvent, Customer, Feedback, OutboxMessage
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.conftest import ROOT
from tests.support.clock import FrozenClock

SURVEYS = Path(__file__).parent / "fixtures" / "surveys"

DELIGHTED_SECRET = "d3l1ght3d-private-api-key"
TYPEFORM_SECRET = "0b9a1e5c7d2f4a6b8c0d1e2f3a4b5c6d7e8f9a0b"
FORMBRICKS_KEY = b"formbricks-test-signing-key-32by"
FORMBRICKS_SECRET = "whsec_" + base64.b64encode(FORMBRICKS_KEY).decode()
ZENDESK_SECRET = "zd-signing-secret-6f2b9c1e"
INTERCOM_SECRET = "ic-client-secret-0d7e4a3b"
SM_API_KEY = "sm-api-key-5c1d"
SM_API_SECRET = "sm-api-secret-9e2f"
SECRETS = {
    "DELIGHTED_WEBHOOK_SECRET": DELIGHTED_SECRET,
    "TYPEFORM_WEBHOOK_SECRET": TYPEFORM_SECRET,
    "FORMBRICKS_WEBHOOK_SECRET": FORMBRICKS_SECRET,
    "ZENDESK_WEBHOOK_SECRET": ZENDESK_SECRET,
    "INTERCOM_CLIENT_SECRET": INTERCOM_SECRET,
    "SURVEYMONKEY_API_KEY": SM_API_KEY,
    "SURVEYMONKEY_API_SECRET": SM_API_SECRET,
}

NON_PROMOTER = "delighted_survey_response_updated_non_promoter.json"
PROMOTER = "delighted_survey_response_updated_promoter.json"
TYPEFORM_CSAT = "typeform_form_response_csat.json"
FORMBRICKS_CREATED = "formbricks_responseCreated.json"
FORMBRICKS_UPDATED = "formbricks_responseUpdated.json"
FORMBRICKS_FINISHED = "formbricks_responseFinished.json"
ZENDESK_TRIGGER = "zendesk_trigger_csat_bad.json"
ZENDESK_EVENT = "zendesk_event_ticket_csat_received.json"
ZENDESK_OTHER_EVENT = "zendesk_event_user_group_membership_created.json"
INTERCOM_RATING = "intercom_conversation_rating_added.json"
INTERCOM_PING = "intercom_ping.json"

#: The webhooks section of cxbot.yaml these tests run with (the rest is cxbot.example.yaml).
WEBHOOKS: dict[str, dict[str, Any]] = {
    "delighted": {"secret_env": "DELIGHTED_WEBHOOK_SECRET", "metric": "nps"},
    "typeform": {
        "metric": "csat",
        "score_field_ref": "support_csat",
        "comment_field_ref": "support_comment",
        "email_field_ref": "followup_email",
        "customer_hidden_field": "user_id",
        "touchpoint": "support-email",
    },
    "formbricks": {
        "metric": "nps",
        "score_question": "nps",
        "comment_question": "q2",
        "touchpoint": "website",
        "tags": ["formbricks"],
    },
    "zendesk": {
        "secret_env": "ZENDESK_WEBHOOK_SECRET",
        "rating_scale": 5,
        "touchpoint_field": "group",
        "touchpoint_map": {"Billing": "refunds", "360009876543": "refunds"},
    },
    "intercom": {"exclude_bot_conversations": True, "touchpoint": "support-chat"},
    # Fetching is tested in test_fetch_providers.py; here only what the webhook itself answers.
    "surveymonkey": {"score_question": "126001001", "choice_scores": {"830000003": 3}},
}


def raw(name: str) -> bytes:
    return (SURVEYS / name).read_bytes()


# --- independent signers ----------------------------------------------------------------------------


def delighted_headers(body: bytes, *, secret: str = DELIGHTED_SECRET, **_: Any) -> dict[str, str]:
    return {"X-Delighted-Webhook-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def typeform_headers(body: bytes, *, secret: str = TYPEFORM_SECRET, **_: Any) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()}


def formbricks_headers(
    body: bytes, *, secret: str = FORMBRICKS_SECRET, at: datetime, msg_id: str = "msg_cx01"
) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    stamp = str(int(at.timestamp()))
    signature = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(signature).decode(),
    }


def zendesk_headers(
    body: bytes, *, secret: str = ZENDESK_SECRET, at: datetime, stamp: str | None = None
) -> dict[str, str]:
    stamp = stamp or at.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


def intercom_headers(body: bytes, *, secret: str = INTERCOM_SECRET, **_: Any) -> dict[str, str]:
    return {"X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


def surveymonkey_headers(body: bytes, *, secret: str = SM_API_SECRET, **_: Any) -> dict[str, str]:
    digest = hmac.new(f"{SM_API_KEY}&{secret}".encode(), body, hashlib.sha1).digest()
    return {"Sm-Signature": base64.b64encode(digest).decode()}


Signer = Callable[..., dict[str, str]]
SIGNERS: dict[str, Signer] = {
    "delighted": delighted_headers,
    "typeform": typeform_headers,
    "formbricks": formbricks_headers,
    "zendesk": zendesk_headers,
    "intercom": intercom_headers,
    "surveymonkey": surveymonkey_headers,
}
#: One real payload per provider that, correctly signed, would store a feedback item.
PAYLOADS = {
    "delighted": NON_PROMOTER,
    "typeform": TYPEFORM_CSAT,
    "formbricks": FORMBRICKS_FINISHED,
    "zendesk": ZENDESK_TRIGGER,
    "intercom": INTERCOM_RATING,
    "surveymonkey": "surveymonkey_response_completed.json",
}
SECRET_ENV = {
    "delighted": "DELIGHTED_WEBHOOK_SECRET",
    "typeform": "TYPEFORM_WEBHOOK_SECRET",
    "formbricks": "FORMBRICKS_WEBHOOK_SECRET",
    "zendesk": "ZENDESK_WEBHOOK_SECRET",
    "intercom": "INTERCOM_CLIENT_SECRET",
    "surveymonkey": "SURVEYMONKEY_API_SECRET",
}
WRONG_SECRETS = {
    "delighted": "another-private-api-key",
    "typeform": "another-typeform-secret",
    "formbricks": "whsec_" + base64.b64encode(b"another-signing-key-of-32-bytes!").decode(),
    "zendesk": "another-zendesk-secret",
    "intercom": "another-intercom-secret",
    "surveymonkey": "another-surveymonkey-secret",
}


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def webhook_config() -> Config:
    """cxbot.example.yaml with every provider's questions mapped, validated like a real start-up."""
    document = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    document["webhooks"] = WEBHOOKS
    return parse_config(document)


@pytest.fixture
async def runtime(settings: Settings, webhook_config: Config, clock: FrozenClock) -> AsyncIterator[Runtime]:
    """Overrides conftest's runtime (and so `client`) with the webhook configuration."""
    built = Runtime.build(settings=settings, config=webhook_config, clock=clock)
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


async def counts(runtime: Runtime) -> dict[str, int]:
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


async def deliver(
    client: httpx.AsyncClient, provider: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    # Webhooks carry their own signature, not the API key: send without it to prove it is not needed.
    return await client.post(
        f"/webhooks/{provider}",
        content=body,
        headers={**headers, "Content-Type": "application/json", "Authorization": ""},
    )


async def signed(client: httpx.AsyncClient, clock: FrozenClock, provider: str, body: bytes) -> httpx.Response:
    return await deliver(client, provider, body, SIGNERS[provider](body, at=clock()))


async def seed_one_case(client: httpx.AsyncClient) -> None:
    """Something already stored, so 'nothing stored' means the counts did not move."""
    response = await client.post(
        "/feedback",
        json={
            "external_id": "seed-1",
            "source": "api-test",
            "metric": "nps",
            "score": 2,
            "touchpoint": "delivery",
            "customer": {"id": "seed-customer", "email": "seed@example.com"},
        },
    )
    assert response.json()["results"][0]["case"] == "CX-1"


# --- Delighted --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "score", "email", "opens_case"),
    [
        (NON_PROMOTER, 5, "paul_gravis@example.com", True),
        (PROMOTER, 9, "charlie_gravis@example.com", False),
    ],
    ids=["non-promoter", "promoter"],
)
async def test_delighted_fixture_is_stored_and_only_the_non_promoter_opens_a_case(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    name: str,
    score: int,
    email: str,
    opens_case: bool,
) -> None:
    response = await signed(client, clock, "delighted", raw(name))

    assert response.status_code == 200
    [result] = response.json()["results"]
    assert (result["status"], result["id"]) == ("created", 1)
    # person_properties is null in the fixtures: no touchpoint, and the comment matches no rule.
    assert result["warnings"] == ["no touchpoint; no rule matched, so the fallback team support owns it"]
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
        customer = (await session.execute(select(Customer))).scalar_one()
        cases = (await session.execute(select(Case))).scalars().all()
    assert (feedback.source, feedback.external_id, feedback.metric, feedback.score) == (
        "delighted",
        "5435",
        "nps",
        float(score),
    )
    assert feedback.comment is not None and feedback.comment.startswith("Your service is")
    assert feedback.received_at == datetime.fromtimestamp(1482589409, tz=UTC)
    assert (feedback.team_key, feedback.customer_id) == ("support", customer.id)
    assert (customer.external_id, customer.email) == ("5975", email)
    if opens_case:
        assert result["case"] == "CX-1"
        [case] = cases
        assert (case.team_key, case.routing_rule, case.feedback_id) == ("support", "fallback", feedback.id)
        assert case.routing_reason.startswith("NPS 5 is at or below 6; no touchpoint")
    else:
        assert "case" not in result
        assert cases == []


async def test_delighted_created_then_updated_is_one_feedback_never_double_counted(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    # The fixtures are from December 2016; put the clock a day later so the 28-day window holds them.
    clock.now = datetime(2016, 12, 25, 12, 0, tzinfo=UTC)
    updated_body = raw(NON_PROMOTER)
    created = json.loads(updated_body)
    created["event_type"] = "survey_response.created"
    created["event_data"]["comment"] = None  # Delighted sends the score first, the comment later
    created_body = json.dumps(created).encode()

    first = await signed(client, clock, "delighted", created_body)
    second = await signed(client, clock, "delighted", updated_body)
    replay = await signed(client, clock, "delighted", updated_body)

    assert [r.status_code for r in (first, second, replay)] == [200, 200, 200]
    assert first.json()["results"][0]["status"] == "created"
    assert first.json()["results"][0]["case"] == "CX-1"
    assert second.json()["results"][0]["status"] == "updated"
    assert "case" not in second.json()["results"][0]  # the case from the score is not opened again
    assert replay.json()["results"][0]["status"] == "duplicate"
    assert await counts(runtime) == {"feedback": 1, "customers": 1, "cases": 1, "case_events": 1}
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
    assert feedback.comment == "Your service is slow, but nearly flawless! Keep up the good work!"
    assert feedback.score == 5.0

    scores = await client.get("/api/scores", params={"metric": "nps", "window": "28d"})
    nps = scores.json()["scores"]["nps"]
    assert (nps["n"], nps["score"]) == (1, -100.0)


async def test_delighted_update_that_raises_the_score_replaces_it(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    # Both fixtures are the same response (id 5435): replayed in order they are one feedback whose
    # score moved from 5 to 9; the score counts once, at its latest value.
    clock.now = datetime(2016, 12, 25, 12, 0, tzinfo=UTC)
    first = await signed(client, clock, "delighted", raw(NON_PROMOTER))
    second = await signed(client, clock, "delighted", raw(PROMOTER))
    assert [first.json()["results"][0]["status"], second.json()["results"][0]["status"]] == [
        "created",
        "updated",
    ]
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
        customer = (await session.execute(select(Customer))).scalar_one()
    assert feedback.score == 9.0
    assert customer.email == "charlie_gravis@example.com"  # the person's latest details win
    nps = (await client.get("/api/scores", params={"metric": "nps"})).json()["scores"]["nps"]
    assert (nps["n"], nps["score"]) == (1, 100.0)
    # The open case is told, not reopened or doubled.
    assert await counts(runtime) == {"feedback": 1, "customers": 1, "cases": 1, "case_events": 2}


async def test_delighted_score_out_of_range_is_422_with_the_item_reason(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    payload = json.loads(raw(NON_PROMOTER))
    payload["event_data"]["score"] = 11
    response = await signed(client, clock, "delighted", json.dumps(payload).encode())
    assert response.status_code == 422
    assert response.json() == {
        "results": [{"index": 0, "status": "error", "reason": "score: 11 is out of range 0-10 for nps"}]
    }
    assert await counts(runtime) == {"feedback": 0, "customers": 0, "cases": 0, "case_events": 0}


async def test_delighted_event_without_a_response_is_acknowledged_and_ignored(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    body = json.dumps({"event_type": "survey_response.unsubscribed", "event_data": {"person": {}}}).encode()
    response = await signed(client, clock, "delighted", body)
    assert response.status_code == 200
    assert response.json() == {"results": [], "note": "event carries no survey response; ignored"}
    assert (await counts(runtime))["feedback"] == 0


# --- Formbricks -------------------------------------------------------------------------------------


async def test_formbricks_created_updated_finished_is_one_feedback(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    # Mapping: the score is question "nps" (not answered in the samples), the comment is "q2".
    created = await signed(client, clock, "formbricks", raw(FORMBRICKS_CREATED))
    assert created.status_code == 200
    assert created.json() == {"results": [], "note": "event carries no survey response; ignored"}
    assert (await counts(runtime))["feedback"] == 0

    updated = await signed(client, clock, "formbricks", raw(FORMBRICKS_UPDATED))
    finished = await signed(client, clock, "formbricks", raw(FORMBRICKS_FINISHED))

    assert updated.json() == {"results": [{"index": 0, "status": "created", "id": 1}]}
    assert finished.json() == {"results": [{"index": 0, "status": "updated", "id": 1}]}
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
    assert (feedback.source, feedback.external_id) == ("formbricks", "responseId")
    assert (feedback.metric, feedback.score, feedback.comment) == ("comment", None, "accepted")
    assert (feedback.touchpoint_key, feedback.team_key) == ("website", "product")
    assert feedback.tags == ["formbricks"]
    assert feedback.received_at == datetime(2025, 7, 24, 7, 47, 29, 507000, tzinfo=UTC)
    assert await counts(runtime) == {"feedback": 1, "customers": 0, "cases": 0, "case_events": 0}


async def test_formbricks_score_arriving_later_turns_the_comment_into_nps_and_opens_a_case(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    [event] = json.loads(raw(FORMBRICKS_FINISHED))
    event["data"]["data"]["nps"] = 4
    event["data"]["contact"] = {"id": "clx0contact0001", "userId": "user-42"}
    event["data"]["contactAttributes"] = {"email": "ana@example.com", "firstName": "Ana", "lastName": "Ruiz"}

    comment_first = await signed(client, clock, "formbricks", raw(FORMBRICKS_UPDATED))
    with_score = await signed(client, clock, "formbricks", json.dumps([event]).encode())

    assert comment_first.json()["results"][0]["status"] == "created"
    [result] = with_score.json()["results"]
    assert (result["status"], result["id"], result["case"]) == ("updated", 1, "CX-1")
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
        case = (await session.execute(select(Case))).scalar_one()
        customer = (await session.execute(select(Customer))).scalar_one()
    assert (feedback.metric, feedback.score, feedback.comment) == ("nps", 4.0, "accepted")
    assert (case.team_key, case.routing_rule) == ("product", "touchpoint:website")
    assert (customer.external_id, customer.name, customer.email) == ("user-42", "Ana Ruiz", "ana@example.com")


async def test_formbricks_timestamp_just_inside_the_tolerance_is_accepted(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    body = raw(FORMBRICKS_UPDATED)
    headers = formbricks_headers(body, at=clock() - timedelta(minutes=4, seconds=59))
    response = await deliver(client, "formbricks", body, headers)
    assert response.status_code == 200
    assert (await counts(runtime))["feedback"] == 1


# --- Typeform ---------------------------------------------------------------------------------------


async def test_typeform_csat_response_opens_a_case_for_the_mapped_touchpoint(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    body = raw(TYPEFORM_CSAT)
    response = await signed(client, clock, "typeform", body)
    again = await signed(client, clock, "typeform", body)

    assert response.status_code == 200
    assert response.json() == {"results": [{"index": 0, "status": "created", "id": 1, "case": "CX-1"}]}
    assert again.json() == {"results": [{"index": 0, "status": "duplicate", "id": 1}]}
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
        case = (await session.execute(select(Case))).scalar_one()
        customer = (await session.execute(select(Customer))).scalar_one()
    assert (feedback.source, feedback.external_id) == ("typeform", "9f3c2b7e1d4a4c0b8e6f5a2d1c3b4a59")
    assert (feedback.metric, feedback.score) == ("csat", 2.0)
    assert feedback.comment == "The first agent closed my ticket before the refund went through."
    assert (feedback.touchpoint_key, feedback.team_key) == ("support-email", "support")
    assert (customer.external_id, customer.email) == ("cus_48213", "dana.okafor@example.com")
    assert (case.team_key, case.routing_rule) == ("support", "touchpoint:support-email")
    assert case.routing_reason.startswith("CSAT 2 is at or below 2")


# --- rejected deliveries: 401 naming the provider, nothing stored ----------------------------------

PROVIDER_NAMES = ["delighted", "typeform", "formbricks", "zendesk", "intercom", "surveymonkey"]


def _missing(provider: str, body: bytes, at: datetime) -> tuple[bytes, dict[str, str]]:
    return body, {}


def _garbage(provider: str, body: bytes, at: datetime) -> tuple[bytes, dict[str, str]]:
    headers = SIGNERS[provider](body, at=at)
    name = next(iter(k for k in headers if "signature" in k.lower()))
    headers[name] = {
        "delighted": "0" * 64,
        "typeform": "sha256=AAAA",
        "formbricks": "v1,AAAA",
        "zendesk": "AAAA",
        "intercom": "sha1=" + "0" * 40,
        "surveymonkey": "AAAA",
    }[provider]
    return body, headers


def _tampered(provider: str, body: bytes, at: datetime) -> tuple[bytes, dict[str, str]]:
    headers = SIGNERS[provider](body, at=at)
    tampered = body.replace(b"example.com", b"example.org", 1).replace(b'"q2"', b'"q3"', 1)
    tampered = tampered.replace(b'"rating":2', b'"rating":5', 1)
    return tampered.replace(b'"114958291633"', b'"114958291634"', 1), headers


def _wrong_secret(provider: str, body: bytes, at: datetime) -> tuple[bytes, dict[str, str]]:
    return body, SIGNERS[provider](body, at=at, secret=WRONG_SECRETS[provider])


BREAKAGES = {
    "missing-signature": (_missing, "missing "),
    "garbage-signature": (_garbage, "signature does not match"),
    "tampered-body": (_tampered, "signature does not match"),
    "wrong-secret": (_wrong_secret, "signature does not match"),
}


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@pytest.mark.parametrize("breakage", list(BREAKAGES))
async def test_bad_signature_is_401_naming_the_provider_and_nothing_is_stored(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, provider: str, breakage: str
) -> None:
    await seed_one_case(client)
    before = await counts(runtime)
    good = raw(PAYLOADS[provider])
    make, why = BREAKAGES[breakage]
    body, headers = make(provider, good, clock())
    if breakage == "tampered-body":
        assert body != good

    response = await deliver(client, provider, body, headers)

    assert response.status_code == 401
    reason = response.json()["error"]
    assert reason.startswith(f"{provider} signature rejected: {why}")
    assert await counts(runtime) == before
    metrics = (await client.get("/metrics")).text
    assert f'cxbot_webhook_rejected_total{{provider="{provider}",reason="signature"}} 1' in metrics


@pytest.mark.parametrize("minutes", [-6, 6, -60 * 24])
async def test_formbricks_timestamp_outside_the_tolerance_is_401_and_nothing_is_stored(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, minutes: int
) -> None:
    await seed_one_case(client)
    before = await counts(runtime)
    body = raw(FORMBRICKS_FINISHED)
    # Correctly signed, but at a time too far from the server's clock: a replay or a skewed sender.
    headers = formbricks_headers(body, at=clock() + timedelta(minutes=minutes))
    response = await deliver(client, "formbricks", body, headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": "formbricks signature rejected: webhook-timestamp is too far from the current time"
    }
    assert await counts(runtime) == before


async def test_formbricks_timestamp_that_is_not_a_number_is_401(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    body = raw(FORMBRICKS_FINISHED)
    headers = formbricks_headers(body, at=clock())
    headers["webhook-timestamp"] = "yesterday"
    response = await deliver(client, "formbricks", body, headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": "formbricks signature rejected: webhook-timestamp is not a Unix timestamp"
    }
    assert (await counts(runtime))["feedback"] == 0


# --- other refusals ---------------------------------------------------------------------------------


async def test_unknown_provider_is_404(client: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await client.post("/webhooks/medallia", content=b"{}")
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown provider 'medallia' "
        "(known: delighted, formbricks, intercom, qualtrics, surveymonkey, typeform, zendesk)"
    }


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
async def test_secret_not_set_is_503_naming_the_variable(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
) -> None:
    variable = SECRET_ENV[provider]
    monkeypatch.delenv(variable)
    response = await signed(client, clock, provider, raw(PAYLOADS[provider]))
    assert response.status_code == 503
    assert response.json() == {
        "error": f"{variable} is not set on the server, so {provider} webhooks are disabled"
    }
    monkeypatch.setenv(variable, "")  # set but empty is the same as unset
    again = await signed(client, clock, provider, raw(PAYLOADS[provider]))
    assert again.status_code == 503
    assert (await counts(runtime))["feedback"] == 0


async def test_provider_left_out_of_the_configuration_is_503_naming_the_section(
    settings: Settings, example_config: Config, clock: FrozenClock
) -> None:
    # cxbot.example.yaml maps no Formbricks questions, and Formbricks has no sensible default.
    assert "formbricks" not in example_config.webhooks
    bare = Runtime.build(settings=settings, config=example_config, clock=clock)
    await bare.sync_directory()
    transport = httpx.ASGITransport(app=create_app(bare), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://cxbot.test") as http:
            response = await signed(http, clock, "formbricks", raw(FORMBRICKS_FINISHED))
            # Delighted and Typeform work from their defaults without a section.
            typeform = await signed(http, clock, "typeform", raw(TYPEFORM_CSAT))
        assert response.status_code == 503
        assert response.json() == {
            "error": "webhooks.formbricks in the server's configuration is missing or incomplete, "
            "so formbricks webhooks are disabled (score_question: required for metric 'nps')"
        }
        assert typeform.status_code == 200
        assert typeform.json()["results"][0]["status"] == "created"
        assert (await counts(bare))["feedback"] == 1
    finally:
        await bare.close()


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"this is not json", "body is not JSON: Expecting value at line 1 column 1"),
        (b'{"event_type": ', "body is not JSON: Expecting value at line 1 column 16"),
    ],
    ids=["text", "truncated"],
)
async def test_not_json_with_a_valid_signature_is_422(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, provider: str, body: bytes, reason: str
) -> None:
    response = await signed(client, clock, provider, body)
    assert response.status_code == 422
    assert response.json() == {"error": reason}
    assert (await counts(runtime))["feedback"] == 0


@pytest.mark.parametrize(
    ("provider", "reason"),
    [
        ("delighted", "not a delighted payload: delighted: event_type: expected a string, got null"),
        ("typeform", "not a typeform payload: typeform: event_type: expected a string, got null"),
        ("formbricks", "not a formbricks payload: formbricks: body.event: expected a string, got null"),
        (
            "zendesk",
            "not a zendesk payload: zendesk: expected a trigger body with ticket_id and rating, "
            "or a zen:event-type event",
        ),
        ("intercom", "not a intercom payload: intercom: topic: expected a string, got null"),
        (
            "surveymonkey",
            "not a surveymonkey payload: surveymonkey: event_type: expected a string, got null",
        ),
    ],
)
async def test_json_that_is_not_the_providers_payload_is_422(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, provider: str, reason: str
) -> None:
    response = await signed(client, clock, provider, b'{"hello": "world"}')
    assert response.status_code == 422
    assert response.json() == {"error": reason}
    assert (await counts(runtime))["feedback"] == 0


# --- Zendesk ----------------------------------------------------------------------------------------


def zendesk_body(name: str = ZENDESK_TRIGGER, **changes: Any) -> bytes:
    document = json.loads(raw(name))
    document.update(changes)
    return json.dumps(document).encode()


async def test_zendesk_trigger_bad_rating_opens_a_billing_case_for_the_requester(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    response = await signed(client, clock, "zendesk", raw(ZENDESK_TRIGGER))

    assert response.status_code == 200
    assert response.json() == {"results": [{"index": 0, "status": "created", "id": 1, "case": "CX-1"}]}
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
        case = (await session.execute(select(Case))).scalar_one()
        customer = (await session.execute(select(Customer))).scalar_one()
    assert (feedback.source, feedback.external_id, feedback.metric, feedback.score) == (
        "zendesk",
        "35436",
        "csat",
        1.0,
    )
    assert feedback.comment == "Nobody answered my refund question for four days."
    assert (feedback.touchpoint_key, feedback.team_key) == ("refunds", "billing")  # group Billing, mapped
    assert feedback.received_at == datetime(2026, 11, 2, 11, 58, tzinfo=UTC)
    assert (customer.external_id, customer.name, customer.email) == (
        "6596848315901",
        "Maria Lopez",
        "maria.lopez@example.com",
    )
    assert (case.team_key, case.routing_rule) == ("billing", "touchpoint:refunds")


async def test_zendesk_rating_changed_later_updates_the_same_feedback_in_either_shape(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    bad = await signed(client, clock, "zendesk", raw(ZENDESK_TRIGGER))
    clock.advance(minutes=10)
    good = await signed(client, clock, "zendesk", zendesk_body(rating="Good, I'm satisfied"))
    event = json.loads(raw(ZENDESK_EVENT))
    event["event"]["current"]["score"] = "good"
    clock.advance(minutes=10)
    same_as_event = await signed(client, clock, "zendesk", json.dumps(event).encode())

    assert [r.json()["results"][0]["status"] for r in (bad, good, same_as_event)] == [
        "created",
        "updated",
        "duplicate",
    ]
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
    assert feedback.score == 5.0
    csat = (await client.get("/api/scores", params={"metric": "csat"})).json()["scores"]["csat"]
    assert csat["n"] == 1  # one ticket, one answer, counted once at its latest value
    assert await counts(runtime) == {"feedback": 1, "customers": 1, "cases": 1, "case_events": 2}


async def test_zendesk_csat_received_event_is_stored_under_the_ticket_id(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    response = await signed(client, clock, "zendesk", raw(ZENDESK_EVENT))
    assert response.json() == {"results": [{"index": 0, "status": "created", "id": 1, "case": "CX-1"}]}
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
        customer = (await session.execute(select(Customer))).scalar_one()
    assert (feedback.external_id, feedback.score, feedback.touchpoint_key) == ("35436", 1.0, "refunds")
    assert (customer.external_id, customer.email) == ("6596848315901", None)


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        (ZENDESK_OTHER_EVENT, {}),  # another event type the webhook is subscribed to
        (ZENDESK_TRIGGER, {"rating": "offered"}),  # survey sent, not answered yet
    ],
    ids=["other-event-type", "offered-not-answered"],
)
async def test_zendesk_delivery_without_a_rating_is_acknowledged_and_ignored(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, name: str, changes: dict[str, Any]
) -> None:
    response = await signed(client, clock, "zendesk", zendesk_body(name, **changes))
    assert response.status_code == 200
    assert response.json() == {"results": [], "note": "event carries no survey response; ignored"}
    assert (await counts(runtime))["feedback"] == 0


@pytest.mark.parametrize(
    ("rating", "reason"),
    [
        (7, "not a zendesk payload: zendesk: rating: 7 is not on the 5-point scale (1-5)"),
        ("meh", "not a zendesk payload: zendesk: rating: 'meh' is not good, bad or a number"),
        (True, "not a zendesk payload: zendesk: rating: expected good, bad or a number, got bool"),
    ],
)
async def test_zendesk_rating_off_the_scale_is_422_and_nothing_is_stored(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, rating: Any, reason: str
) -> None:
    response = await signed(client, clock, "zendesk", zendesk_body(rating=rating))
    assert response.status_code == 422
    assert response.json() == {"error": reason}
    assert (await counts(runtime))["feedback"] == 0


@pytest.mark.parametrize("minutes", [-6, 6, -60 * 24])
async def test_zendesk_stale_timestamp_is_401_and_nothing_is_stored(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock, minutes: int
) -> None:
    await seed_one_case(client)
    before = await counts(runtime)
    body = raw(ZENDESK_TRIGGER)
    response = await deliver(
        client, "zendesk", body, zendesk_headers(body, at=clock() + timedelta(minutes=minutes))
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": "zendesk signature rejected: "
        "X-Zendesk-Webhook-Signature-Timestamp is too far from the current time"
    }
    assert await counts(runtime) == before


async def test_zendesk_replay_inside_the_window_is_a_duplicate_never_a_second_feedback(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    body = raw(ZENDESK_TRIGGER)
    headers = zendesk_headers(body, at=clock())
    first = await deliver(client, "zendesk", body, headers)
    clock.advance(minutes=4)
    replay = await deliver(client, "zendesk", body, headers)
    assert [first.json()["results"][0]["status"], replay.json()["results"][0]["status"]] == [
        "created",
        "duplicate",
    ]
    assert await counts(runtime) == {"feedback": 1, "customers": 1, "cases": 1, "case_events": 1}


async def test_zendesk_timestamp_that_is_not_a_time_is_401(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    body = raw(ZENDESK_TRIGGER)
    response = await deliver(client, "zendesk", body, zendesk_headers(body, at=clock(), stamp="yesterday"))
    assert response.status_code == 401
    assert response.json() == {
        "error": "zendesk signature rejected: X-Zendesk-Webhook-Signature-Timestamp is not a timestamp"
    }


# --- Intercom ---------------------------------------------------------------------------------------


def intercom_body(*, app_id: str = "i6wc9ipe", **rating: Any) -> bytes:
    document = json.loads(raw(INTERCOM_RATING))
    document["app_id"] = app_id
    document["data"]["item"]["conversation_rating"].update(rating)
    return json.dumps(document).encode()


async def test_intercom_rating_is_csat_for_the_contact_and_opens_a_case(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    response = await signed(client, clock, "intercom", raw(INTERCOM_RATING))

    assert response.status_code == 200
    assert response.json() == {"results": [{"index": 0, "status": "created", "id": 1, "case": "CX-1"}]}
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
        customer = (await session.execute(select(Customer))).scalar_one()
        case = (await session.execute(select(Case))).scalar_one()
    assert (feedback.source, feedback.external_id) == ("intercom", "i6wc9ipe:21322009097")
    assert (feedback.metric, feedback.score, feedback.comment) == (
        "csat",
        2.0,
        "Closed before my refund was sorted.",
    )
    assert (feedback.touchpoint_key, feedback.team_key) == ("support-chat", "support")
    assert feedback.received_at == datetime.fromtimestamp(1553291455, tz=UTC)
    assert (customer.external_id, customer.name, customer.email) == (
        "75067020-1204-495c-8edc-abb7d88bdd43",
        "Eeshan Garg",
        "jerryguitarist@gmail.com",
    )
    assert case.routing_reason.startswith("CSAT 2 is at or below 2")


async def test_intercom_ping_and_other_topics_are_200_and_store_nothing(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    ping = await signed(client, clock, "intercom", raw(INTERCOM_PING))
    closed = json.loads(raw(INTERCOM_RATING))
    closed["topic"] = "conversation.admin.closed"
    other = await signed(client, clock, "intercom", json.dumps(closed).encode())
    for response in (ping, other):
        assert response.status_code == 200
        assert response.json() == {"results": [], "note": "event carries no survey response; ignored"}
    assert (await counts(runtime))["feedback"] == 0


async def test_intercom_rating_changed_later_updates_the_same_feedback(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    first = await signed(client, clock, "intercom", raw(INTERCOM_RATING))
    changed = await signed(client, clock, "intercom", intercom_body(rating=4, remark="Sorted in the end."))
    again = await signed(client, clock, "intercom", intercom_body(rating=4, remark="Sorted in the end."))
    assert [r.json()["results"][0]["status"] for r in (first, changed, again)] == [
        "created",
        "updated",
        "duplicate",
    ]
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
    assert (feedback.score, feedback.comment) == (4.0, "Sorted in the end.")
    assert await counts(runtime) == {"feedback": 1, "customers": 1, "cases": 1, "case_events": 2}
    async with runtime.sessions() as session:
        event = (await session.execute(select(CaseEvent).order_by(CaseEvent.id.desc()).limit(1))).scalar_one()
        refreshes = (
            (await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "case.card")))
            .scalars()
            .all()
        )
    assert (event.kind, event.detail) == ("rating_changed", "Rating changed from CSAT 2 to CSAT 4")
    # The card is refreshed with the new rating (a second case.card row per destination of the team).
    assert [r.payload["text"] for r in refreshes][-1] == "Rating changed from CSAT 2 to CSAT 4"


async def test_intercom_same_conversation_id_in_two_workspaces_does_not_collide(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    await signed(client, clock, "intercom", raw(INTERCOM_RATING))
    other = await signed(client, clock, "intercom", intercom_body(app_id="q9zz0abc"))
    assert other.json()["results"][0]["status"] == "created"
    async with runtime.sessions() as session:
        ids = sorted((await session.execute(select(Feedback.external_id))).scalars())
    assert ids == ["i6wc9ipe:21322009097", "q9zz0abc:21322009097"]


async def test_intercom_rating_of_a_bot_conversation_is_excluded_by_config(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    body = intercom_body(teammate={"type": "bot", "id": "fin"})
    response = await signed(client, clock, "intercom", body)
    assert response.json() == {"results": [], "note": "event carries no survey response; ignored"}
    assert (await counts(runtime))["feedback"] == 0


async def test_intercom_rating_without_its_object_is_422(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    document = json.loads(raw(INTERCOM_RATING))
    del document["data"]["item"]["conversation_rating"]
    response = await signed(client, clock, "intercom", json.dumps(document).encode())
    assert response.status_code == 422
    assert response.json() == {
        "error": "not a intercom payload: "
        "intercom: data.item.conversation_rating: expected an object, got null"
    }
    assert (await counts(runtime))["feedback"] == 0
