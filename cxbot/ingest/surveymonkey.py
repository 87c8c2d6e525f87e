"""SurveyMonkey: the webhook names a response; its answers are fetched from the v3 API afterwards.

Signature (SurveyMonkey API v3 docs, "Webhooks"): `Sm-Signature` is base64(HMAC-SHA1(key, raw body))
with the key `<api key>&<api secret>` of the app, so the options name both variables
(:meth:`SurveyMonkeyOptions.signing_env`). SurveyMonkey checks the subscription URL with a `HEAD`
first; the HTTP layer answers it 200.

The event (`event_type: response_completed` / `response_updated`, `object_type: response`,
`object_id` = response id, `resources.survey_id`, or `filter_id` when `filter_type` is `survey`)
becomes one fetch job. The fetch is `GET {api_url}/v3/surveys/{survey_id}/responses/{response_id}/details`
with the access token (Bearer); `pages[].questions[].answers[]` hold `choice_id` (closed questions)
or `text`. The configured question ids map to score, comment and touchpoint, and each choice id to
its score or touchpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

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
    header,
    identifier,
    kind_of,
    same_digest,
    scalar_text,
)

__all__ = ["SURVEYMONKEY", "SurveyMonkeyOptions", "surveymonkey_signature"]

_EVENTS = frozenset({"response_completed", "response_updated"})


class SurveyMonkeyOptions(BaseOptions, DailySyncOptions):
    """Which question holds what, by SurveyMonkey's ids, and what each choice means."""

    secret_env: str = "SURVEYMONKEY_API_SECRET"
    #: The app's API key: the signing key is `<api key>&<api secret>`.
    api_key_env: str = "SURVEYMONKEY_API_KEY"
    #: Bearer token for the v3 API (fetch and `sync`).
    access_token_env: str = "SURVEYMONKEY_ACCESS_TOKEN"
    api_url: str = "https://api.surveymonkey.com"
    #: Question id of the score (a closed question: its choice ids are mapped by `choice_scores`).
    score_question: str | None = None
    #: Choice id → score (e.g. the 11 choices of an NPS question → 0..10).
    choice_scores: dict[str, float] = Field(default_factory=dict)
    #: Question id of the free-text comment.
    comment_question: str | None = None
    #: Question id whose chosen choice is the touchpoint (mapped by `choice_touchpoints`).
    touchpoint_question: str | None = None
    choice_touchpoints: dict[str, str] = Field(default_factory=dict)
    #: Custom variable (`custom_variables` of the response) carrying the touchpoint; wins if set.
    touchpoint_variable: str | None = None
    #: Survey ids to pull with `sync` (webhooks work for any survey they were subscribed to).
    surveys: list[str] = Field(default_factory=list)

    def signing_env(self) -> list[str]:
        return [self.api_key_env, self.secret_env]

    @model_validator(mode="after")
    def _needs_a_question(self) -> SurveyMonkeyOptions:
        if self.metric != "comment" and self.score_question is None:
            raise ValueError(f"score_question: required for metric {self.metric!r}")
        if self.metric == "comment" and self.comment_question is None:
            raise ValueError("comment_question: required for metric 'comment'")
        return self


def surveymonkey_signature(api_key: str, api_secret: str, body: bytes) -> str:
    """base64(HMAC-SHA1(`api_key&api_secret`, body)), as sent in `Sm-Signature`."""
    key = f"{api_key}&{api_secret}".encode()
    return base64.b64encode(hmac.new(key, body, hashlib.sha1).digest()).decode()


def _verify(headers: Mapping[str, str], body: bytes, secret: str, now: datetime) -> None:
    received = header(headers, "Sm-Signature")
    key = secret.encode()  # already `api_key&api_secret`, joined by the HTTP layer
    expected = base64.b64encode(hmac.new(key, body, hashlib.sha1).digest()).decode()
    if not same_digest(expected, received):
        raise SignatureError("signature does not match")


def _parse(payload: Any, options: SurveyMonkeyOptions) -> list[dict[str, Any]]:
    """The fetch job for a response event; other events (collectors, disqualified) give []."""
    body = as_object(payload, "body", "surveymonkey")
    event = body.get("event_type")
    if not isinstance(event, str):
        raise PayloadError(f"surveymonkey: event_type: expected a string, got {kind_of(event)}")
    if event not in _EVENTS:
        return []
    response_id = identifier(body.get("object_id"), "object_id", "surveymonkey")
    resources = body.get("resources") if isinstance(body.get("resources"), dict) else {}
    survey = resources.get("survey_id") or (
        body.get("filter_id") if body.get("filter_type") == "survey" else None
    )
    survey_id = identifier(survey, "resources.survey_id", "surveymonkey")
    # The response may be edited later (response_updated): one job per event id, same feedback.
    event_id = scalar_text(body.get("event_id")) or response_id
    return [
        {"key": f"{survey_id}:{response_id}:{event_id}", "survey_id": survey_id, "response_id": response_id}
    ]


def _answers(details: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Question id → its answers, over every page."""
    out: dict[str, list[dict[str, Any]]] = {}
    for page in details.get("pages") or []:
        for question in (page or {}).get("questions") or []:
            if isinstance(question, dict) and question.get("id") is not None:
                answers = [a for a in question.get("answers") or [] if isinstance(a, dict)]
                out[str(question["id"])] = answers
    return out


def _chosen(answers: list[dict[str, Any]], mapping: Mapping[str, Any], question: str) -> Any:
    for answer in answers:
        choice = answer.get("choice_id")
        if choice is not None:
            if str(choice) not in mapping:
                raise FetchSkip(f"choice {choice} of question {question} is not mapped")
            return mapping[str(choice)]
    return None


def _contact_email(metadata: Any) -> Any:
    """`metadata.contact.email.value`, where SurveyMonkey puts a known contact's address."""
    for key in ("contact", "email", "value"):
        metadata = metadata.get(key) if isinstance(metadata, dict) else None
    return metadata


def response_items(details: Any, options: SurveyMonkeyOptions) -> list[dict[str, Any]]:
    """One fetched (or bulk-listed) response as feedback items, by the configured question ids."""
    if not isinstance(details, dict) or details.get("id") is None:
        raise FetchError("surveymonkey: response details without an id", permanent=True)
    answers = _answers(details)
    score = None
    if options.score_question is not None:
        score = _chosen(
            answers.get(options.score_question, []), options.choice_scores, options.score_question
        )
    comment = None
    if options.comment_question is not None:
        texts = [a.get("text") for a in answers.get(options.comment_question, []) if a.get("text")]
        comment = " ".join(str(t).strip() for t in texts) or None
    touchpoint = None
    variables = details.get("custom_variables") if isinstance(details.get("custom_variables"), dict) else {}
    if options.touchpoint_variable is not None:
        touchpoint = scalar_text(variables.get(options.touchpoint_variable))
    if touchpoint is None and options.touchpoint_question is not None:
        touchpoint = _chosen(
            answers.get(options.touchpoint_question, []),
            options.choice_touchpoints,
            options.touchpoint_question,
        )
    email = details.get("email_address") or _contact_email(details.get("metadata"))
    name = " ".join(
        p for p in (scalar_text(details.get("first_name")), scalar_text(details.get("last_name"))) if p
    )
    items = feedback_items(
        source="surveymonkey",
        external_id=str(details["id"]),
        options=options,
        score=score,
        comment=comment,
        touchpoint=touchpoint,
        customer=customer_dict(
            ident=scalar_text(details.get("recipient_id")), name=name or None, email=email
        ),
        received_at=details.get("date_modified") or details.get("date_created"),
        tags=[],
    )
    if not items:
        missing = [q for q in (options.score_question, options.comment_question) if q and q not in answers]
        why = f"question {', '.join(missing)} not in" if missing else "nothing to store in"
        raise FetchSkip(f"{why} response {details['id']}")
    return items


def _token(options: SurveyMonkeyOptions, env: Mapping[str, str]) -> str:
    token = env.get(options.access_token_env)
    if not token:
        raise FetchError(f"{options.access_token_env} is not set", permanent=True)
    return token


async def fetch(
    job: Mapping[str, Any], options: SurveyMonkeyOptions, env: Mapping[str, str], http: httpx.AsyncClient
) -> list[dict[str, Any]]:
    """GET the response details and map them."""
    url = (
        f"{options.api_url.rstrip('/')}/v3/surveys/{job['survey_id']}/responses/{job['response_id']}/details"
    )
    headers = {"Authorization": f"Bearer {_token(options, env)}"}
    details = await get_json(http, url, headers=headers, what="surveymonkey")
    return response_items(details, options)


SURVEYMONKEY = Provider("surveymonkey", SurveyMonkeyOptions, _verify, _parse, fetcher=fetch)
