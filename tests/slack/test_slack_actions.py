"""Case card buttons through signed `block_actions` requests: same commands, same guarantees."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from cxbot.models import Case, CaseEvent, OutboxMessage
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender, view_submission
from tests.support.platforms import platform_notifiers

MANAGER, AGENT, OTHER_AGENT, OUTSIDER = "U0SUPMGR1", "U0SUPAGT1", "U0SUPAGT2", "U0LOGAGT1"


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def open_case(slack: SlackSender) -> int:
    response = await slack.http.post(
        "/feedback",
        json={"external_id": "neg-1", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"},
    )
    return int(response.json()["results"][0]["case"].removeprefix("CX-"))


async def the_case(runtime: Runtime) -> Case:
    async with runtime.sessions() as session:
        return (await session.execute(select(Case))).scalar_one()


async def event_kinds(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(CaseEvent.kind).order_by(CaseEvent.id))).scalars())


async def outbox_kinds(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(OutboxMessage.kind).order_by(OutboxMessage.id))).scalars())


async def test_double_clicked_and_replayed_acknowledge_changes_the_case_once(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    case_id = await open_case(slack)
    worker = OutboxWorker(runtime, platform_notifiers(runtime))
    await worker.run_once(now=clock.now)  # the card is in the channel before anyone clicks it
    body = slack.block_action(f"cx_ack:{case_id}", user=MANAGER, value=str(case_id))
    first, second = await asyncio.gather(
        slack.post(body, "application/x-www-form-urlencoded"),
        slack.post(body, "application/x-www-form-urlencoded"),
    )
    assert (first.status_code, second.status_code) == (200, 200)
    # Slack retrying the same request later (its X-Slack-Retry-Num header) is one more no-op.
    replay = await slack.post(body, "application/x-www-form-urlencoded", retry_num=1)
    assert replay.status_code == 200

    case = await the_case(runtime)
    assert (case.state, case.acknowledged_by) == ("acknowledged", runtime.config.person_of(MANAGER))
    assert await event_kinds(runtime) == ["created", "acknowledged"]
    # The opening card, then exactly one refresh and one thread line for the acknowledgement.
    assert await outbox_kinds(runtime) == ["case.card", "case.card", "case.thread"]
    replies = sorted(r["text"] for r in fake_slack.responses())
    assert replies == [
        f"CX-{case_id} acknowledged",
        f"CX-{case_id} was already acknowledged by <@{MANAGER}>",
        f"CX-{case_id} was already acknowledged by <@{MANAGER}>",
    ]
    # Answers to a click are for the clicker, and never replace the card itself.
    assert all(
        r["response_type"] == "ephemeral" and r["replace_original"] is False for r in fake_slack.responses()
    )

    # Delivered: the card is posted once, updated once in place, and one line goes in its thread.
    await worker.run_once(now=clock.now)
    posts = fake_slack.calls("chat.postMessage")
    assert [("thread_ts" in p.body) for p in posts] == [False, True]
    [update] = fake_slack.calls("chat.update")
    assert update.body["ts"] == posts[1].body["thread_ts"] == "1700000000.000001"
    assert "acknowledged" in update.body["text"]


async def test_an_outsider_is_told_why_and_nothing_changes(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    case_id = await open_case(slack)
    await slack.click(f"cx_ack:{case_id}", user=OUTSIDER)
    [reply] = fake_slack.responses()
    assert reply["text"] == "Not allowed: only managers of support can acknowledge its cases"
    assert (await the_case(runtime)).state == "new"
    assert await outbox_kinds(runtime) == ["case.card"]


async def test_take_then_reassign_with_the_user_select(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    case_id = await open_case(slack)
    await slack.click(f"cx_take:{case_id}", user=AGENT)
    body = slack.block_action(
        f"cx_assign:{case_id}", user=MANAGER, type="users_select", selected_user=OTHER_AGENT
    )
    await slack.post(body, "application/x-www-form-urlencoded")
    case = await the_case(runtime)
    assert (case.state, case.assignee) == ("in_progress", runtime.config.person_of(OTHER_AGENT))
    assert [r["text"] for r in fake_slack.responses()] == [
        f"CX-{case_id} is now yours",
        f"CX-{case_id} assigned to <@{OTHER_AGENT}>",
    ]


async def test_snooze_opens_a_modal_and_its_submission_snoozes(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    case_id = await open_case(slack)
    await slack.click(f"cx_ack:{case_id}", user=MANAGER)
    await slack.click(f"cx_snooze:{case_id}", user=AGENT)
    [opened] = fake_slack.calls("views.open")
    view = opened.body["view"]
    assert view["callback_id"] == "cx_snooze_modal" and opened.body["trigger_id"] == "1337.42.abcd"

    empty = view_submission(
        user=AGENT,
        callback_id="cx_snooze_modal",
        private_metadata=view["private_metadata"],
        values={
            "duration": {"value": {"type": "static_select", "selected_option": {"value": "4h"}}},
            "reason": {"value": {"type": "plain_text_input", "value": "  "}},
        },
    )
    refused = await slack.post(empty, "application/x-www-form-urlencoded")
    assert refused.json() == {"response_action": "errors", "errors": {"reason": "A snooze needs a reason"}}
    assert (await the_case(runtime)).snoozed_until is None

    good = view_submission(
        user=AGENT,
        callback_id="cx_snooze_modal",
        private_metadata=view["private_metadata"],
        values={
            "duration": {"value": {"type": "static_select", "selected_option": {"value": "4h"}}},
            "reason": {"value": {"type": "plain_text_input", "value": "waiting for courier"}},
        },
    )
    accepted = await slack.post(good, "application/x-www-form-urlencoded")
    assert accepted.status_code == 200
    case = await the_case(runtime)
    assert case.snooze_reason == "waiting for courier"
    [told] = fake_slack.calls("chat.postEphemeral")
    assert (told.body["channel"], told.body["user"]) == ("C0SUPPORT1", AGENT)
    assert told.body["text"].startswith(f"CX-{case_id} snoozed until")


async def test_resolve_modal_offers_outcomes_and_root_causes_and_resolves(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    case_id = await open_case(slack)
    await slack.click(f"cx_resolve:{case_id}", user=AGENT)
    [opened] = fake_slack.calls("views.open")
    view = opened.body["view"]
    blocks = {b["block_id"]: b for b in view["blocks"]}
    assert blocks["outcome"]["element"]["options"][0]["value"] == "recovered"
    assert "process gap" in [o["value"] for o in blocks["root_cause"]["element"]["options"]]
    assert json.loads(view["private_metadata"]) == {"case_id": case_id, "channel": "C0SUPPORT1"}
    submit = view_submission(
        user=AGENT,
        callback_id="cx_resolve_modal",
        private_metadata=view["private_metadata"],
        values={
            # This case has no customer details, so the loop is closed with the reason (design.md §7).
            "outcome": {
                "value": {"type": "static_select", "selected_option": {"value": "could-not-contact"}}
            },
            "root_cause": {"value": {"type": "static_select", "selected_option": {"value": "process gap"}}},
            "reason": {"value": {"type": "plain_text_input", "value": "no email or phone on record"}},
        },
    )
    await slack.post(submit, "application/x-www-form-urlencoded")
    case = await the_case(runtime)
    assert (case.state, case.outcome, case.root_cause) == ("resolved", "could-not-contact", "process gap")
    assert case.no_contact_reason == "no email or phone on record"
