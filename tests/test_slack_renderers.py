"""Block Kit builders and PII masking: valid per slack_sdk, inside Slack's limits, nothing leaked."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from cxbot.cases.overview import Overview
from cxbot.cases.view import CaseView, CustomerHistory
from cxbot.commands.dispatch import Reply
from cxbot.pii import mask_email, mask_name, mask_phone, mask_text
from handlers.slack.blocks import (
    MAX_BLOCKS,
    MAX_TEXT,
)
from handlers.slack.renderers import (
    case_card,
    home_view,
    reply_message,
    resolve_modal,
    score_text,
    snooze_modal,
)

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def a_case(**changes: object) -> CaseView:
    base = CaseView(
        id=42,
        title="CSAT 1 at support-phone",
        state="new",
        team_key="support",
        team_name="Customer Support",
        assignee=None,
        acknowledged_by=None,
        escalation_level=0,
        routing_reason="CSAT 1 is at or below 2; touchpoint 'support-phone' is owned by support",
        metric="csat",
        score=1.0,
        comment="Nobody called back",
        touchpoint="Phone support",
        customer="c-1 · A. L. · a***@e***.com",
        history=CustomerHistory(negatives_in_window=3, open_cases_elsewhere=1, recent_scores=["NPS 4"]),
        created_at=NOW,
        ack_due_at=NOW + timedelta(minutes=30),
        resolve_due_at=NOW + timedelta(days=1),
        snoozed_until=None,
        snooze_reason=None,
        outcome=None,
        now=NOW,
    )
    return replace(base, **changes)


def all_texts(blocks: list[dict]) -> list[str]:
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(blocks)
    return found


def test_card_shows_what_a_manager_needs() -> None:
    blocks = case_card(a_case())
    text = json.dumps(blocks)
    for expected in (
        "CX-42",
        "CSAT 1",
        "Phone support",
        "Customer Support",
        "a***@e***.com",
        "acknowledge within 30m",
        "Why here:",
        "3rd negative in 30 days; 1 other open case; earlier: NPS 4",
        "Nobody called back",
    ):
        assert expected in text
    assert Block.parse_all(blocks)  # slack_sdk reads back what it built


def test_card_states_change_the_buttons_and_the_clock() -> None:
    def actions(case: CaseView) -> list[str]:
        [block] = [b for b in case_card(case) if b["type"] == "actions"]
        return [e["action_id"].split(":")[0] for e in block["elements"]]

    # No snooze before an acknowledgement.
    assert actions(a_case()) == ["cx_ack", "cx_take", "cx_assign", "cx_contact", "cx_resolve", "cx_reveal"]
    acknowledged = a_case(state="acknowledged", assignee="U0SUPAGT1")
    assert actions(acknowledged) == [
        "cx_take",
        "cx_assign",
        "cx_snooze",
        "cx_contact",
        "cx_resolve",
        "cx_reveal",
    ]
    assert "resolve within 1d 0h" in json.dumps(case_card(acknowledged))
    assert actions(a_case(state="resolved", outcome="recovered")) == ["cx_reopen", "cx_reveal"]
    # Nothing to reveal without a customer, or once their data is erased.
    assert "cx_reveal" not in actions(a_case(customer=None))
    assert "cx_reveal" not in actions(a_case(customer="(erased customer)"))
    late = a_case(now=NOW + timedelta(hours=2), escalation_level=1)
    assert "acknowledge overdue by 1h 30m" in json.dumps(case_card(late))
    assert "escalated (level 1)" in json.dumps(case_card(late))


def test_customer_text_cannot_ping_the_channel_or_exceed_limits() -> None:
    blocks = case_card(a_case(comment="<!channel> fix this " + "x" * 10_000, title="t" * 500))
    text = json.dumps(blocks)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert len(blocks) <= MAX_BLOCKS
    assert max(len(t) for t in all_texts(blocks)) <= MAX_TEXT


def test_long_replies_are_split_and_cut_to_slacks_limits() -> None:
    lines = "\n".join(f"• CX-{n} [new] support: " + "y" * 200 for n in range(2000))
    message = reply_message(Reply(lines))
    assert len(message["blocks"]) == MAX_BLOCKS
    assert max(len(t) for t in all_texts(message["blocks"])) <= MAX_TEXT
    assert len(message["text"]) <= 4000
    assert message["blocks"][-1]["type"] == "context"


def test_scores_say_low_sample_and_margin() -> None:
    from cxbot.scores.stats import csat_from_counts, nps_from_counts

    assert (
        score_text(nps_from_counts(promoters=60, passives=20, detractors=20)) == "NPS +40 ±16 (n=100)"
    )  # 1.96·100·√(0.64/100)
    assert score_text(csat_from_counts(satisfied=3, n=4)) == "CSAT: _low sample (n=4)_"
    assert score_text(csat_from_counts(satisfied=0, n=0)) == "CSAT: no responses"


def test_home_and_modals_are_valid_views() -> None:
    many = [a_case(id=n) for n in range(200)]
    home = home_view(Overview(mine=many, overdue=many, teams=["support"], scores=[]))
    assert len(home["blocks"]) <= 100 and "more: `/cx list mine`" in json.dumps(home)
    assert Block.parse_all(home["blocks"])
    for modal in (snooze_modal(42, channel="C1"), resolve_modal(42, channel=None, root_causes=["policy"])):
        assert modal["type"] == "modal" and Block.parse_all(modal["blocks"])


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Call me on +44 20 7946 0000 please", "Call me on •••00 please"),
        ("mail ada.lovelace@example.co.uk now", "mail a***@e***.uk now"),
        ("(555) 123-4567", "•••67"),
        (
            "Snoozed until 2026-11-02 14:00 UTC by <@U0SUPMGR1>",
            "Snoozed until 2026-11-02 14:00 UTC by <@U0SUPMGR1>",
        ),
        ("order 12345 was late, CX-42, score 3", "order 12345 was late, CX-42, score 3"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_mask_parts() -> None:
    assert mask_email("ada@example.com") == "a***@e***.com"
    assert mask_phone("+44 20 7946 0000") == "•••00"
    assert mask_name("Ada  Lovelace") == "A. L."


@given(
    st.emails(),
    st.from_regex(r"\+?[1-9][0-9]{6,12}", fullmatch=True),
    st.text(alphabet=st.characters(codec="ascii", categories=["L", "Zs"]), max_size=30),
)
def test_no_email_or_phone_survives_masking(email: str, phone: str, filler: str) -> None:
    masked = mask_text(f"{filler} {email} {filler} {phone} {filler}")
    assert email not in masked
    assert phone not in masked
