"""The escalation engine on real databases: warnings, steps, repeats, stops, snoozes and restarts.

`tick(runtime, now=...)` is called directly on the frozen clock; nothing sleeps. The support team
runs the `urgent` policy of the example config: acknowledge 30m, resolve 1d, warn 10m before,
5 repeats every 30m; its manager is U0SUPMGR1, its escalation contact U0HEADCX1 and its
escalation channel C0CXESCAL1. A case opened at 12:00 is due for acknowledgement at 12:30.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from cxbot import markup
from cxbot.authz import Actor
from cxbot.cases.escalation import ACKNOWLEDGE, ClockState, Due, plan, tick
from cxbot.commands.dispatch import Where, run_text
from cxbot.config import Config, SlaPolicy
from cxbot.models import Case, CaseEvent, OutboxMessage
from cxbot.outbox.contract import ESCALATION_KINDS
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from tests.support.clock import FrozenClock

MANAGER = Actor("U0SUPMGR1", "slack")
AGENT = Actor("U0SUPAGT1", "slack")
HERE = Where(platform="slack", channel="C0SUPPORT1")
OPENED = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def at(hour: int, minute: int = 0, *, day: int = 2) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


async def open_case(
    client: httpx.AsyncClient, touchpoint: str = "Inbound", external_id: str = "neg-1"
) -> str:
    item = {"external_id": external_id, "source": "t", "metric": "csat", "score": 1, "touchpoint": touchpoint}
    response = await client.post("/feedback", json=item)
    return response.json()["results"][0]["case"]


async def firings(runtime: Runtime) -> list[tuple[str, str, int, int]]:
    """(kind, clock, step, level) of every escalation event, oldest first."""
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(CaseEvent.kind, CaseEvent.data)
            .where(CaseEvent.kind.in_(("sla_warning", "escalated")))
            .order_by(CaseEvent.id)
        )
        return [(kind, data["clock"], data["step"], data["level"]) for kind, data in rows.all()]


async def notices(runtime: Runtime) -> list[tuple[str, str]]:
    """(kind, destination) of every queued escalation DM and channel notice, oldest first."""
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.kind, OutboxMessage.destination)
            .where(OutboxMessage.kind.in_(sorted(ESCALATION_KINDS)))
            .order_by(OutboxMessage.id)
        )
        return [tuple(r) for r in rows.all()]


async def thread_lines(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.payload)
            .where(OutboxMessage.kind == "case.thread")
            .order_by(OutboxMessage.id)
        )
        return [payload["text"] for payload in rows.scalars()]


async def ticks(runtime: Runtime, *instants: datetime) -> int:
    """Tick at each instant; the number of firings in all."""
    return sum([len((await tick(runtime, now=instant)).fired) for instant in instants])


LEVEL_1 = [("escalation.dm", "U0SUPMGR1")]
LEVEL_2 = [("escalation.dm", "U0HEADCX1"), ("escalation.channel", "C0CXESCAL1")]


async def test_warning_then_breach_then_repeats_at_the_right_instants(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await open_case(client)
    assert await ticks(runtime, at(12, 5), at(12, 19)) == 0
    assert await ticks(runtime, at(12, 20)) == 1
    assert await firings(runtime) == [("sla_warning", "acknowledge", 0, 0)]
    warning = "Not acknowledged yet: escalates in 10 min (acknowledge by Mon 12:30 GMT)"
    assert (await thread_lines(runtime))[-1] == warning
    assert await notices(runtime) == []  # a warning is a thread line only
    assert await ticks(runtime, at(12, 21), at(12, 29)) == 0

    assert await ticks(runtime, at(12, 30), at(12, 31)) == 1
    assert await notices(runtime) == LEVEL_1
    assert (await thread_lines(runtime))[-1] == (
        "Not acknowledged in time (due Mon 12:30 GMT): escalated to level 1, step 1 of 6; "
        f"notified {markup.person('support-manager')}"
    )
    assert await ticks(runtime, at(12, 59)) == 0
    assert await ticks(runtime, at(13, 0)) == 1
    assert await notices(runtime) == LEVEL_1 + LEVEL_2
    # Four more steps repeat level 2, each 30 minutes after the one before; then it stops.
    assert await ticks(runtime, at(13, 30), at(13, 45), at(14, 0), at(14, 30), at(15, 0)) == 4
    assert await ticks(runtime, at(15, 30), at(18, 0), at(12, 0, day=3) - timedelta(minutes=11)) == 0
    assert await firings(runtime) == [
        ("sla_warning", "acknowledge", 0, 0),
        *[("escalated", "acknowledge", step, min(step, 2)) for step in range(1, 7)],
    ]
    assert await notices(runtime) == LEVEL_1 + LEVEL_2 * 5
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
    assert (case.escalation_level, case.ack_escalations, case.ack_next_escalation_at) == (2, 6, None)
    # The resolve clock (due at 12:00 the next day) warns and escalates on its own, independently.
    assert await ticks(runtime, at(11, 50, day=3), at(12, 0, day=3)) == 2
    assert (await firings(runtime))[-2:] == [("sla_warning", "resolve", 0, 0), ("escalated", "resolve", 1, 1)]


async def test_each_breach_refreshes_the_card_and_writes_one_audit_event(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await open_case(client)
    await ticks(runtime, at(12, 30))
    async with runtime.sessions() as session:
        event = (await session.execute(select(CaseEvent).where(CaseEvent.kind == "escalated"))).scalar_one()
        kinds = list(
            (
                await session.execute(
                    select(OutboxMessage.kind).where(
                        OutboxMessage.payload["event_id"].as_integer() == event.id
                    )
                )
            ).scalars()
        )
    assert event.actor == "cxbot"
    assert event.data == {
        "clock": "acknowledge",
        "step": 1,
        "level": 1,
        "due_at": "2026-11-02T12:30:00+00:00",
        "reason": "acknowledge deadline 2026-11-02T12:30:00+00:00 passed",
        "notified": [markup.person("support-manager")],
        "platforms": ["slack"],
        "manual": False,
    }
    assert sorted(kinds) == ["case.card", "case.thread", "escalation.dm"]


async def test_acknowledging_stops_the_acknowledge_escalation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ref = await open_case(client)
    await ticks(runtime, at(12, 20))
    assert (await run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE)).ok
    assert await ticks(runtime, at(12, 30), at(13, 0), at(15, 0)) == 0
    assert await firings(runtime) == [("sla_warning", "acknowledge", 0, 0)]
    assert await notices(runtime) == []


async def test_acknowledging_after_the_breach_stops_the_repeats(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    ref = await open_case(client)
    await ticks(runtime, at(12, 30))
    await run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE)
    assert await ticks(runtime, at(13, 0), at(14, 0)) == 0
    assert await notices(runtime) == LEVEL_1


async def test_resolving_stops_both_clocks(client: httpx.AsyncClient, runtime: Runtime) -> None:
    ref = await open_case(client)
    await ticks(runtime, at(12, 30))
    # No contact details on this case: resolved with the reason (design.md §7).
    resolved = await run_text(
        runtime, f"resolve {ref} could-not-contact no details on file", actor=AGENT, where=HERE
    )
    assert resolved.ok
    assert await ticks(runtime, at(13, 0), at(11, 55, day=3), at(12, 0, day=3), at(18, 0, day=4)) == 0
    assert await notices(runtime) == LEVEL_1


async def test_a_snooze_defers_escalation_without_moving_the_deadline(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    ref = await open_case(client)
    clock.now = at(12, 5)
    await run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE)
    clock.now = at(12, 10)
    assert (await run_text(runtime, f"snooze {ref} 1d waiting for the courier", actor=AGENT, where=HERE)).ok
    # The resolve deadline (12:00 tomorrow) passes during the snooze (until 12:10 tomorrow): silence.
    assert await ticks(runtime, at(11, 50, day=3), at(12, 0, day=3), at(12, 9, day=3)) == 0
    # When the snooze ends the overdue clock escalates once (the warning's moment has passed).
    assert await ticks(runtime, at(12, 10, day=3), at(12, 11, day=3)) == 1
    assert await firings(runtime) == [("escalated", "resolve", 1, 1)]
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
    assert case.resolve_due_at == at(12, 0, day=3)  # the snooze did not extend it
    assert case.resolve_next_escalation_at == at(12, 40, day=3)


async def test_business_hours_hold_the_clocks_over_the_weekend(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    # billing: office-hours (acknowledge 4h, warn 30m before, 3 repeats every 1h), Mon-Fri 09:00-17:30
    # Berlin, manager U0BILMGR1 and no escalation contacts or channel.
    clock.now = datetime(2026, 11, 6, 16, 0, tzinfo=UTC)  # Friday 17:00 in Berlin
    await open_case(client, touchpoint="Refunds")
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
    monday_1230_berlin = datetime(2026, 11, 9, 11, 30, tzinfo=UTC)
    assert (case.team_key, case.ack_due_at) == ("billing", monday_1230_berlin)
    saturday, sunday = datetime(2026, 11, 7, 12, 0, tzinfo=UTC), datetime(2026, 11, 8, 12, 0, tzinfo=UTC)
    assert await ticks(runtime, clock.now, saturday, sunday, monday_1230_berlin - timedelta(minutes=31)) == 0
    assert await ticks(runtime, monday_1230_berlin - timedelta(minutes=30)) == 1
    assert await ticks(runtime, monday_1230_berlin) == 1
    # The next step is an hour of working time later; with no one above the managers, they hear again.
    assert await ticks(runtime, monday_1230_berlin + timedelta(minutes=59)) == 0
    assert await ticks(runtime, monday_1230_berlin + timedelta(hours=1)) == 1
    assert await notices(runtime) == [("escalation.dm", "U0BILMGR1")] * 2
    lines = await thread_lines(runtime)
    assert lines[0] == "Not acknowledged yet: escalates in 30 min (acknowledge by Mon 12:30 CET)"


async def test_two_ticks_racing_fire_each_step_once(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await open_case(client)
    first, second = await asyncio.gather(tick(runtime, now=at(12, 30)), tick(runtime, now=at(12, 30)))
    assert len(first.fired) + len(second.fired) == 1
    again = await asyncio.gather(*(tick(runtime, now=at(13, 0)) for _ in range(3)))
    assert sum(len(report.fired) for report in again) == 1
    assert await notices(runtime) == LEVEL_1 + LEVEL_2


async def test_two_runtimes_on_one_database_fire_each_step_once(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    example_config: Config,
    clock: FrozenClock,
) -> None:
    await open_case(client)
    replica = Runtime.build(settings=settings, config=example_config, clock=clock)
    try:
        reports = await asyncio.gather(tick(runtime, now=at(12, 30)), tick(replica, now=at(12, 30)))
    finally:
        await replica.close()
    assert sum(len(report.fired) for report in reports) == 1
    assert await notices(runtime) == LEVEL_1


async def test_an_escalation_due_while_the_bot_was_stopped_fires_once_after_restart(
    client: httpx.AsyncClient,
    runtime: Runtime,
    settings: Settings,
    example_config: Config,
    clock: FrozenClock,
) -> None:
    await open_case(client)
    await runtime.close()  # the bot stops; the breach (12:30) and every repeat (up to 15:00) pass unseen
    clock.now = at(16, 0)
    restarted = Runtime.build(settings=settings, config=example_config, clock=clock)
    try:
        assert await ticks(restarted, at(16, 0), at(16, 0)) == 1
        assert await firings(restarted) == [("escalated", "acknowledge", 1, 1)]
        assert await notices(restarted) == LEVEL_1
        # The next step is paced from now, not replayed from the missed schedule.
        assert await ticks(restarted, at(16, 29)) == 0
        assert await ticks(restarted, at(16, 30)) == 1
        assert await notices(restarted) == LEVEL_1 + LEVEL_2
    finally:
        await restarted.close()


async def test_reopening_starts_the_resolve_clock_over(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    ref = await open_case(client)
    await run_text(runtime, f"ack {ref}", actor=MANAGER, where=HERE)
    assert await ticks(runtime, at(12, 0, day=3)) == 1  # resolve breach
    clock.now = at(13, 0, day=3)
    assert (
        await run_text(runtime, f"resolve {ref} could-not-contact no details", actor=AGENT, where=HERE)
    ).ok
    await run_text(runtime, f"reopen {ref}", actor=AGENT, where=HERE)  # new resolve deadline: 13:00 tomorrow
    assert await ticks(runtime, at(12, 49, day=4)) == 0
    assert await ticks(runtime, at(12, 50, day=4), at(13, 0, day=4)) == 2
    steps: list[Any] = [f for f in await firings(runtime) if f[1] == "resolve"]
    assert steps == [
        ("escalated", "resolve", 1, 1),
        ("sla_warning", "resolve", 0, 0),
        ("escalated", "resolve", 1, 1),
    ]


def test_plan_is_a_pure_function_of_the_clock_state() -> None:
    policy = SlaPolicy(acknowledge="30m", warn_before="10m", repeat=2, repeat_every="30m")
    due = at(12, 30)
    fresh = ClockState(
        deadline=due, clock_due_at=None, warned_at=None, escalations=0, next_escalation_at=None
    )
    assert plan(ACKNOWLEDGE, fresh, case_id=1, policy=policy, now=at(12, 19)) is None
    assert plan(ACKNOWLEDGE, fresh, case_id=1, policy=policy, now=at(12, 20)) == Due(
        1, "acknowledge", 0, 0, due
    )
    # Down through the warning and the breach: the breach fires, the warning is not replayed.
    assert plan(ACKNOWLEDGE, fresh, case_id=1, policy=policy, now=at(18, 0)) == Due(
        1, "acknowledge", 1, 1, due
    )
    stepped = ClockState(
        deadline=due, clock_due_at=due, warned_at=None, escalations=1, next_escalation_at=at(13, 0)
    )
    assert plan(ACKNOWLEDGE, stepped, case_id=1, policy=policy, now=at(12, 59)) is None
    assert plan(ACKNOWLEDGE, stepped, case_id=1, policy=policy, now=at(13, 0)) == Due(
        1, "acknowledge", 2, 2, due
    )
    done = ClockState(deadline=due, clock_due_at=due, warned_at=None, escalations=3, next_escalation_at=None)
    assert plan(ACKNOWLEDGE, done, case_id=1, policy=policy, now=at(23, 0)) is None
    # The deadline moved (a reopen): the old steps belong to the old deadline, the clock starts over.
    moved = ClockState(
        deadline=at(14, 0), clock_due_at=due, warned_at=at(12, 20), escalations=3, next_escalation_at=None
    )
    assert plan(ACKNOWLEDGE, moved, case_id=1, policy=policy, now=at(13, 50)) == Due(
        1, "acknowledge", 0, 0, at(14, 0)
    )
