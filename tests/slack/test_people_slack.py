"""People across platforms (design.md §1): the support manager of the example config is the person
`support-manager` (Slack U0SUPMGR1, a Teams GUID), the same manager whether they act from a signed
Slack request, the console or Teams; what they do is recorded as the person, and `list mine` finds
cases given to them anywhere, old rows that hold their Slack id included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from cxbot.authz import actor_for, is_manager, is_member, teams_of
from cxbot.commands.dispatch import Where, run_text
from cxbot.models import Case
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock
from tests.support.fake_slack import FakeSlack, SlackSender, slack_sender
from tests.support.platforms import platform_notifiers

MANAGER_SLACK = "U0SUPMGR1"
CONSOLE = Where(platform="console", channel="#support")


@pytest.fixture
async def slack(runtime: Runtime, fake_slack: FakeSlack) -> AsyncIterator[SlackSender]:
    async with slack_sender(runtime, fake_slack, API_KEY) as sender:
        yield sender


async def open_cases(slack: SlackSender, count: int) -> list[str]:
    refs = []
    for n in range(count):
        item = {
            "external_id": f"neg-{n}",
            "source": "t",
            "metric": "csat",
            "score": 1,
            "touchpoint": "Inbound",
        }
        response = await slack.http.post("/feedback", json=item)
        refs.append(response.json()["results"][0]["case"])
    return refs


async def stored(runtime: Runtime) -> list[tuple[str | None, str | None]]:
    async with runtime.sessions() as session:
        rows = await session.execute(select(Case.acknowledged_by, Case.assignee).order_by(Case.id))
        return [tuple(r) for r in rows.all()]


async def test_one_manager_on_slack_the_console_and_teams(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime
) -> None:
    config = runtime.config
    guid = config.people["support-manager"].msteams
    assert guid is not None
    on_slack = actor_for(config, "slack", MANAGER_SLACK)
    on_console = actor_for(config, "console", "support-manager")
    on_teams = actor_for(config, "msteams", guid)
    assert {on_slack.person, on_console.person, on_teams.person} == {"support-manager"}
    for actor in (on_slack, on_console, on_teams):
        assert is_manager(config, actor, "support") and is_member(config, actor, "support")
        assert not is_manager(config, actor, "billing")
        assert teams_of(config, actor) == ["support"]
    # A Slack id only counts on Slack: the same string from Teams is nobody.
    assert not is_manager(config, actor_for(config, "msteams", MANAGER_SLACK), "support")

    first, second = await open_cases(slack, 2)
    await slack.command(f"ack {first}", user=MANAGER_SLACK)
    assert fake_slack.responses()[-1]["text"] == f"{first} acknowledged"
    reply = await run_text(runtime, f"ack {second}", actor=on_console, where=CONSOLE)
    assert reply.ok, reply.text
    again = await run_text(runtime, f"ack {first}", actor=on_console, where=CONSOLE)
    assert again.text == f"{first} was already acknowledged by \ue000person\ue001support-manager\ue002"
    assert await stored(runtime) == [("support-manager", None), ("support-manager", None)]


async def test_list_mine_finds_cases_assigned_on_either_platform_and_old_rows(
    slack: SlackSender, fake_slack: FakeSlack, runtime: Runtime, clock: FrozenClock
) -> None:
    on_slack, on_console, old, theirs = await open_cases(slack, 4)
    await slack.command(f"take {on_slack}", user=MANAGER_SLACK)
    console = actor_for(runtime.config, "console", "support-manager")
    assert (await run_text(runtime, f"take {on_console}", actor=console, where=CONSOLE)).ok
    # A Slack mention of the agent becomes the person `support-agent-1`.
    await slack.command(f"assign {theirs} <@U0SUPAGT1|priya>", user=MANAGER_SLACK)
    assert fake_slack.responses()[-1]["text"] == f"{theirs} assigned to <@U0SUPAGT1>"
    async with runtime.sessions() as session, session.begin():  # a row written before `people:`
        await session.execute(
            update(Case).where(Case.id == int(old[3:])).values(assignee=MANAGER_SLACK, state="in_progress")
        )
    assert [assignee for _, assignee in await stored(runtime)] == [
        "support-manager",
        "support-manager",
        MANAGER_SLACK,
        "support-agent-1",
    ]

    await slack.command("list mine", user=MANAGER_SLACK)
    listed = fake_slack.responses()[-1]["text"]
    from_console = (await run_text(runtime, "list mine", actor=console, where=CONSOLE)).text
    for text in (listed, from_console):
        assert all(ref in text for ref in (on_slack, on_console, old)), text
        assert theirs not in text
    # Taking the old row again is "already yours": it is the same person.
    assert (
        await run_text(runtime, f"take {old}", actor=console, where=CONSOLE)
    ).text == f"{old} is already yours"

    # The card shows the person by their Slack id: a live mention, and the reassign select preset.
    await OutboxWorker(runtime, platform_notifiers(runtime)).run_once(now=clock.now)
    [card] = [
        c.body
        for c in fake_slack.calls("chat.postMessage")
        if c.body.get("blocks") and f"{theirs} ·" in str(c.body["blocks"][0])
    ]
    blocks = json.dumps(card["blocks"])
    assert '"*Assignee*\\n<@U0SUPAGT1>"' in blocks and '"initial_user": "U0SUPAGT1"' in blocks
    assert "support-agent-1" not in blocks
