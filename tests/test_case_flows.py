"""Case actions through the one command path, on real databases: state, audit trail and outbox."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from cxbot import markup
from cxbot.authz import Actor
from cxbot.commands.dispatch import Where, run_text
from cxbot.models import Case, CaseEvent, OutboxMessage, TeamDestination
from cxbot.runtime import Runtime
from tests.support.clock import FrozenClock

MANAGER = Actor("U0SUPMGR1", "slack")
AGENT = Actor("U0SUPAGT1", "slack")
OUTSIDER = Actor("U0LOGAGT1", "slack")
ADMIN = Actor("U0ADMIN01", "slack")
HERE = Where(platform="slack", channel="C0SUPPORT1")


async def open_support_case(client: httpx.AsyncClient, **extra: object) -> str:
    response = await client.post(
        "/feedback",
        json={
            "external_id": "neg-1",
            "source": "t",
            "metric": "csat",
            "score": 1,
            "touchpoint": "Inbound",
            **extra,
        },
    )
    return response.json()["results"][0]["case"]


async def scalar(runtime: Runtime, query) -> object:
    async with runtime.sessions() as session:
        return (await session.execute(query)).scalar_one()


async def test_acknowledge_once_even_when_clicked_twice_at_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ref = await open_support_case(client)
    first, second = await asyncio.gather(
        run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE),
        run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE),
    )
    assert sorted([first.text, second.text]) == sorted(
        [f"{ref} acknowledged", f"{ref} was already acknowledged by {markup.person('U0SUPMGR1')}"]
    )
    case = await scalar(runtime, select(Case))
    assert (case.state, case.acknowledged_by) == ("acknowledged", "U0SUPMGR1")
    kinds = await _kinds(runtime)
    assert kinds == ["created", "acknowledged"]
    # The card queued when the case opened, then one card refresh and one thread line, not two.
    outbox = await _outbox(runtime)
    assert outbox == [
        ("case.card", "slack", "C0SUPPORT1"),
        ("case.card", "slack", "C0SUPPORT1"),
        ("case.thread", "slack", "C0SUPPORT1"),
    ]


async def test_an_outsider_cannot_acknowledge_or_resolve_and_nothing_changes(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ref = await open_support_case(client)
    denied_ack = await run_text(runtime, f"ack {ref}", actor=OUTSIDER, where=HERE)
    denied_resolve = await run_text(runtime, f"resolve {ref} recovered", actor=OUTSIDER, where=HERE)
    assert (
        denied_ack.ok is False
        and denied_ack.text == "Not allowed: only managers of support can acknowledge its cases"
    )
    assert denied_resolve.text.startswith("Not allowed: only members of support can resolve its cases")
    assert (await scalar(runtime, select(Case.state))) == "new"
    assert await _kinds(runtime) == ["created"]
    assert await _outbox(runtime) == [("case.card", "slack", "C0SUPPORT1")]  # only the opening card


async def test_an_agent_cannot_acknowledge_but_can_take(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ref = await open_support_case(client)
    assert (await run_text(runtime, f"ack {ref}", actor=AGENT, where=HERE)).ok is False
    taken = await run_text(runtime, f"take {ref}", actor=AGENT, where=HERE)
    assert taken.text == f"{ref} is now yours"
    case = await scalar(runtime, select(Case))
    assert (case.state, case.assignee, case.acknowledged_by) == ("in_progress", "U0SUPAGT1", "U0SUPAGT1")


async def test_admin_reroutes_and_the_new_team_owns_it(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ref = await open_support_case(client)
    assert (await run_text(runtime, f"route {ref} logistics", actor=OUTSIDER, where=HERE)).ok is False
    moved = await run_text(runtime, f"route {ref} logistics", actor=ADMIN, where=HERE)
    assert moved.text == f"{ref} moved from support to logistics"
    case = await scalar(runtime, select(Case))
    assert (case.team_key, case.routing_rule) == ("logistics", "manual")
    # Now a logistics member may act on it, and support's agent may not.
    assert (await run_text(runtime, f"take {ref}", actor=OUTSIDER, where=HERE)).ok is True
    assert (await run_text(runtime, f"note {ref} hi", actor=AGENT, where=HERE)).ok is False


async def test_snooze_needs_acknowledgement_and_reassigning_clears_it(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    ref = await open_support_case(client)
    early = await run_text(runtime, f"snooze {ref} 2h waiting for courier", actor=AGENT, where=HERE)
    assert early.text == f"{ref} must be acknowledged before it can be snoozed"
    await run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE)
    snoozed = await run_text(runtime, f"snooze {ref} 2h waiting for courier", actor=AGENT, where=HERE)
    assert snoozed.text == f"{ref} snoozed until 2026-11-02 14:00 UTC"
    case = await scalar(runtime, select(Case))
    assert case.snoozed_until == clock.now.replace(hour=14) and case.snooze_reason == "waiting for courier"
    await run_text(runtime, f"assign {ref} @U0SUPAGT2", actor=MANAGER, where=HERE)
    case = await scalar(runtime, select(Case))
    assert (case.assignee, case.snoozed_until) == ("support-agent-2", None)


async def test_resolve_with_root_cause_then_reopen(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ref = await open_support_case(client, customer={"id": "c-1", "email": "ada@example.com"})
    bad = await run_text(runtime, f'resolve {ref} recovered "bad luck"', actor=AGENT, where=HERE)
    assert bad.ok is False and "'bad luck' is not a root cause" in bad.text
    # design.md §7: resolving as recovered needs a contact attempt first.
    assert (await run_text(runtime, f"contact {ref} email", actor=AGENT, where=HERE)).ok
    done = await run_text(runtime, f'resolve {ref} recovered "Process gap"', actor=AGENT, where=HERE)
    assert done.text == f"{ref} resolved as recovered"
    again = await run_text(runtime, f"resolve {ref} recovered", actor=AGENT, where=HERE)
    assert again.text == f"{ref} is already resolved"
    case = await scalar(runtime, select(Case))
    assert (case.state, case.outcome, case.root_cause) == ("resolved", "recovered", "process gap")
    reopened = await run_text(runtime, f"reopen {ref}", actor=AGENT, where=HERE)
    assert reopened.text == f"{ref} reopened"
    case = await scalar(runtime, select(Case))
    assert (case.state, case.reopened_count, case.outcome) == ("acknowledged", 1, None)
    assert await _kinds(runtime) == ["created", "contacted", "resolved", "reopened"]


async def test_list_show_and_usage_replies(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    ref = await open_support_case(client)
    assert (await run_text(runtime, "list new", actor=AGENT, where=HERE)).text.startswith(
        f"New cases:\n• {ref} [new] support"
    )
    assert (await run_text(runtime, "list", actor=AGENT, where=HERE)).text == "Your open cases: none."
    clock.advance(hours=3)
    overdue = await run_text(runtime, "list overdue", actor=AGENT, where=HERE)
    assert ref in overdue.text
    shown = await run_text(runtime, f"show {ref}", actor=AGENT, where=HERE)
    assert "Why here: CSAT 1 is at or below 2; touchpoint 'support-phone' is owned by support" in shown.text
    usage = await run_text(runtime, "snooze CX-1", actor=AGENT, where=HERE)
    assert usage.ok is False
    assert usage.text == "`snooze` needs a duration and a reason. Usage: /cx snooze CX-42 <duration> <reason>"
    missing = await run_text(runtime, "ack CX-999", actor=MANAGER, where=HERE)
    assert missing.text == "CX-999 does not exist"


async def test_team_link_binds_the_channel(client: httpx.AsyncClient, runtime: Runtime) -> None:
    # Re-binding where a team's cards and digests go is an admin's (issue #11); members are refused.
    refused = await run_text(runtime, "team link support", actor=AGENT, where=Where("slack", "C0NEWCHAN1"))
    assert refused.text.startswith("Not allowed: only admins can link a channel to a team")
    linked = await run_text(runtime, "team link support", actor=ADMIN, where=Where("slack", "C0NEWCHAN1"))
    assert linked.ok and linked.ephemeral is False
    address = await scalar(
        runtime,
        select(TeamDestination.address).where(
            TeamDestination.team_key == "support", TeamDestination.platform == "slack"
        ),
    )
    assert address == "C0NEWCHAN1"
    denied = await run_text(runtime, "team link billing", actor=AGENT, where=Where("slack", "C0NEWCHAN1"))
    assert denied.ok is False


async def _kinds(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(CaseEvent.kind).order_by(CaseEvent.id))).scalars())


async def _outbox(runtime: Runtime) -> list[tuple[str, str, str]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.kind, OutboxMessage.platform, OutboxMessage.destination).order_by(
                OutboxMessage.id
            )
        )
        return [tuple(r) for r in rows.all()]
