"""Verify and parse survey-tool webhooks (Delighted, Typeform, Formbricks).

Pure functions only: no I/O, no database, no web framework. The HTTP layer reads the raw body and
headers, calls :meth:`Provider.verify` with the secret from the environment variable named by the
provider's options (`secret_env`), decodes the JSON and calls :meth:`Provider.parse`. Every item that
comes back is a plain dict in the shape :func:`cxbot.ingest.schema.validate_item` accepts; score
ranges are checked there, not here, so the rules live in one place.

What each signature scheme was checked against (read with the project's search tool):

* Delighted: `X-Delighted-Webhook-Signature`, an HMAC-SHA256 of the raw request body keyed by the
  project's *private API key* (there is no separate webhook secret), with no timestamp in the
  signed content. Sources: the Delighted spec summary in metorial/metorial
  `integrations/delighted/docs/SPEC.md` @0c0aa68b ("an HMAC SHA-256 digest generated using your
  private API key over the request body", linking app.delighted.com/docs/api/webhooks), and a
  production verifier in kiteco/kiteco-public `kite-go/community/account/delighted.go` @70fa808f,
  which reads the header as `sha256=<hex>`. Both the `sha256=` form and bare hex are accepted.
  Without a timestamp nothing stops a replay, so parsing is idempotent by response id instead.
* Typeform: https://www.typeform.com/developers/webhooks/secure-your-webhooks/: HMAC-SHA256 of
  the entire raw payload keyed by the webhook's secret, base64-encoded, prefixed `sha256=`, sent
  in `Typeform-Signature`. No timestamp.
* Formbricks: formbricks/formbricks `docs/xm-and-surveys/core-features/integrations/webhooks.mdx`
  @0bfb345c ("Webhook Security with Standard Webhooks") and the Standard Webhooks spec
  (standard-webhooks/standard-webhooks `spec/standard-webhooks.md` @03f5f8c6): headers
  `webhook-id`, `webhook-timestamp` (Unix seconds), `webhook-signature` (a space-separated list of
  `v1,<base64>`); signed content `{id}.{timestamp}.{body}`; the secret is `whsec_` + base64 and
  is base64-decoded before use; reject timestamps more than 5 minutes from now.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import model_validator

from cxbot.ingest.intercom import INTERCOM
from cxbot.ingest.qualtrics import QUALTRICS
from cxbot.ingest.surveymonkey import SURVEYMONKEY
from cxbot.ingest.webhook_base import (
    BaseOptions,
    PayloadError,
    Provider,
    SignatureError,
    as_object,
    comment_text,
    customer_dict,
    feedback_items,
    header,
    identifier,
    kind_of,
    same_digest,
    scalar_text,
    score_value,
    tag_names,
)
from cxbot.ingest.zendesk import ZENDESK
from cxbot.limits import parse_unix_seconds

__all__ = [
    "FORMBRICKS_TOLERANCE",
    "PROVIDERS",
    "DelightedOptions",
    "FormbricksOptions",
    "PayloadError",
    "Provider",
    "SignatureError",
    "TypeformOptions",
]

#: How far `webhook-timestamp` may be from our clock before a Formbricks delivery counts as a replay.
FORMBRICKS_TOLERANCE = timedelta(minutes=5)


class DelightedOptions(BaseOptions):
    """Delighted signs with the project's private API key, so that is what `secret_env` names."""

    secret_env: str = "DELIGHTED_WEBHOOK_SECRET"
    #: Key in `person_properties` whose value is the touchpoint.
    touchpoint_property: str = "touchpoint"


class TypeformOptions(BaseOptions):
    """Which form fields hold what. A field is matched by its `ref`, or by its `id` as a fallback."""

    secret_env: str = "TYPEFORM_WEBHOOK_SECRET"
    #: Field with the score; None means the first answer of type `number` (opinion scale, rating, nps).
    score_field_ref: str | None = None
    #: Field with the comment; None means the first `long_text` answer.
    comment_field_ref: str | None = None
    #: Field of type email whose answer is the customer's email.
    email_field_ref: str | None = None
    #: Hidden field carrying the touchpoint (overrides `touchpoint`).
    touchpoint_hidden_field: str | None = None
    #: Hidden field carrying the customer id.
    customer_hidden_field: str | None = None
    #: Hidden field carrying the customer email.
    email_hidden_field: str | None = None


class FormbricksOptions(BaseOptions):
    """Which question ids (keys of `data.data`) hold what."""

    secret_env: str = "FORMBRICKS_WEBHOOK_SECRET"
    #: Question id of the score; None means the response carries no score (use metric "comment").
    score_question: str | None = None
    #: Question id of the free-text comment.
    comment_question: str | None = None
    #: Hidden field (a key of `data.data`) carrying the touchpoint; wins over the two below.
    touchpoint_hidden_field: str | None = None
    #: Key of `data.meta` (e.g. "source", "url") carrying the touchpoint.
    touchpoint_meta_key: str | None = None
    #: Only ingest responses with `finished: true` (ignore created/updated partials).
    only_finished: bool = False

    @model_validator(mode="after")
    def _needs_a_question(self) -> FormbricksOptions:
        if self.metric != "comment" and self.score_question is None:
            raise ValueError(f"score_question: required for metric {self.metric!r}")
        if self.metric == "comment" and self.comment_question is None:
            raise ValueError("comment_question: required for metric 'comment'")
        return self


def _verify_delighted(headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
    received = header(headers, "X-Delighted-Webhook-Signature")
    if received[:7].lower() == "sha256=":
        received = received[7:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not same_digest(expected, received.lower()):
        raise SignatureError("signature does not match")


def _verify_typeform(headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
    received = header(headers, "Typeform-Signature")
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    expected = "sha256=" + base64.b64encode(digest).decode()
    if not same_digest(expected, received):
        raise SignatureError("signature does not match")


def _standard_webhooks_key(secret: str) -> bytes:
    text = secret.strip()
    if text.startswith("whsec_"):
        text = text[len("whsec_") :]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("formbricks: webhook secret is not whsec_ followed by base64") from None


def _verify_formbricks(headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
    msg_id = header(headers, "webhook-id")
    stamp = header(headers, "webhook-timestamp")
    signatures = header(headers, "webhook-signature")
    sent_at = parse_unix_seconds(stamp)
    if sent_at is None:
        raise SignatureError("webhook-timestamp is not a Unix timestamp")
    if abs(now.timestamp() - sent_at) > FORMBRICKS_TOLERANCE.total_seconds():
        raise SignatureError("webhook-timestamp is too far from the current time")
    key = _standard_webhooks_key(secret)
    signed = f"{msg_id}.{sent_at}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # Several signatures may be sent during secret rotation; `v1a` (asymmetric) ones are skipped.
    matched = False
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version == "v1" and same_digest(expected, value):
            matched = True
    if not matched:
        raise SignatureError("signature does not match")


# --------------------------------------------------------------------------------------------------
# Delighted
# --------------------------------------------------------------------------------------------------

#: `survey_response.updated` fires again for the same response when a comment is added, so both
#: events map to the response id and the later one replaces the earlier.
_DELIGHTED_EVENTS = frozenset({"survey_response.created", "survey_response.updated"})


def _parse_delighted(payload: Any, options: DelightedOptions) -> list[dict[str, Any]]:
    body = as_object(payload, "body", "delighted")
    event_type = body.get("event_type")
    if not isinstance(event_type, str):
        raise PayloadError(f"delighted: event_type: expected a string, got {kind_of(event_type)}")
    if event_type not in _DELIGHTED_EVENTS:
        return []  # e.g. survey_response.unsubscribed carries no feedback
    data = as_object(body.get("event_data"), "event_data", "delighted")
    person = data.get("person")
    person = person if isinstance(person, dict) else {}
    properties = data.get("person_properties")
    properties = properties if isinstance(properties, dict) else {}
    created_at = data.get("created_at")
    if created_at is None:
        raise PayloadError("delighted: event_data.created_at: missing")
    return feedback_items(
        source="delighted",
        external_id=identifier(data.get("id"), "event_data.id", "delighted"),
        options=options,
        score=score_value(data.get("score"), "event_data.score", "delighted"),
        comment=comment_text(data.get("comment"), "event_data.comment", "delighted"),
        touchpoint=scalar_text(properties.get(options.touchpoint_property)),
        customer=customer_dict(
            ident=person.get("id"),
            name=person.get("name"),
            email=person.get("email"),
            phone=person.get("phone_number", person.get("phone")),
        ),
        received_at=created_at,
        tags=tag_names(data.get("tags")),
    )


# --------------------------------------------------------------------------------------------------
# Typeform
# --------------------------------------------------------------------------------------------------


def _typeform_answers(response: dict[str, Any]) -> list[dict[str, Any]]:
    answers = response.get("answers", [])
    if answers is None:
        return []
    if not isinstance(answers, list):
        raise PayloadError(f"typeform: form_response.answers: expected a list, got {kind_of(answers)}")
    return [answer for answer in answers if isinstance(answer, dict)]


def _typeform_field(answer: dict[str, Any]) -> dict[str, Any]:
    value = answer.get("field")
    return value if isinstance(value, dict) else {}


def _typeform_find(
    answers: list[dict[str, Any]], ref: str | None, *, fallback: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """The answer to field `ref` (matched on `ref`, then `id`), or the first answer `fallback` accepts."""
    if ref is not None:
        for key in ("ref", "id"):
            for answer in answers:
                if _typeform_field(answer).get(key) == ref:
                    return answer
        return None
    return next((answer for answer in answers if fallback(answer)), None)


def _parse_typeform(payload: Any, options: TypeformOptions) -> list[dict[str, Any]]:
    body = as_object(payload, "body", "typeform")
    event_type = body.get("event_type")
    if not isinstance(event_type, str):
        raise PayloadError(f"typeform: event_type: expected a string, got {kind_of(event_type)}")
    if event_type != "form_response":
        return []  # e.g. form_response_partial: the finished response follows with the same token
    response = as_object(body.get("form_response"), "form_response", "typeform")
    token = identifier(response.get("token"), "form_response.token", "typeform")
    answers = _typeform_answers(response)
    hidden = response.get("hidden")
    hidden = hidden if isinstance(hidden, dict) else {}

    score = None
    score_answer = _typeform_find(
        answers, options.score_field_ref, fallback=lambda a: a.get("type") == "number"
    )
    if score_answer is not None:
        if score_answer.get("type") != "number":
            raise PayloadError(
                f"typeform: answer to field {options.score_field_ref!r} is of type "
                f"{score_answer.get('type')!r}, expected 'number'"
            )
        score = score_value(score_answer.get("number"), "score answer", "typeform")

    comment = None
    comment_answer = _typeform_find(
        answers,
        options.comment_field_ref,
        fallback=lambda a: _typeform_field(a).get("type") == "long_text",
    )
    if comment_answer is not None:
        if comment_answer.get("type") != "text":
            raise PayloadError(
                f"typeform: answer to field {options.comment_field_ref!r} is of type "
                f"{comment_answer.get('type')!r}, expected 'text'"
            )
        comment = comment_text(comment_answer.get("text"), "comment answer", "typeform")

    email = hidden.get(options.email_hidden_field) if options.email_hidden_field else None
    if email is None and options.email_field_ref is not None:
        email_answer = _typeform_find(answers, options.email_field_ref, fallback=lambda a: False)
        email = email_answer.get("email") if email_answer is not None else None
    ident = hidden.get(options.customer_hidden_field) if options.customer_hidden_field else None
    touchpoint = hidden.get(options.touchpoint_hidden_field) if options.touchpoint_hidden_field else None

    submitted_at = response.get("submitted_at") or response.get("landed_at")
    if submitted_at is None:
        raise PayloadError("typeform: form_response.submitted_at: missing")
    return feedback_items(
        source="typeform",
        external_id=token,
        options=options,
        score=score,
        comment=comment,
        touchpoint=scalar_text(touchpoint),
        customer=customer_dict(ident=ident, email=email),
        received_at=submitted_at,
        tags=[],
    )


# --------------------------------------------------------------------------------------------------
# Formbricks
# --------------------------------------------------------------------------------------------------

_FORMBRICKS_EVENTS = frozenset({"responseCreated", "responseUpdated", "responseFinished"})


def _parse_formbricks(payload: Any, options: FormbricksOptions) -> list[dict[str, Any]]:
    # The documented examples are a JSON array of events; accept a single event object as well.
    events = payload if isinstance(payload, list) else [payload]
    items: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        where = f"[{index}]" if isinstance(payload, list) else "body"
        items.extend(_parse_formbricks_event(as_object(event, where, "formbricks"), options, where))
    return items


def _parse_formbricks_event(
    event: dict[str, Any], options: FormbricksOptions, where: str
) -> list[dict[str, Any]]:
    name = event.get("event")
    if not isinstance(name, str):
        raise PayloadError(f"formbricks: {where}.event: expected a string, got {kind_of(name)}")
    if name not in _FORMBRICKS_EVENTS:
        return []
    data = as_object(event.get("data"), f"{where}.data", "formbricks")
    response_id = identifier(data.get("id"), f"{where}.data.id", "formbricks")
    if options.only_finished and data.get("finished") is not True:
        return []
    answers = as_object(data.get("data") or {}, f"{where}.data.data", "formbricks")
    meta = data.get("meta")
    meta = meta if isinstance(meta, dict) else {}

    score = None
    if options.score_question is not None:
        score = score_value(
            answers.get(options.score_question), f"answer to {options.score_question!r}", "formbricks"
        )
    comment = None
    if options.comment_question is not None:
        comment = comment_text(
            answers.get(options.comment_question), f"answer to {options.comment_question!r}", "formbricks"
        )

    touchpoint = None
    if options.touchpoint_hidden_field is not None:
        touchpoint = scalar_text(answers.get(options.touchpoint_hidden_field))
    if touchpoint is None and options.touchpoint_meta_key is not None:
        touchpoint = scalar_text(meta.get(options.touchpoint_meta_key))

    contact = data.get("contact")
    contact = contact if isinstance(contact, dict) else {}
    attributes = data.get("contactAttributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    full_name = " ".join(
        part for part in (scalar_text(attributes.get(k)) for k in ("firstName", "lastName")) if part
    )
    customer = customer_dict(
        ident=contact.get("userId") or attributes.get("userId") or contact.get("id"),
        name=attributes.get("name") or full_name or None,
        email=attributes.get("email"),
        phone=attributes.get("phone"),
    )

    created_at = data.get("createdAt")
    if created_at is None:
        raise PayloadError(f"formbricks: {where}.data.createdAt: missing")
    return feedback_items(
        source="formbricks",
        external_id=response_id,
        options=options,
        score=score,
        comment=comment,
        touchpoint=touchpoint,
        customer=customer,
        received_at=created_at,
        tags=tag_names(data.get("tags")),
    )


PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        Provider("delighted", DelightedOptions, _verify_delighted, _parse_delighted),
        Provider("typeform", TypeformOptions, _verify_typeform, _parse_typeform),
        Provider("formbricks", FormbricksOptions, _verify_formbricks, _parse_formbricks),
        ZENDESK,
        INTERCOM,
        SURVEYMONKEY,
        QUALTRICS,
    )
}
