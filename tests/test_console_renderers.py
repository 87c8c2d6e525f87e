"""Console renderers and notifier: what a person reads in the terminal for each kind of delivery."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cxbot import markup
from cxbot.cases.view import CaseView, CustomerHistory
from cxbot.commands.dispatch import Reply
from cxbot.commands.grammar import HelpListing
from cxbot.outbox.contract import Delivery
from handlers.console.notifier import ConsoleNotifier
from handlers.console.renderers import (
    case_actions,
    case_card,
    digest_post,
    escalation_notice,
    fit,
    help_listing,
    plain,
    render_reply,
    reply_text,
    thread_line,
)

NOW = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)
CASE = CaseView(
    id=42,
    title="NPS 2 at support-phone",
    state="new",
    team_key="support",
    team_name="Customer Support",
    assignee=None,
    acknowledged_by=None,
    escalation_level=0,
    routing_reason="NPS 2 is at or below 6; touchpoint 'support-phone' is owned by support",
    metric="nps",
    score=2,
    comment="Waited 50 minutes on hold\nand nobody called back",
    touchpoint="Phone support",
    customer="cust-0007 · G. H. · g***@e***.com",
    history=CustomerHistory(negatives_in_window=3, open_cases_elsewhere=0, recent_scores=["NPS 4"]),
    created_at=NOW - timedelta(minutes=10),
    ack_due_at=NOW + timedelta(minutes=20),
    resolve_due_at=NOW + timedelta(days=1),
    snoozed_until=None,
    snooze_reason=None,
    outcome=None,
    now=NOW,
)


def test_a_new_case_card_has_the_facts_and_the_commands_its_buttons_run() -> None:
    card = case_card(CASE, channel="#support")
    lines = card.splitlines()
    assert lines[0] == "┌─ #support · case card · CX-42 · NPS 2 at support-phone"
    assert "│ Score:      NPS 2" in lines
    assert "│ State:      new · SLA: acknowledge within 20m" in lines
    assert "│ Team:       Customer Support · assignee: nobody" in lines
    assert "│ Customer:   cust-0007 · G. H. · g***@e***.com" in lines
    assert "│ Comment:    “Waited 50 minutes on hold and nobody called back”" in lines
    assert any(line.startswith("│ History:    3rd negative in 30 days") for line in lines)
    assert lines[-1] == ("└─ Act: ack CX-42 · take CX-42 · assign CX-42 @person · resolve CX-42 <outcome>")
    assert all(len(line) <= 110 for line in lines)


def test_the_card_follows_the_state() -> None:
    taken = replace(CASE, state="in_progress", assignee="U0SUPAGT1", escalation_level=1)
    card = case_card(taken, channel="#support", updated=True)
    assert "card updated · CX-42" in card
    assert "│ State:      in progress · escalated (level 1) · SLA: resolve within 1d 0h" in card
    assert "assignee: @U0SUPAGT1" in card
    assert case_actions(taken) == [
        "take CX-42",
        "assign CX-42 @person",
        "snooze CX-42 2h <reason>",
        "resolve CX-42 <outcome>",
    ]
    resolved = replace(CASE, state="resolved", outcome="recovered")
    assert case_actions(resolved) == ["reopen CX-42"]
    assert "SLA: resolved (recovered)" in case_card(resolved)
    snoozed = replace(taken, snoozed_until=NOW + timedelta(hours=2), snooze_reason="waiting for the courier")
    assert "│ Snoozed:    waiting for the courier" in case_card(snoozed)
    failed = replace(taken, last_contact="email failed: 400 invalid email", contact_failed=True)
    assert "│ Contact:    ⚠ email failed: 400 invalid email" in case_card(failed)


def test_chat_markup_becomes_terminal_text() -> None:
    mentions = f"{markup.person('U0SUPMGR1')} in {markup.channel('C0CXESCAL1')}: " + markup.quote("late")
    assert plain(mentions) == "@U0SUPMGR1 in #C0CXESCAL1: “late”"
    assert plain(f"{markup.alert('urgent')} late {markup.alert('warning')}") == "🚨 late ⚠"
    # Text that came from outside shows as typed: Slack markup is not the core's.
    assert plain("<@U1|ada> <!channel>") == "<@U1|ada> <!channel>"
    assert thread_line(
        f"Acknowledged by {markup.person('U0SUPMGR1')}", case_ref="CX-42", channel="#support"
    ) == ("  ↳ #support CX-42 thread: Acknowledged by @U0SUPMGR1")
    notice = escalation_notice(
        f"{markup.alert('urgent')} CX-42 is late\n{markup.quote('NPS 2')}",
        destination="U0SUPMGR1",
        direct=True,
    )
    assert notice.splitlines() == [
        "┌─ ESCALATION · direct message to @U0SUPMGR1",
        "│ 🚨 CX-42 is late",
        "│ “NPS 2”",
        "└─",
    ]
    assert escalation_notice("x", destination="C0CXESCAL1", direct=False).startswith(
        "┌─ ESCALATION · notice in #C0CXESCAL1"
    )
    assert digest_post("CX digest · Support\n\nNPS: +30", channel="#support").splitlines() == [
        "┌─ #support · daily digest",
        "│ CX digest · Support",
        "│ ",
        "│ NPS: +30",
        "└─",
    ]
    assert reply_text(Reply("CX-42 acknowledged")) == "CX-42 acknowledged"
    assert reply_text(Reply("Not allowed: only managers", ok=False)) == "✗ Not allowed: only managers"


async def test_the_notifier_prints_each_kind_and_binds_the_card() -> None:
    printed: list[tuple[int | None, str]] = []
    notifier = ConsoleNotifier(lambda case_id, text: printed.append((case_id, text)))

    def delivery(
        kind: str, *, ref: str | None = None, text: str = "", destination: str = "#support"
    ) -> Delivery:
        return Delivery(
            id=1,
            kind=kind,
            platform="console",
            destination=destination,
            payload={"case_id": 42, "text": text},
            attempt=1,
            case=CASE,
            message_ref=ref,
        )

    first = await notifier.deliver(delivery("case.card"))
    assert first == {"message_ref": "console:#support:42", "action": "posted"}
    assert await notifier.deliver(delivery("case.card", ref=first["message_ref"])) == {
        "message_ref": "console:#support:42",
        "action": "updated",
    }
    # A thread line for a card never shown in this channel shows the card first, then binds it.
    thread = await notifier.deliver(
        delivery("case.thread", text=f"Acknowledged by {markup.person('U1')}", destination="#new")
    )
    assert thread["message_ref"] == "console:#new:42"
    await notifier.deliver(
        delivery("escalation.dm", text=f"{markup.alert('urgent')} late", destination="U0SUPMGR1")
    )
    await notifier.deliver(replace(delivery("digest", text="CX digest"), payload={"text": "CX digest"}))
    kinds = [text.splitlines()[0] for _, text in printed]
    assert kinds == [
        "┌─ #support · case card · CX-42 · NPS 2 at support-phone",
        "┌─ #support · card updated · CX-42 · NPS 2 at support-phone",
        "┌─ #new · case card · CX-42 · NPS 2 at support-phone",
        "  ↳ #new CX-42 thread: Acknowledged by @U1",
        "┌─ ESCALATION · direct message to @U0SUPMGR1",
        "┌─ #support · daily digest",
    ]
    assert [case_id for case_id, _ in printed] == [42, 42, 42, 42, 42, None]


def test_at_a_narrow_terminal_every_card_notice_digest_and_help_line_fits() -> None:
    width = 48
    card = case_card(CASE, channel="#support", width=width).splitlines()
    assert card[0] == "┌─ #support · case card · CX-42 · NPS 2 at"
    assert card[1] == "│  support-phone"  # the title goes on inside the box
    assert "│ Why here:   NPS 2 is at or below 6; touchpoint" in card
    assert "│             'support-phone' is owned by" in card  # under its field, not the label
    assert card[-2:] == [
        "└─ Act: ack CX-42 · take CX-42 · assign CX-42",
        "   @person · resolve CX-42 <outcome>",
    ]
    notice = escalation_notice(
        "CX-42 was not acknowledged within 30m; you are the escalation contact for support",
        destination="U0SUPMGR1",
        direct=True,
        width=width,
    ).splitlines()
    digest = digest_post("• NPS +12 (n=48), down 9 since last week\n", channel="#support", width=width)
    listing = help_listing(HelpListing(), width=width).splitlines()
    for lines in (card, notice, digest.splitlines(), listing):
        assert all(len(line) <= width for line in lines), lines
    assert listing[:2] == ["/cx help [verb]", "    what cxbot can do, or one verb's usage"]
    assert "/cx resolve CX-42" in listing[listing.index("/cx reopen CX-42") - 4]  # wrapped, then its summary
    assert fit("• a bullet whose text runs past the end of a narrow line", 30).splitlines() == [
        "• a bullet whose text runs",
        "  past the end of a narrow",
        "  line",
    ]
    help_reply = render_reply(Reply("help", report=HelpListing()), width=width)
    assert help_reply.splitlines() == listing
