"""Every card the bot sends on Teams validates against the Adaptive Cards 1.5 schema (Teams-only
`msteams` aside), stays under Teams' message size, and shows outside text literally (issue #13).

Case cards in every state, with and without customer, comment and history; the score report, the
digest preview and the single customer view as command replies through the real ASGI app, the
customer view at 347 responses paged with its Action.Execute buttons; the test helper itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cxbot.cases.view import CaseView, CustomerHistory
from cxbot.models import CASE_STATES, Customer
from cxbot.runtime import Runtime
from handlers.teams.cards import attachment, case_card
from tests.support.adaptive_cards import (
    TEAMS_MAX_BYTES,
    activity_bytes,
    assert_literal,
    assert_valid_activity,
    assert_valid_card,
    assert_within_size,
    card_errors,
    invoke_card,
    visible,
    visible_texts,
)
from tests.support.clock import FrozenClock
from tests.support.fake_microsoft import FakeConnector, TeamsSender
from tests.support.leaks import LeakScanner
from tests.test_customer_view import generated_items, store

CHANNEL_MESSAGE = "20191020020553704-request"  # "<at>My Combined</at>1" in a channel
CLICK = "20191020020654953-request"  # an invoke from a card in a channel
NOW = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
#: Outside text that Adaptive Cards markdown would render: a link, bold, italics, code, lists.
PLANTED = "[win](https://evil.example) **PWNED** _it_ `x`\n- item\n1. one"
MARKS = ("[win](https://evil.example)", "**PWNED**", "_it_", "`x`", "\n- item", "\n1. one")


# --------------------------------------------------------------------------- the helper itself


def test_the_helper_refuses_what_the_schema_refuses_and_ignores_msteams() -> None:
    good = {
        "type": "AdaptiveCard",
        "version": "1.5",
        "msteams": {"width": "Full"},
        "body": [{"type": "TextBlock", "text": "hi", "wrap": True}],
        "actions": [{"type": "Action.Execute", "title": "Go", "verb": "cx", "data": {"command": "help"}}],
    }
    assert card_errors(good) == []
    assert_valid_card(good)
    typo = {**good, "body": [{"type": "TextBlock", "txt": "hi"}]}
    wrong_kind = {**good, "body": [{"type": "Markdown", "text": "hi"}]}
    bad_action = {**good, "actions": [{"type": "Action.Execute", "verb": 7}]}
    no_version = {k: v for k, v in good.items() if k != "version"}
    for bad in (typo, wrong_kind, bad_action, no_version):
        assert card_errors(bad), bad
        with pytest.raises(AssertionError):
            assert_valid_card(bad)
    huge = {"type": "message", "attachments": [attachment({**good, "fallbackText": "x" * TEAMS_MAX_BYTES})]}
    with pytest.raises(AssertionError, match="Teams refuses"):
        assert_within_size(huge)
    with pytest.raises(AssertionError, match="markup"):
        assert_literal({"text": f"a {PLANTED}"}, MARKS)


# --------------------------------------------------------------------------- case cards


def case_view(state: str, *, customer: bool | str, comment: bool, history: bool, **extra: Any) -> CaseView:
    """A case as the card shows it, outside text carrying markup everywhere; `customer` may be
    the label itself (`(erased customer)`)."""
    values: dict[str, Any] = {
        "id": 42,
        "title": f"CSAT 1 at {PLANTED}",
        "state": state,
        "team_key": "support",
        "team_name": f"Support {PLANTED}",
        "assignee": "support-manager" if state != "new" else None,
        "acknowledged_by": "support-manager" if state != "new" else None,
        "escalation_level": 0,
        "routing_reason": f"touchpoint {PLANTED}",
        "metric": "csat",
        "score": 1.0,
        "comment": f"Refund never came {PLANTED}" if comment else None,
        "touchpoint": PLANTED,
        "customer": customer if isinstance(customer, str) else (f"cust {PLANTED}" if customer else None),
        "history": CustomerHistory(
            negatives_in_window=3,
            open_cases_elsewhere=1,
            recent_scores=[f"NPS 2 at {PLANTED}"],
            repeat_detractor="repeat detractor: 3 negatives in 90 days",
            open_case_names=[f"CX-12 with {PLANTED}"],
        )
        if history
        else None,
        "created_at": NOW - timedelta(hours=5),
        "ack_due_at": NOW - timedelta(hours=1),
        "resolve_due_at": NOW + timedelta(days=2),
        "snoozed_until": None,
        "snooze_reason": None,
        "outcome": "recovered" if state in ("resolved", "closed") else None,
        "now": NOW,
    }
    return CaseView(**(values | extra))


VARIANTS = {
    "bare": {"customer": False, "comment": False, "history": False},
    "everything": {"customer": True, "comment": True, "history": True},
    "customer only": {"customer": True, "comment": False, "history": False},
    "erased customer": {"customer": "(erased customer)", "comment": True, "history": False},
    "snoozed, escalated, contact failed": {
        "customer": True,
        "comment": True,
        "history": True,
        "snoozed_until": NOW + timedelta(hours=4),
        "snooze_reason": f"waiting {PLANTED}",
        "escalation_level": 2,
        "last_contact": f"email failed: 400 {PLANTED}",
        "contact_failed": True,
        "priority": "high",
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("state", CASE_STATES)
def test_every_case_card_validates_fits_and_shows_outside_text_literally(state: str, variant: str) -> None:
    view = case_view(state, **VARIANTS[variant])
    card = assert_valid_card(case_card(view))
    assert_within_size({"type": "message", "attachments": [attachment(card)]})
    assert_literal(card, MARKS)
    shown = " ".join(visible_texts(card))
    assert "CX-42" in shown and "PWNED" in shown  # there, and inert
    titles = [a["title"] for a in card.get("actions", [])]
    assert ("Reopen" in titles) == (state in ("resolved", "closed"))


# --------------------------------------------------------------------------- command replies


#: The asker's 1:1 chat with the bot, where a customer view is shown (never in a channel).
PERSONAL = {"conversationType": "personal", "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "id": "a:1me"}


def mentioned(teams: TeamsSender, text: str, ident: str, **changes: Any) -> dict[str, Any]:
    return teams.activity(CHANNEL_MESSAGE, id=ident, text=f"<at>My Combined</at> {text}\n", **changes)


def click(teams: TeamsSender, action: dict[str, Any], ident: str, **changes: Any) -> dict[str, Any]:
    """A click on one of the card's own buttons (no recording has an Action.Execute, see PROVENANCE.md):
    the recorded invoke with the documented Universal Actions `name` and `value`."""
    activity = teams.activity(
        CLICK,
        **changes,
        id=ident,
        value={"action": {k: action[k] for k in ("type", "verb", "data")}, "trigger": "manual"},
    )
    activity["name"] = "adaptiveCard/action"
    return activity


async def last_reply(connector: FakeConnector) -> dict[str, Any]:
    return connector.calls("reply")[-1].body


async def feedback(client: httpx.AsyncClient, count: int, *, now: datetime) -> None:
    items = [
        {
            "external_id": f"s-{i}",
            "source": "survey",
            "metric": "csat",
            "score": 1 + i % 5,
            "touchpoint": "Inbound",
            "comment": f"{PLANTED} call me at ann{i}@example.com" if i % 4 == 0 else None,
            "received_at": (now - timedelta(hours=1 + i % 40)).isoformat(),
        }
        for i in range(count)
    ]
    response = await client.post("/feedback", json=items)
    assert response.status_code in (200, 201, 207), response.text
    assert all(r["status"] == "created" for r in response.json()["results"])


async def test_the_score_report_is_a_valid_card_with_the_annotation_shown_literally(
    teams: TeamsSender, connector_fake: FakeConnector, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await feedback(client, 60, now=clock.now)
    await teams.post(mentioned(teams, f"annotate Inbound new script {PLANTED}", "a-1"))
    await teams.post(mentioned(teams, "score support 7d", "a-2"))
    activity = await last_reply(connector_fake)
    [card] = assert_valid_activity(activity, cards=1)
    shown = visible_texts(card)
    assert any(t.startswith("Scores · Customer Support (team)") for t in shown)
    assert "**CSAT % satisfied (4-5)**" in shown and "95% CI" in shown and "60" in shown
    assert any("new script" in t and "PWNED" in t for t in shown)
    assert_literal(card, MARKS)


async def test_the_digest_preview_is_the_digest_card(
    teams: TeamsSender, connector_fake: FakeConnector, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await feedback(client, 40, now=clock.now - timedelta(days=1))
    await teams.post(mentioned(teams, "digest support preview", "d-1"))
    activity = await last_reply(connector_fake)
    [card] = assert_valid_activity(activity, cards=1)
    assert visible(card["body"][0]["text"]).startswith("CX digest · ")
    assert not [e for e in card["body"] if e["type"] == "Image"]  # a preview draws no chart
    assert any("PWNED" in t for t in visible_texts(card))  # the day's negative comments: there, inert
    assert_literal(card, MARKS)
    assert LeakScanner().scan(activity, chat=False) == []  # the comments' addresses are masked


async def test_the_customer_view_at_347_responses_pages_with_its_buttons_under_the_limit(
    teams: TeamsSender, connector_fake: FakeConnector, runtime: Runtime, clock: FrozenClock
) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    await store(runtime, generated_items(347, customer="many-1", start=start, prefix="m"), clock.now)
    personal = {"conversation": PERSONAL, "channelData": {}}
    await teams.post(mentioned(teams, "customer many-1", "c-0", **personal))
    activity = await last_reply(connector_fake)
    [card] = assert_valid_activity(activity, cards=1)
    sizes = [activity_bytes(activity)]
    pages = [card]
    while older := [a for a in pages[-1].get("actions", []) if a["title"] == "Older ▸"]:
        [button] = older
        assert button["type"] == "Action.Execute" and button["data"]["command"].startswith("customer cust:")
        answer = await teams.post(click(teams, button, f"c-{len(pages)}", **personal))
        assert answer.status_code == 200
        pages.append(invoke_card(answer.json()))
        sizes.append(activity_bytes({"type": "message", "attachments": [attachment(pages[-1])]}))
    assert len(pages) == -(-347 // 15)
    assert "responses 346–347 of 347, newest first" in visible_texts(pages[-1])
    assert [a["title"] for a in pages[-1]["actions"]] == ["◂ Newer"]
    assert max(sizes) < TEAMS_MAX_BYTES
    scanner = LeakScanner(phones=[f"+1 415 555 {n:04d}" for n in range(347)])
    for page in pages:
        assert scanner.scan(page, chat=False) == []
    assert len(connector_fake.calls("reply")) == 1  # paging replaced the card in place: no new messages


async def test_a_revealed_customer_page_goes_to_the_askers_personal_chat_only(
    teams: TeamsSender, connector_fake: FakeConnector, runtime: Runtime, clock: FrozenClock
) -> None:
    await store(
        runtime,
        [
            {
                "external_id": "r-1",
                "source": "survey",
                "metric": "csat",
                "score": 1,
                "touchpoint": "Inbound",
                "customer": {"id": "vip-1", "email": "vip@example.com", "name": "Vera Ip"},
                "received_at": (clock.now - timedelta(hours=2)).isoformat(),
            }
        ],
        clock.now,
    )
    async with runtime.sessions() as session:
        assert (await session.scalars(select(Customer))).one().email == "vip@example.com"
    await teams.post(mentioned(teams, "customer vip-1", "v-1"))
    assert connector_fake.calls("reply") == []  # nothing of it in the channel
    [sent] = connector_fake.calls("send")
    [card] = assert_valid_activity(sent.body, cards=1)
    assert any("vip@example.com" in t for t in visible_texts(card))
    assert any("unmasked to you only" in t for t in visible_texts(card))
