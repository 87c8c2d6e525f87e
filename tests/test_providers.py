"""Webhook providers: signatures computed here independently with hmac, payloads from tests/fixtures.

Fixture provenance is in tests/fixtures/surveys/PROVENANCE.md (Delighted: zulip/zulip test data;
Formbricks: AGPL-3.0 doc samples; Typeform: written for cxbot in the shape of Typeform's example).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cxbot.ingest.intercom import IntercomOptions
from cxbot.ingest.providers import (
    PROVIDERS,
    DelightedOptions,
    FormbricksOptions,
    PayloadError,
    SignatureError,
    TypeformOptions,
)
from cxbot.ingest.qualtrics import QualtricsOptions
from cxbot.ingest.qualtrics import response_items as qualtrics_items
from cxbot.ingest.schema import FeedbackIn, validate_item
from cxbot.ingest.surveymonkey import SurveyMonkeyOptions
from cxbot.ingest.surveymonkey import response_items as surveymonkey_items
from cxbot.ingest.zendesk import ZendeskOptions

FIXTURES = Path(__file__).parent / "fixtures" / "surveys"
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)

DELIGHTED = PROVIDERS["delighted"]
TYPEFORM = PROVIDERS["typeform"]
FORMBRICKS = PROVIDERS["formbricks"]

DELIGHTED_KEY = "d3l1ght3d-private-api-key"
TYPEFORM_SECRET = "0b9a1e5c7d2f4a6b8c0d1e2f3a4b5c6d7e8f9a0b"
FORMBRICKS_KEY = b"formbricks-test-signing-key-32by"
FORMBRICKS_SECRET = "whsec_" + base64.b64encode(FORMBRICKS_KEY).decode()


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


#: When the mapped items are validated: after every fixture's own date (the edge refuses dates ahead).
VALIDATED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def validated(items: list[dict[str, Any]]) -> list[FeedbackIn]:
    return [validate_item(item, now=VALIDATED_AT) for item in items]


# --- independent signers ----------------------------------------------------------------------------


def delighted_headers(raw: bytes, key: str = DELIGHTED_KEY) -> dict[str, str]:
    return {"X-Delighted-Webhook-Signature": hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()}


def typeform_headers(raw: bytes, secret: str = TYPEFORM_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).digest()
    return {"Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()}


def formbricks_headers(
    raw: bytes, *, key: bytes = FORMBRICKS_KEY, at: datetime = NOW, msg_id: str = "msg_cx01"
) -> dict[str, str]:
    stamp = str(int(at.timestamp()))
    signed = f"{msg_id}.{stamp}.".encode() + raw
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": f"v1,{signature}"}


# --- Delighted --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "score", "email"),
    [
        ("delighted_survey_response_updated_promoter.json", 9, "charlie_gravis@example.com"),
        ("delighted_survey_response_updated_non_promoter.json", 5, "paul_gravis@example.com"),
    ],
)
def test_delighted_fixture_verifies_and_parses(name: str, score: int, email: str) -> None:
    raw = body(name)
    DELIGHTED.verify(headers=delighted_headers(raw), body=raw, secret=DELIGHTED_KEY, now=NOW)

    [item] = validated(DELIGHTED.parse(payload=json.loads(raw), options=DelightedOptions()))

    assert item.source == "delighted"
    assert item.external_id == "5435"
    assert item.metric == "nps"
    assert item.score == score
    assert item.comment is not None and item.comment.startswith("Your service is")
    assert item.customer is not None
    assert (item.customer.id, item.customer.email) == ("5975", email)
    assert item.touchpoint is None  # person_properties is null in the fixture
    assert item.received_at == datetime.fromtimestamp(1482589409, tz=UTC)


def test_delighted_created_and_updated_share_the_external_id() -> None:
    updated = json.loads(body("delighted_survey_response_updated_promoter.json"))
    created = copy.deepcopy(updated)
    created["event_type"] = "survey_response.created"
    created["event_data"]["comment"] = None  # the score arrives first, the comment in the update

    [first] = validated(DELIGHTED.parse(payload=created, options=DelightedOptions()))
    [second] = validated(DELIGHTED.parse(payload=updated, options=DelightedOptions()))

    assert first.external_id == second.external_id == "5435"
    assert (first.score, first.comment) == (9, None)
    assert second.comment == "Your service is fast and flawless!"


def test_delighted_touchpoint_from_person_properties_and_options() -> None:
    payload = json.loads(body("delighted_survey_response_updated_non_promoter.json"))
    payload["event_data"]["person_properties"] = {"Journey": "Checkout", "Plan": "Pro"}
    options = DelightedOptions(metric="nps", touchpoint_property="Journey", tags=["web"])

    [item] = validated(DELIGHTED.parse(payload=payload, options=options))

    assert item.touchpoint == "Checkout"
    assert item.tags == ("web",)


def test_delighted_accepts_sha256_prefix_and_upper_case_hex() -> None:
    raw = body("delighted_survey_response_updated_promoter.json")
    signature = delighted_headers(raw)["X-Delighted-Webhook-Signature"]
    for value in (f"sha256={signature}", signature.upper()):
        DELIGHTED.verify(
            headers={"X-Delighted-Webhook-Signature": value}, body=raw, secret=DELIGHTED_KEY, now=NOW
        )


def test_delighted_ignores_unsubscribe_events() -> None:
    payload = {"event_type": "survey_response.unsubscribed", "event_data": {"person": {"id": "1"}}}
    assert DELIGHTED.parse(payload=payload, options=DelightedOptions()) == []


# --- Typeform ---------------------------------------------------------------------------------------


def test_typeform_csat_fixture_verifies_and_parses() -> None:
    raw = body("typeform_form_response_csat.json")
    TYPEFORM.verify(headers=typeform_headers(raw), body=raw, secret=TYPEFORM_SECRET, now=NOW)
    options = TypeformOptions(
        metric="csat",
        score_field_ref="support_csat",
        comment_field_ref="support_comment",
        email_field_ref="followup_email",
        customer_hidden_field="user_id",
        touchpoint="support",
    )

    [item] = validated(TYPEFORM.parse(payload=json.loads(raw), options=options))

    assert item.source == "typeform"
    assert item.external_id == "9f3c2b7e1d4a4c0b8e6f5a2d1c3b4a59"
    assert (item.metric, item.score) == ("csat", 2)
    assert item.comment == "The first agent closed my ticket before the refund went through."
    assert item.customer is not None
    assert (item.customer.id, item.customer.email) == ("cus_48213", "dana.okafor@example.com")
    assert item.touchpoint == "support"
    assert item.received_at == datetime(2026, 3, 2, 9, 15, 41, tzinfo=UTC)


def test_typeform_nps_fixture_with_hidden_fields() -> None:
    raw = body("typeform_form_response_nps.json")
    TYPEFORM.verify(headers=typeform_headers(raw), body=raw, secret=TYPEFORM_SECRET, now=NOW)
    options = TypeformOptions(
        score_field_ref="nps_score",
        comment_field_ref="nps_reason",
        customer_hidden_field="customer_id",
        email_hidden_field="email",
        touchpoint_hidden_field="touchpoint",
    )

    [item] = validated(TYPEFORM.parse(payload=json.loads(raw), options=options))

    assert (item.metric, item.score, item.touchpoint) == ("nps", 10, "onboarding")
    assert item.customer is not None
    assert (item.customer.id, item.customer.email) == ("cus_77190", "li.wei@example.org")


def test_typeform_defaults_pick_first_number_and_long_text() -> None:
    payload = json.loads(body("typeform_form_response_nps.json"))
    [item] = validated(TYPEFORM.parse(payload=payload, options=TypeformOptions()))
    assert (item.score, item.comment) == (10, "Setup took ten minutes and the import just worked.")
    assert item.customer is None


def test_typeform_field_matched_by_id_when_ref_absent() -> None:
    payload = json.loads(body("typeform_form_response_nps.json"))
    for answer in payload["form_response"]["answers"]:
        del answer["field"]["ref"]
    options = TypeformOptions(score_field_ref="Ab3dE5fG7hJ9")
    [item] = validated(TYPEFORM.parse(payload=payload, options=options))
    assert item.score == 10


def test_typeform_comment_only_response_is_kept_as_comment() -> None:
    payload = json.loads(body("typeform_form_response_nps.json"))
    payload["form_response"]["answers"] = payload["form_response"]["answers"][1:]
    [item] = validated(TYPEFORM.parse(payload=payload, options=TypeformOptions()))
    assert (item.metric, item.score) == ("comment", None)
    assert item.external_id == "0c5d8e2f7a1b4e3d9c6a2f8b4d1e7c30"


def test_typeform_score_field_of_wrong_type_is_a_payload_error() -> None:
    payload = json.loads(body("typeform_form_response_nps.json"))
    with pytest.raises(PayloadError, match=r"nps_reason.*expected 'number'"):
        TYPEFORM.parse(payload=payload, options=TypeformOptions(score_field_ref="nps_reason"))


def test_typeform_ignores_other_events() -> None:
    payload = {"event_id": "x", "event_type": "form_response_partial", "form_response": {}}
    assert TYPEFORM.parse(payload=payload, options=TypeformOptions()) == []


# --- Formbricks -------------------------------------------------------------------------------------

FORMBRICKS_FILES = [
    "formbricks_responseCreated.json",
    "formbricks_responseUpdated.json",
    "formbricks_responseFinished.json",
]


@pytest.mark.parametrize("name", FORMBRICKS_FILES)
def test_formbricks_fixture_verifies_and_parses(name: str) -> None:
    raw = body(name)
    FORMBRICKS.verify(headers=formbricks_headers(raw), body=raw, secret=FORMBRICKS_SECRET, now=NOW)
    # q1 is answered in every sample, so map it as the comment to exercise the whole path.
    options = FormbricksOptions(metric="comment", comment_question="q1", touchpoint_meta_key="country")

    [item] = validated(FORMBRICKS.parse(payload=json.loads(raw), options=options))

    assert item.source == "formbricks"
    assert item.external_id == "responseId"
    assert (item.metric, item.score, item.comment) == ("comment", None, "clicked")
    assert item.touchpoint == "DE"
    assert item.customer is None  # contact and contactAttributes are null in the samples
    assert item.received_at == datetime(2025, 7, 24, 7, 47, 29, 507000, tzinfo=UTC)


def test_formbricks_partial_responses_share_the_external_id() -> None:
    options = FormbricksOptions(metric="comment", comment_question="q2")
    results = {
        name: validated(FORMBRICKS.parse(payload=json.loads(body(name)), options=options))
        for name in FORMBRICKS_FILES
    }
    assert results["formbricks_responseCreated.json"] == []  # q2 not answered yet
    [updated] = results["formbricks_responseUpdated.json"]
    [finished] = results["formbricks_responseFinished.json"]
    assert updated.external_id == finished.external_id == "responseId"
    assert (updated.comment, finished.comment) == ("Just browsing", "accepted")


def test_formbricks_only_finished() -> None:
    options = FormbricksOptions(metric="comment", comment_question="q2", only_finished=True)
    counts = [len(FORMBRICKS.parse(payload=json.loads(body(n)), options=options)) for n in FORMBRICKS_FILES]
    assert counts == [0, 0, 1]


def test_formbricks_score_contact_and_hidden_touchpoint_from_single_object() -> None:
    [event] = json.loads(body("formbricks_responseFinished.json"))
    event["data"]["data"].update({"nps": 3, "why": "Too many steps", "tp": "billing"})
    event["data"]["contact"] = {"id": "clx0contact0001", "userId": "user-42"}
    event["data"]["contactAttributes"] = {"email": "ana@example.com", "firstName": "Ana", "lastName": "Ruiz"}
    event["data"]["tags"] = [{"id": "t1", "name": "vip"}]
    options = FormbricksOptions(
        score_question="nps", comment_question="why", touchpoint_hidden_field="tp", tags=["formbricks"]
    )

    [item] = validated(FORMBRICKS.parse(payload=event, options=options))

    assert (item.metric, item.score, item.comment, item.touchpoint) == ("nps", 3, "Too many steps", "billing")
    assert item.customer is not None
    assert (item.customer.id, item.customer.name, item.customer.email) == (
        "user-42",
        "Ana Ruiz",
        "ana@example.com",
    )
    assert item.tags == ("vip", "formbricks")


def test_formbricks_accepts_any_of_several_signatures() -> None:
    raw = body("formbricks_responseFinished.json")
    headers = formbricks_headers(raw)
    old = formbricks_headers(raw, key=b"an-old-rotated-out-signing-key!!")["webhook-signature"]
    headers["webhook-signature"] = f"{old} v1a,bm90LWNoZWNrZWQ= {headers['webhook-signature']}"
    FORMBRICKS.verify(headers=headers, body=raw, secret=FORMBRICKS_SECRET, now=NOW)


def test_formbricks_matches_the_standard_webhooks_test_vector() -> None:
    """Svix's published vector, used by the Standard Webhooks libraries' own test suites.

    Matching it shows the verifier agrees with the reference implementations, not just with the
    signer in this file.
    """
    FORMBRICKS.verify(
        headers={
            "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "webhook-timestamp": "1614265330",
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        },
        body=b'{"test": 2432232314}',
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        now=datetime.fromtimestamp(1614265330, tz=UTC),
    )


def test_formbricks_timestamp_within_tolerance_is_accepted() -> None:
    raw = body("formbricks_responseCreated.json")
    headers = formbricks_headers(raw, at=NOW - timedelta(minutes=4, seconds=59))
    FORMBRICKS.verify(headers=headers, body=raw, secret=FORMBRICKS_SECRET, now=NOW)


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_formbricks_stale_or_future_timestamp_is_rejected(offset: timedelta) -> None:
    raw = body("formbricks_responseCreated.json")
    headers = formbricks_headers(raw, at=NOW + offset)
    with pytest.raises(SignatureError, match="webhook-timestamp"):
        FORMBRICKS.verify(headers=headers, body=raw, secret=FORMBRICKS_SECRET, now=NOW)


def test_formbricks_secret_without_prefix_is_decoded_too() -> None:
    raw = body("formbricks_responseCreated.json")
    bare = base64.b64encode(FORMBRICKS_KEY).decode()
    FORMBRICKS.verify(headers=formbricks_headers(raw), body=raw, secret=bare, now=NOW)


def test_formbricks_options_require_the_question_for_the_metric() -> None:
    with pytest.raises(ValidationError, match="score_question"):
        FormbricksOptions(metric="nps")
    with pytest.raises(ValidationError, match="comment_question"):
        FormbricksOptions(metric="comment")


# --- signature failures, all providers ------------------------------------------------------------

SIGNED = [
    ("delighted", "delighted_survey_response_updated_promoter.json", DELIGHTED_KEY, delighted_headers),
    ("typeform", "typeform_form_response_csat.json", TYPEFORM_SECRET, typeform_headers),
    ("formbricks", "formbricks_responseFinished.json", FORMBRICKS_SECRET, formbricks_headers),
]
WRONG_SECRET = {
    "delighted": "another-api-key",
    "typeform": "another-secret",
    "formbricks": "whsec_" + base64.b64encode(b"another-key-of-32-bytes-length!!").decode(),
}
SIGNATURE_HEADER = {
    "delighted": "X-Delighted-Webhook-Signature",
    "typeform": "Typeform-Signature",
    "formbricks": "webhook-signature",
}


@pytest.mark.parametrize(("provider", "name", "secret", "sign"), SIGNED)
def test_wrong_secret_is_rejected(provider: str, name: str, secret: str, sign: Any) -> None:
    raw = body(name)
    with pytest.raises(SignatureError, match=r"^signature does not match$"):
        PROVIDERS[provider].verify(headers=sign(raw), body=raw, secret=WRONG_SECRET[provider], now=NOW)


@pytest.mark.parametrize(("provider", "name", "secret", "sign"), SIGNED)
def test_tampered_body_is_rejected(provider: str, name: str, secret: str, sign: Any) -> None:
    raw = body(name)
    tampered = raw.replace(b'"', b"'", 1) if provider == "formbricks" else raw.replace(b"9", b"1", 1)
    assert tampered != raw
    with pytest.raises(SignatureError, match=r"^signature does not match$"):
        PROVIDERS[provider].verify(headers=sign(raw), body=tampered, secret=secret, now=NOW)


@pytest.mark.parametrize(("provider", "name", "secret", "sign"), SIGNED)
def test_missing_signature_header_is_rejected(provider: str, name: str, secret: str, sign: Any) -> None:
    raw = body(name)
    headers = {k: v for k, v in sign(raw).items() if k != SIGNATURE_HEADER[provider]}
    with pytest.raises(SignatureError, match=f"^missing {SIGNATURE_HEADER[provider]} header$"):
        PROVIDERS[provider].verify(headers=headers, body=raw, secret=secret, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp"])
def test_formbricks_missing_id_or_timestamp_is_rejected(missing: str) -> None:
    raw = body("formbricks_responseFinished.json")
    headers = formbricks_headers(raw)
    del headers[missing]
    with pytest.raises(SignatureError, match=f"^missing {missing} header$"):
        FORMBRICKS.verify(headers=headers, body=raw, secret=FORMBRICKS_SECRET, now=NOW)


def test_formbricks_tampered_id_is_rejected() -> None:
    raw = body("formbricks_responseFinished.json")
    headers = formbricks_headers(raw)
    headers["webhook-id"] = "msg_other"
    with pytest.raises(SignatureError, match=r"^signature does not match$"):
        FORMBRICKS.verify(headers=headers, body=raw, secret=FORMBRICKS_SECRET, now=NOW)


@pytest.mark.parametrize(("provider", "name", "secret", "sign"), SIGNED)
@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_header_lookup_ignores_case(provider: str, name: str, secret: str, sign: Any, case: Any) -> None:
    raw = body(name)
    headers = {case(k): v for k, v in sign(raw).items()}
    PROVIDERS[provider].verify(headers=headers, body=raw, secret=secret, now=NOW)


def test_non_ascii_signature_is_rejected_not_crashing() -> None:
    raw = body("typeform_form_response_csat.json")
    with pytest.raises(SignatureError, match="does not match"):
        TYPEFORM.verify(headers={"Typeform-Signature": "sha256=ünïcode"}, body=raw, secret="s", now=NOW)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_empty_secret_is_a_configuration_error(provider: str) -> None:
    with pytest.raises(ValueError, match="secret is empty"):
        PROVIDERS[provider].verify(headers={}, body=b"{}", secret="", now=NOW)


# --- garbage payloads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "payload", "options", "message"),
    [
        ("delighted", [], DelightedOptions(), "delighted: body: expected an object, got list"),
        ("delighted", {"hello": "world"}, DelightedOptions(), "delighted: event_type: expected a string"),
        (
            "delighted",
            {"event_type": "survey_response.updated", "event_data": None},
            DelightedOptions(),
            "delighted: event_data: expected an object, got null",
        ),
        (
            "delighted",
            {"event_type": "survey_response.updated", "event_data": {"score": 9, "created_at": 1}},
            DelightedOptions(),
            "delighted: event_data.id: expected an id",
        ),
        (
            "delighted",
            {
                "event_type": "survey_response.updated",
                "event_data": {"id": "1", "score": [9], "created_at": 1},
            },
            DelightedOptions(),
            "delighted: event_data.score: expected a number, got list",
        ),
        ("typeform", "form_response", TypeformOptions(), "typeform: body: expected an object, got str"),
        (
            "typeform",
            {"event_type": "form_response", "form_response": {"answers": []}},
            TypeformOptions(),
            "typeform: form_response.token: expected an id",
        ),
        (
            "typeform",
            {"event_type": "form_response", "form_response": {"token": "t", "answers": {}}},
            TypeformOptions(),
            "typeform: form_response.answers: expected a list, got dict",
        ),
        (
            "formbricks",
            42,
            FormbricksOptions(score_question="q"),
            "formbricks: body: expected an object, got int",
        ),
        ("formbricks", [None], FormbricksOptions(score_question="q"), "formbricks: [0]: expected an object"),
        (
            "formbricks",
            [{"event": "responseFinished", "data": {"createdAt": "2025-07-24T07:47:29.507Z"}}],
            FormbricksOptions(score_question="q"),
            "formbricks: [0].data.id: expected an id",
        ),
        (
            "formbricks",
            {"event": "responseFinished", "data": {"id": "r", "data": {"q": {"a": 1}}, "createdAt": "x"}},
            FormbricksOptions(score_question="q"),
            "formbricks: answer to 'q': expected a number, got dict",
        ),
    ],
)
def test_garbage_payload_is_a_payload_error(provider: str, payload: Any, options: Any, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        PROVIDERS[provider].parse(payload=payload, options=options)
    assert str(caught.value).startswith(message)


def test_parse_accepts_options_as_a_mapping_from_cxbot_yaml() -> None:
    payload = json.loads(body("delighted_survey_response_updated_promoter.json"))
    [item] = DELIGHTED.parse(payload=payload, options={"metric": "nps", "touchpoint": "email"})
    assert item["touchpoint"] == "email"


def test_options_reject_unknown_keys_and_misplaced_scale() -> None:
    with pytest.raises(ValidationError, match="score_feild_ref"):
        TypeformOptions.model_validate({"score_feild_ref": "x"})
    with pytest.raises(ValidationError, match="only metric 'ces' takes a scale"):
        DelightedOptions(metric="nps", scale="1-7")
    assert DelightedOptions().secret_env == "DELIGHTED_WEBHOOK_SECRET"
    assert TypeformOptions().secret_env == "TYPEFORM_WEBHOOK_SECRET"
    assert FormbricksOptions(score_question="q").secret_env == "FORMBRICKS_WEBHOOK_SECRET"


def test_ces_scale_is_passed_through() -> None:
    payload = json.loads(body("delighted_survey_response_updated_non_promoter.json"))
    payload["event_data"]["score"] = 2
    [item] = DELIGHTED.parse(payload=payload, options=DelightedOptions(metric="ces", scale="1-5-low-good"))
    assert item["scale"] == "1-5-low-good"
    assert validate_item(item, now=NOW).score == 5.5


# --- Zendesk ----------------------------------------------------------------------------------------

ZENDESK = PROVIDERS["zendesk"]
#: Zendesk's published secret for test deliveries, and the vector aaronellington/zendesk-go checks.
ZENDESK_TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
ZENDESK_VECTOR = "10IqYzYTLHRftNsNE+im0DeOM6/JactIRuy0XCHJ9B8="


def test_zendesk_documented_test_secret_vector_verifies() -> None:
    raw = body("zendesk_event_user_group_membership_created.json")
    headers = {
        "X-Zendesk-Webhook-Signature": ZENDESK_VECTOR,
        "X-Zendesk-Webhook-Signature-Timestamp": "1234",
    }
    ZENDESK.verify(
        headers=headers, body=raw, secret=ZENDESK_TEST_SECRET, now=datetime.fromtimestamp(1234, tz=UTC)
    )
    with pytest.raises(SignatureError, match="too far from the current time"):
        ZENDESK.verify(headers=headers, body=raw, secret=ZENDESK_TEST_SECRET, now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        ZENDESK.verify(headers=headers, body=raw.rstrip(b"\n"), secret=ZENDESK_TEST_SECRET, now=NOW)


@pytest.mark.parametrize(
    ("scale", "rating", "score"),
    [
        (5, "good", 5),
        (5, "Bad", 1),
        (5, "Good, I'm satisfied", 5),
        (5, "Bad, I'm unsatisfied", 1),
        (2, "1", 1),
        (2, 2, 5),
        (3, 1, 1),
        (3, "2", 3),
        (3, 3, 5),
        (5, 4, 4),
    ],
)
def test_zendesk_rating_scales_map_onto_csat(scale: int, rating: Any, score: int) -> None:
    payload = json.loads(body("zendesk_trigger_csat_bad.json"))
    payload["rating"] = rating
    [item] = validated(ZENDESK.parse(payload=payload, options=ZendeskOptions(rating_scale=scale)))
    assert (item.metric, item.score) == ("csat", score)


@pytest.mark.parametrize(("scale", "rating"), [(2, 3), (3, 4), (3, 0), (5, 2.5)])
def test_zendesk_rating_off_its_scale_is_a_payload_error(scale: int, rating: Any) -> None:
    payload = json.loads(body("zendesk_trigger_csat_bad.json"))
    payload["rating"] = rating
    with pytest.raises(PayloadError, match=f"is not on the {scale}-point scale"):
        ZENDESK.parse(payload=payload, options=ZendeskOptions(rating_scale=scale))


def test_zendesk_touchpoint_from_brand_or_none() -> None:
    payload = json.loads(body("zendesk_trigger_csat_bad.json"))
    [brand] = ZENDESK.parse(payload=payload, options=ZendeskOptions(touchpoint_field="brand"))
    [none] = ZENDESK.parse(payload=payload, options=ZendeskOptions(touchpoint_field=None))
    assert (brand["touchpoint"], none["touchpoint"]) == ("Acme Store", None)


# --- Intercom ---------------------------------------------------------------------------------------

INTERCOM = PROVIDERS["intercom"]


def test_intercom_signature_is_sha1_hex_of_the_body() -> None:
    raw = body("intercom_conversation_rating_added.json")
    signature = hmac.new(b"client-secret", raw, hashlib.sha1).hexdigest()
    for value in (f"sha1={signature}", f"sha1={signature.upper()}"):
        INTERCOM.verify(headers={"X-Hub-Signature": value}, body=raw, secret="client-secret", now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        INTERCOM.verify(headers={"X-Hub-Signature": signature}, body=raw, secret="client-secret", now=NOW)


def test_intercom_bot_ratings_kept_unless_excluded() -> None:
    payload = json.loads(body("intercom_conversation_rating_added.json"))
    payload["data"]["item"]["conversation_rating"]["teammate"] = {"type": "bot", "id": "fin"}
    assert len(INTERCOM.parse(payload=payload, options=IntercomOptions())) == 1
    assert INTERCOM.parse(payload=payload, options=IntercomOptions(exclude_bot_conversations=True)) == []


# --- SurveyMonkey and Qualtrics (the mapping of a fetched response) ---------------------------------


def test_surveymonkey_response_maps_choice_comment_touchpoint_and_contact() -> None:
    details = json.loads(body("surveymonkey_response_details.json"))
    details["email_address"] = ""  # the contact's address is then read from metadata.contact
    details["metadata"]["contact"]["email"]["value"] = "sam.t@example.com"
    options = SurveyMonkeyOptions(
        score_question="126001001",
        choice_scores={"830000003": 3},
        comment_question="126001002",
        touchpoint_variable="touchpoint",
    )
    [item] = validated(surveymonkey_items(details, options))
    assert (item.external_id, item.metric, item.score, item.touchpoint) == (
        "114958291633",
        "nps",
        3,
        "delivery",
    )
    assert item.comment == "The courier left the parcel in the rain."
    assert item.customer is not None
    assert (item.customer.id, item.customer.name) == ("sam.t@example.com", "Sam Taylor")


def test_qualtrics_response_maps_qids_and_embedded_data() -> None:
    result = json.loads(body("qualtrics_response.json"))["result"]
    options = QualtricsOptions(
        metric="csat", score_qid="QID1", comment_qid="QID2_TEXT", touchpoint_field="touchpoint"
    )
    [item] = validated(qualtrics_items(result, options))
    assert (item.external_id, item.score, item.touchpoint) == ("R_3fMk2Jt9qWx1YzA", 2, "support-phone")
    assert item.customer is not None
    assert (item.customer.id, item.customer.email, item.customer.name) == (
        "cus_77190",
        "li.wei@example.org",
        "Li Wei",
    )
