"""Qualtrics event subscriptions: a form-encoded event names a response, fetched through the queue.

Qualtrics posts `application/x-www-form-urlencoded` (Qualtrics API docs, "Event Subscriptions"):
`Topic` (`surveyengine.completedResponse.<SurveyID>`) and, when the subscription has a shared key,
`MSG` (the event as JSON text: `SurveyID`, `ResponseID`, `CompletedDate`, `Status`, `BrandID`) and
`HMAC`, the hex HMAC-SHA512 of `MSG` keyed by the shared key. cxbot requires the shared key, so an
event without `MSG`/`HMAC` is refused like any unsigned webhook.

The fetch is `GET {api_url}/API/v3/surveys/{SurveyID}/responses/{ResponseID}` with `X-API-TOKEN`;
`result.values` holds the answers by QID (`QID1`, `QID2_TEXT`) and embedded data by name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
from pydantic import Field, model_validator

from cxbot.ingest.fetching import FetchError, FetchSkip, get_json
from cxbot.ingest.webhook_base import (
    BaseOptions,
    DailySyncOptions,
    PayloadError,
    Provider,
    SignatureError,
    as_object,
    customer_dict,
    feedback_items,
    identifier,
    same_digest,
    scalar_text,
)

__all__ = ["QUALTRICS", "TOPIC_PREFIX", "QualtricsOptions"]

TOPIC_PREFIX = "surveyengine.completedResponse."


class QualtricsOptions(BaseOptions, DailySyncOptions):
    """Which QIDs and embedded-data fields hold what."""

    secret_env: str = "QUALTRICS_SHARED_KEY"
    #: API token for the fetch and `sync` (`X-API-TOKEN`).
    api_token_env: str = "QUALTRICS_API_TOKEN"
    #: Your datacenter's API host, e.g. https://yourorg.qualtrics.com or https://iad1.qualtrics.com.
    api_url: str = "https://yul1.qualtrics.com"
    #: Key in `result.values` of the score (e.g. "QID1"); its recode value is the score.
    score_qid: str | None = None
    #: Key in `result.values` of the comment (a text entry answer is "QID2_TEXT").
    comment_qid: str | None = None
    #: Embedded-data field carrying the touchpoint.
    touchpoint_field: str | None = None
    #: Fields of `result.values` with the customer's email and id.
    email_field: str = "RecipientEmail"
    customer_field: str | None = "ExternalReference"
    #: Survey ids to pull with `sync`.
    surveys: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _needs_a_question(self) -> QualtricsOptions:
        if self.metric != "comment" and self.score_qid is None:
            raise ValueError(f"score_qid: required for metric {self.metric!r}")
        if self.metric == "comment" and self.comment_qid is None:
            raise ValueError("comment_qid: required for metric 'comment'")
        return self


def _form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise SignatureError("body is not a UTF-8 form") from None


def _verify(headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
    fields = _form(body)
    message, received = fields.get("MSG"), fields.get("HMAC")
    if not message or not received:
        raise SignatureError("missing MSG or HMAC field (set a shared key on the subscription)")
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha512).hexdigest()
    if not same_digest(expected, received.strip().lower()):
        raise SignatureError("signature does not match")


def _parse(payload: Any, options: QualtricsOptions) -> list[dict[str, Any]]:
    fields = as_object(payload, "body", "qualtrics")
    topic = fields.get("Topic")
    if not isinstance(topic, str) or not topic:
        raise PayloadError("qualtrics: Topic: missing")
    if not topic.startswith(TOPIC_PREFIX):
        return []  # another event type the subscription also sends
    try:
        message = json.loads(fields.get("MSG") or "")
    except ValueError:
        raise PayloadError("qualtrics: MSG: not JSON") from None
    message = as_object(message, "MSG", "qualtrics")
    survey_id = identifier(message.get("SurveyID"), "MSG.SurveyID", "qualtrics")
    response_id = identifier(message.get("ResponseID"), "MSG.ResponseID", "qualtrics")
    return [{"key": f"{survey_id}:{response_id}", "survey_id": survey_id, "response_id": response_id}]


def response_items(result: Any, options: QualtricsOptions) -> list[dict[str, Any]]:
    """One response (`result` of the single-response API, or a row of an export) as items."""
    if not isinstance(result, dict) or not isinstance(result.get("values"), dict):
        raise FetchError("qualtrics: response without values", permanent=True)
    response_id = result.get("responseId") or result["values"].get("_recordId")
    if not response_id:
        raise FetchError("qualtrics: response without responseId", permanent=True)
    values = result["values"]
    missing = [q for q in (options.score_qid, options.comment_qid) if q and q not in values]
    score = values.get(options.score_qid) if options.score_qid else None
    comment = scalar_text(values.get(options.comment_qid)) if options.comment_qid else None
    items = feedback_items(
        source="qualtrics",
        external_id=str(response_id),
        options=options,
        score=score if isinstance(score, int | float | str) and not isinstance(score, bool) else None,
        comment=comment,
        touchpoint=scalar_text(values.get(options.touchpoint_field)) if options.touchpoint_field else None,
        customer=customer_dict(
            ident=values.get(options.customer_field) if options.customer_field else None,
            name=" ".join(
                p
                for p in (
                    scalar_text(values.get("RecipientFirstName")),
                    scalar_text(values.get("RecipientLastName")),
                )
                if p
            )
            or None,
            email=values.get(options.email_field),
        ),
        received_at=values.get("recordedDate") or values.get("endDate"),
        tags=[],
    )
    if not items:
        why = f"{', '.join(missing)} not in" if missing else "nothing to store in"
        raise FetchSkip(f"{why} response {response_id}")
    return items


async def fetch(
    job: Mapping[str, Any], options: QualtricsOptions, env: Mapping[str, str], http: httpx.AsyncClient
) -> list[dict[str, Any]]:
    """GET one response and map its values."""
    token = env.get(options.api_token_env)
    if not token:
        raise FetchError(f"{options.api_token_env} is not set", permanent=True)
    url = f"{options.api_url.rstrip('/')}/API/v3/surveys/{job['survey_id']}/responses/{job['response_id']}"
    answer = await get_json(http, url, headers={"X-API-TOKEN": token}, what="qualtrics")
    result = answer.get("result") if isinstance(answer, dict) else None
    return response_items(result, options)


QUALTRICS = Provider("qualtrics", QualtricsOptions, _verify, _parse, fetcher=fetch, body_format="form")
