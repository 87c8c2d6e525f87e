"""The HTTP edge (issue #11, defects 7, 9, 10): every route's body limit, ids and timestamps within
range, the re-survey form's bad input, feedback bounds; through the real ASGI app, on every backend.

Each bad input gets a 4xx with the reason (or the form again with a plain-words message for the
customer), never a 500, and nothing is written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from sqlalchemy import func, select
from starlette.routing import Route

from cxbot.config import Config, parse_config
from cxbot.limits import MAX_ITEMS_PER_DELIVERY, MAX_TAG_CHARS
from cxbot.models import Case, Feedback, Resurvey
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.conftest import API_KEY, ROOT
from tests.support.clock import FrozenClock
from tests.support.resurvey import ADA, MANAGER, SECRET, link_tokens, negative_case, say, with_contact

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BODY_LIMIT = 4096
FORMBRICKS_KEY = b"formbricks-edge-signing-key-32by"
FORMBRICKS_SECRET = "whsec_" + base64.b64encode(FORMBRICKS_KEY).decode()
WEBHOOKS = {
    "delighted": {"secret_env": "DELIGHTED_WEBHOOK_SECRET", "metric": "nps"},
    "formbricks": {
        "metric": "nps",
        "score_question": "nps",
        "comment_question": "q2",
        "touchpoint": "website",
    },
}


@pytest.fixture
def config() -> Config:
    document = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    document["webhooks"] = WEBHOOKS
    return with_contact(parse_config(document))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=database_url,
        CXBOT_API_KEY=API_KEY,
        CXBOT_SECRET_KEY=SECRET,
        CXBOT_PUBLIC_URL="https://cx.example.com",
        CXBOT_MAX_BODY_BYTES=BODY_LIMIT,
    )


@pytest.fixture
async def runtime(settings: Settings, config: Config, clock: FrozenClock) -> AsyncIterator[Runtime]:
    built = Runtime.build(settings=settings, config=config, clock=clock)
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIGHTED_WEBHOOK_SECRET", "edge-delighted-key")
    monkeypatch.setenv("FORMBRICKS_WEBHOOK_SECRET", FORMBRICKS_SECRET)


async def stored(runtime: Runtime) -> tuple[int, int, int]:
    """Feedback, cases and answered re-surveys: what bad input must not change."""
    async with runtime.sessions() as session:
        feedback = await session.scalar(select(func.count()).select_from(Feedback))
        cases = await session.scalar(select(func.count()).select_from(Case))
        answered = await session.scalar(
            select(func.count()).select_from(Resurvey).where(Resurvey.answered_at.is_not(None))
        )
    return int(feedback or 0), int(cases or 0), int(answered or 0)


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


# --- defect 7: one body limit on every route --------------------------------------------------------


async def test_every_route_refuses_a_body_over_the_limit_with_413(
    runtime: Runtime, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    routes = [r for r in create_app(runtime).routes if isinstance(r, Route)]
    assert len(routes) >= 8
    for route in routes:
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            response = await client.request(method, concrete(route.path), content=b"x" * (BODY_LIMIT + 1))
            assert response.status_code == 413, (method, route.path)
            assert response.json() == {"error": f"body is larger than the limit of {BODY_LIMIT} bytes"}

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
                for _ in range(3):
                    yield b"y" * (BODY_LIMIT // 2)

            streamed = await client.request(method, concrete(route.path), content=chunks())
            assert streamed.status_code == 413, (method, route.path)
    assert "xxxxxxxx" not in "\n".join(r.getMessage() for r in caplog.records)
    assert await stored(runtime) == (0, 0, 0)


async def test_a_body_within_the_limit_still_reaches_the_route(client: httpx.AsyncClient) -> None:
    item = {"external_id": "ok-1", "source": "s", "metric": "nps", "score": 9}
    response = await client.post("/feedback", json=item)
    assert response.status_code == 200 and response.json()["results"][0]["status"] == "created"


# --- defect 9: numbers past their range --------------------------------------------------------------


def formbricks_headers(body: bytes, stamp: str) -> dict[str, str | bytes]:
    signature = hmac.new(FORMBRICKS_KEY, f"msg_1.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": stamp.encode(),  # bytes: a client may send any, UTF-8 included
        "webhook-signature": "v1," + base64.b64encode(signature).decode(),
        "Content-Type": "application/json",
    }


@pytest.mark.parametrize("stamp", ["9" * 400, "١٧٠٠٠٠٠٠٠٠", "-1", "1e9", "17e8"])
async def test_a_formbricks_timestamp_that_is_not_unix_seconds_is_401(
    runtime: Runtime, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, stamp: str
) -> None:
    body = b'{"event": "responseFinished", "data": {}}'
    response = await client.post(
        "/webhooks/formbricks", content=body, headers=formbricks_headers(body, stamp)
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": "formbricks signature rejected: webhook-timestamp is not a Unix timestamp"
    }
    no_tracebacks(caplog)


@pytest.mark.parametrize(
    "params",
    [
        {"before": "9" * 400},
        {"before": str(2**63)},
        {"before": "CX-１"},
        {"before": "-5"},
        {"limit": "١٠"},
        {"limit": "9" * 400},
    ],
)
async def test_case_pages_past_the_integer_range_are_400(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, params: dict[str, str]
) -> None:
    response = await client.get("/api/cases", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(("limit and before must be whole numbers", "limit: must be"))
    no_tracebacks(caplog)


@pytest.mark.parametrize("token", ["١.1.n.s", "1.١٧٠٠.n.s", "²." * 3 + "s", "9" * 400 + ".1.n.s", "1.2.3"])
async def test_a_link_with_unicode_digits_or_huge_numbers_is_a_friendly_400(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    for response in (
        await client.get(f"/r/{token}"),
        await client.post(f"/r/{token}", content="score=1", headers=FORM),
    ):
        assert response.status_code == 400
        assert "the link is incomplete or was changed" in response.text
    no_tracebacks(caplog)


# --- the re-survey form: 11 fields, `²`, NUL ---------------------------------------------------------


async def resurvey_token(runtime: Runtime, client: httpx.AsyncClient) -> str:
    case_id = await negative_case(client, customer=ADA)
    assert (await say(runtime, f"ack CX-{case_id}", user=MANAGER)).ok
    assert (await say(runtime, f"resurvey CX-{case_id}")).ok
    return (await link_tokens(runtime))[-1]


async def test_the_re_survey_form_answers_bad_input_in_plain_words_and_stores_nothing(
    runtime: Runtime, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = await resurvey_token(runtime, client)
    before = await stored(runtime)
    eleven = urlencode([("score", "4"), *[(f"f{n}", "x") for n in range(10)]])
    too_many = await client.post(f"/r/{token}", content=eleven, headers=FORM)
    assert too_many.status_code == 400 and "the form sent too many fields" in too_many.text
    for score in ("²", "١", "4" * 400, "-1"):
        answer = await client.post(f"/r/{token}", content=urlencode({"score": score}), headers=FORM)
        assert answer.status_code == 400 and "Please pick a score from 1 to 5." in answer.text, score
        assert "invalid literal" not in answer.text
    nul = await client.post(
        f"/r/{token}", content=urlencode({"score": "4", "comment": "ok\x00then"}), headers=FORM
    )
    assert nul.status_code == 400
    assert "Your comment contains a character we cannot keep" in nul.text
    assert "okthen" in nul.text  # the comment comes back, without the character, to send again
    assert await stored(runtime) == before
    no_tracebacks(caplog)
    fixed = await client.post(
        f"/r/{token}", content=urlencode({"score": "4", "comment": "ok then"}), headers=FORM
    )
    assert fixed.status_code == 200 and "Thank you" in fixed.text


# --- defect 10: feedback bounds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"tags": ["x" * (MAX_TAG_CHARS + 1)]}, f"tags: a tag is longer than {MAX_TAG_CHARS} characters"),
        ({"tags": ["ok", "a\x00b"]}, "tags: a tag contains a NUL character"),
        ({"received_at": "0001-01-01T00:00:00Z"}, "received_at: 0001-01-01 is before 1970-01-01"),
        (
            {"received_at": "9999-12-31T00:00:00Z"},
            "received_at: 9999-12-31 00:00+00:00 is more than a day in the future",
        ),
        ({"comment": "nul\x00here"}, "comment: contains a NUL character"),
    ],
)
async def test_feedback_outside_the_limits_is_an_item_error_and_stores_nothing(
    runtime: Runtime, client: httpx.AsyncClient, overrides: dict[str, object], reason: str
) -> None:
    item = {"external_id": "b-1", "source": "s", "metric": "nps", "score": 3, **overrides}
    response = await client.post(
        "/feedback", content=json.dumps(item), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["results"] == [{"index": 0, "status": "error", "reason": reason}]
    assert await stored(runtime) == (0, 0, 0)


async def test_more_items_than_one_delivery_may_carry_is_413(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = json.dumps([{}] * (MAX_ITEMS_PER_DELIVERY + 1)).encode()
    assert len(body) > BODY_LIMIT  # the body limit answers first here; both are 413 with the reason
    response = await client.post("/feedback", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert await stored(runtime) == (0, 0, 0)


async def test_a_content_length_that_is_not_a_number_is_400(runtime: Runtime) -> None:
    """Sent straight to the ASGI app: HTTP clients will not send such a header, attackers will."""
    app = create_app(runtime)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    for value, status in ((b"abc", 400), (b"-1", 400), ("١٢".encode(), 400), (b"1" * 40, 413)):
        sent.clear()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/feedback",
            "raw_path": b"/feedback",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-length", value)],
            "client": ("127.0.0.1", 1),
            "server": ("cxbot.test", 80),
        }
        await app(scope, receive, send)
        assert sent[0]["status"] == status, value
        reason = (
            "Content-Length is not a number"
            if status == 400
            else f"body is larger than the limit of {BODY_LIMIT} bytes"
        )
        assert json.loads(sent[1]["body"]) == {"error": reason}  # type: ignore[arg-type]
