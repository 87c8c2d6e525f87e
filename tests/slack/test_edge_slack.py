"""`POST /slack/events` at the edge (issue #11, defects 7, 8, 9, 10): signed and unsigned requests
through the real ASGI app, replies caught by the fake Slack on loopback.

What a client sends unauthenticated is refused with a short reason and never logged; a replayed
signed command changes state once; a bad id or an over-long argument is a usage line, never a 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from cxbot.limits import MAX_NOTE_CHARS
from cxbot.models import Case, CaseEvent, InboundEvent
from cxbot.runtime import Runtime
from handlers.slack.commands import REPLAYED
from handlers.slack.renderers import SNOOZE_MODAL
from tests.conftest import API_KEY
from tests.support.fake_slack import (
    TEAM_ID,
    FakeSlack,
    SlackSender,
    from_sample,
    slack_sender,
    view_submission,
)

MANAGER, AGENT = "U0SUPMGR1", "U0SUPAGT1"
MARKER = "SECRET-BODY-MARKER"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def open_case(slack: SlackSender) -> str:
    response = await slack.http.post(
        "/feedback",
        json={"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"},
    )
    return response.json()["results"][0]["case"]


def command_body(slack: SlackSender, text: str, *, user: str = AGENT) -> str:
    """One slash command's form body, fixed, so a test can send it twice byte for byte."""
    fields = from_sample(
        "SlashCommandPayload.json",
        token="legacy-verification-token",
        team_id=TEAM_ID,
        channel_id="C0SUPPORT1",
        user_id=user,
        user_name=user.lower(),
        command="/cx",
        text=text,
        response_url=slack.fake.response_url("replayed"),
        trigger_id="1337.42.abcd",
    )
    return urlencode(fields)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def notes_and_level(runtime: Runtime) -> tuple[int, int]:
    async with runtime.sessions() as session:
        notes = await session.scalar(
            select(func.count()).select_from(CaseEvent).where(CaseEvent.kind == "note")
        )
        level = (await session.execute(select(Case.escalation_level))).scalar_one()
    return int(notes or 0), level


# --- defect 7: body limit and logging ---------------------------------------------------------------


async def test_an_oversized_unsigned_post_is_413_and_not_logged(
    slack: SlackSender, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = (MARKER * (runtime.settings.max_body_bytes // len(MARKER) + 2)).encode()
    response = await slack.http.post("/slack/events", content=body, headers={"Content-Type": FORM})
    assert response.status_code == 413
    assert response.json() == {
        "error": f"body is larger than the limit of {runtime.settings.max_body_bytes} bytes"
    }
    assert MARKER not in logged(caplog)


async def test_a_request_with_a_bad_signature_is_refused_and_its_body_not_logged(
    slack: SlackSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = command_body(slack, f"note CX-1 {MARKER}")
    response = await slack.post(body, FORM, secret="not-the-signing-secret")
    assert response.status_code == 401
    assert response.json() == {"error": "the Slack signature is missing, expired or does not match"}
    assert MARKER not in logged(caplog)
    assert "refused a request to /slack/events" in logged(caplog)
    assert slack.fake.responses() == []


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        (
            {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
            b"text=help",
            401,
            "X-Slack-Request-Timestamp is missing or not a Unix timestamp",
        ),
        (
            {"X-Slack-Request-Timestamp": "9" * 400, "X-Slack-Signature": "v0=00"},
            b"text=help",
            401,
            "X-Slack-Request-Timestamp is missing or not a Unix timestamp",
        ),
        (
            {"X-Slack-Request-Timestamp": "1700000000.5", "X-Slack-Signature": "v0=00"},
            b"text=help",
            401,
            "X-Slack-Request-Timestamp is missing or not a Unix timestamp",
        ),
        (
            {"X-Slack-Request-Timestamp": ""},
            b"",
            401,
            "X-Slack-Request-Timestamp is missing or not a Unix timestamp",
        ),
        ({}, b"text=help", 401, "the Slack signature is missing, expired or does not match"),
        ({"X-Slack-Signature": "v0=00"}, b"text=\xff\xfe", 400, "body is not UTF-8 text"),
    ],
)
async def test_malformed_headers_and_bodies_are_4xx_with_the_reason(
    slack: SlackSender,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    body: bytes,
    status: int,
    reason: str,
) -> None:
    headers = {"X-Slack-Request-Timestamp": str(int(time.time())), **headers, "Content-Type": FORM}
    response = await slack.http.post("/slack/events", content=body, headers=headers)
    assert (response.status_code, response.json()) == (status, {"error": reason})
    no_tracebacks(caplog)


async def test_a_signed_body_that_is_not_a_slack_payload_is_400(
    slack: SlackSender, caplog: pytest.LogCaptureFixture
) -> None:
    response = await slack.post("{not json", "application/json")
    assert (response.status_code, response.json()) == (400, {"error": "body is not a Slack payload"})
    no_tracebacks(caplog)


# --- defect 8: replays ------------------------------------------------------------------------------


async def test_a_replayed_escalate_and_note_change_state_once(
    slack: SlackSender, runtime: Runtime, fake_slack: FakeSlack
) -> None:
    ref = await open_case(slack)
    stamp = int(time.time())
    for text, user in ((f"escalate {ref}", MANAGER), (f"note {ref} called the courier", AGENT)):
        body = command_body(slack, text, user=user)
        first = await slack.post(body, FORM, timestamp=stamp)
        again = await slack.post(body, FORM, timestamp=stamp)
        assert first.status_code == again.status_code == 200
    assert await notes_and_level(runtime) == (1, 1)
    texts = [reply["text"] for reply in fake_slack.responses()]
    assert texts[1] == texts[3] == REPLAYED
    assert texts[0] != REPLAYED and texts[2] != REPLAYED


async def test_a_command_and_its_replay_record_are_one_transaction(
    slack: SlackSender, runtime: Runtime, fake_slack: FakeSlack
) -> None:
    """The record that refuses a replay commits with the command (one write per command, issue #15):
    a command refused for its state leaves none, so its replay is refused the same way, not as a replay."""
    ref = await open_case(slack)
    commits: list[object] = []

    def committed(session: Session) -> None:
        commits.append(session)

    listen = runtime.sessions.kw.get("sync_session_class") or Session
    event.listen(listen, "after_commit", committed)
    try:
        await slack.post(command_body(slack, f"note {ref} called back"), FORM, timestamp=int(time.time()))
    finally:
        event.remove(listen, "after_commit", committed)
    assert len(commits) == 1
    body = command_body(slack, "resolve CX-999999 fixed")
    stamp = int(time.time())
    first = await slack.post(body, FORM, timestamp=stamp)
    again = await slack.post(body, FORM, timestamp=stamp)
    assert first.status_code == again.status_code == 200
    texts = [reply["text"] for reply in fake_slack.responses()]
    assert texts[-1] == texts[-2] != REPLAYED
    async with runtime.sessions() as session:
        kinds = (await session.execute(select(InboundEvent.kind))).scalars().all()
    assert kinds == ["command"]  # the note's, not the refused resolve's


async def test_two_commands_with_the_same_text_both_run(slack: SlackSender, runtime: Runtime) -> None:
    """Only a byte-identical replay is refused: the same text typed twice is two commands."""
    ref = await open_case(slack)
    await slack.command(f"note {ref} first", user=AGENT)
    await slack.command(f"note {ref} first", user=AGENT)
    assert (await notes_and_level(runtime))[0] == 2


# --- defects 9 and 10: ids and bounds through the grammar ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "new support feedback:²",
            "'feedback:²' is not a feedback id (expected something like feedback:123)",
        ),
        (
            "new support feedback:١",
            "'feedback:١' is not a feedback id (expected something like feedback:123)",
        ),
        ("show CX-１", "'CX-１' is not a case id (expected something like CX-42)"),
        ("ack CX-" + "9" * 400, f"'CX-{'9' * 400}' is not a case id (expected something like CX-42)"),
        ("ack CX-0", "'CX-0' is not a case id (expected something like CX-42)"),
    ],
)
async def test_ids_are_ascii_digits_within_range(
    slack: SlackSender, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, text: str, expected: str
) -> None:
    response = await slack.command(text, user=AGENT)
    assert response.status_code == 200
    [reply] = fake_slack.responses()
    assert reply["text"].startswith(expected + ". Usage: /cx ")
    no_tracebacks(caplog)


async def test_arguments_longer_than_their_column_or_with_nul_are_usage_lines(
    slack: SlackSender, runtime: Runtime, fake_slack: FakeSlack
) -> None:
    ref = await open_case(slack)
    await slack.command(f"ack {ref}", user=MANAGER)
    for text, expected in [
        (f"note {ref} {'x' * (MAX_NOTE_CHARS + 1)}", f"the text is longer than {MAX_NOTE_CHARS} characters"),
        (f"note {ref} bad\x00byte", "the command contains a NUL character"),
        (f"snooze {ref} 2h {'r' * 501}", "the reason is longer than 500 characters"),
        (f"resolve {ref} recovered {'c' * 101}", "the root cause is longer than 100 characters"),
        (f"assign {ref} U{'1' * 120}", "the person is longer than 100 characters"),
    ]:
        await slack.command(text, user=MANAGER)
        assert fake_slack.responses()[-1]["text"].startswith(expected), text
    assert await notes_and_level(runtime) == (0, 0)
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
    assert (case.state, case.snooze_reason, case.root_cause, case.assignee) == (
        "acknowledged",
        None,
        None,
        None,
    )


@pytest.mark.parametrize("metadata", ["[1]", "42", '"text"', "null", '{"case_id": true}', "{" * 5000])
async def test_modal_metadata_that_is_not_an_object_changes_nothing(
    slack: SlackSender, runtime: Runtime, caplog: pytest.LogCaptureFixture, metadata: str
) -> None:
    await open_case(slack)
    values = {
        "duration": {"value": {"type": "static_select", "selected_option": {"value": "2h"}}},
        "reason": {"value": {"type": "plain_text_input", "value": "waiting"}},
    }
    body = view_submission(user=MANAGER, callback_id=SNOOZE_MODAL, private_metadata=metadata, values=values)
    response = await slack.post(body, FORM)
    assert response.status_code == 200
    no_tracebacks(caplog)
    async with runtime.sessions() as session:
        assert (await session.execute(select(Case.snooze_reason))).scalar_one() is None
