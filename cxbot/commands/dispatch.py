"""Runs a parsed command for an actor: one transaction per interaction, a platform-neutral reply.

Slack, Teams and the console call :func:`run_text` with the text the user typed and where they typed
it; they render the :class:`Reply` their own way. Errors a user can fix (usage, permissions, unknown
case, wrong state) come back as replies, never as exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cxbot import markup
from cxbot.authz import Actor, Denied, is_admin, mine, require_admin, require_member, teams_of
from cxbot.cases import flows, privacy
from cxbot.cases.customers import CustomerNotFound, customer_page
from cxbot.cases.overview import overdue, overview_of
from cxbot.commands.grammar import (
    Command,
    CommandError,
    HelpListing,
    check_limits,
    help_text,
    parse,
    verb_named,
)
from cxbot.commands.home import overview_text
from cxbot.db import insert_for, retrying, transaction
from cxbot.digest.content import build_team_digest
from cxbot.digest.schedule import local_date
from cxbot.digest.text import render_team_digest
from cxbot.loop import resurvey
from cxbot.loop.contact import flows as contact_flows
from cxbot.models import OPEN_CASE_STATES, Case, CaseEvent, TeamDestination
from cxbot.outbox.inbox import first_time
from cxbot.pii import mask_text
from cxbot.runtime import Runtime
from cxbot.scores.annotations import AnnotationRejected, record_annotation
from cxbot.scores.report import ScopeNotFound, build_score_report, render_score_report, resolve_scope

LIST_LIMIT = 20


@dataclass(frozen=True, slots=True)
class Where:
    """Where a command was typed: the platform and its channel or conversation."""

    platform: str
    channel: str | None = None
    reference: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Once:
    """An inbound event id (a signed request's signature) recorded in the command's own transaction:
    one write transaction per command instead of two, and a replay changes nothing."""

    platform: str
    event_id: str
    kind: str | None = None


class AlreadyReceived(Exception):
    """The command's `Once` was recorded before: it ran once already, and nothing ran now."""


@dataclass(slots=True)
class Reply:
    """What to show the user. `ephemeral` replies are for the caller only."""

    text: str
    ok: bool = True
    ephemeral: bool = True
    case: Case | None = None
    cases: list[Case] = field(default_factory=list)
    events: list[CaseEvent] = field(default_factory=list)
    usage: str | None = None
    #: The input a user must fix when a form-backed command is refused (`team`, `feedback`...).
    fix_field: str | None = None
    #: A structured result renderers may draw richly (a `TeamDigest`, a `ScoreReport`); `text`
    #: still says everything on its own.
    report: Any = None
    #: Revealed customer details: only the caller may see them, so a platform without ephemeral
    #: messages (Teams) sends them to the caller's personal chat, never into a channel.
    private: bool = False


async def run_text(
    runtime: Runtime, text: str, *, actor: Actor, where: Where, once: Once | None = None
) -> Reply:
    """Parse and run one command; every user mistake becomes a Reply with the reason.

    With `once`, a command whose event id was recorded before raises AlreadyReceived.
    """
    try:
        command = parse(markup.plain(text))  # typed text never carries the core's tokens
    except CommandError as error:
        return _usage_reply(runtime, error)
    return await run(runtime, command, actor=actor, where=where, once=once)


def _usage_reply(runtime: Runtime, error: CommandError) -> Reply:
    return Reply(
        f"{error}. Usage: {runtime.config.slash_command} {error.usage}"
        if error.verb
        else f"{error}.\n{error.usage}",
        ok=False,
        usage=error.usage,
        fix_field=error.field,
        report=None if error.verb else HelpListing(runtime.config.slash_command),
    )


async def run(
    runtime: Runtime, command: Command, *, actor: Actor, where: Where, once: Once | None = None
) -> Reply:
    """Run a parsed command in its own transaction, once its arguments are within cxbot.limits.

    `once` is recorded in that transaction: a refused or failed command leaves no record, so its
    replay is refused the same way; a replay of one that ran raises AlreadyReceived. The transaction
    is run again if the database went away under it (cxbot.db.retrying): it rolled back with the
    connection, and `once` keeps a commit whose answer was lost from running twice.
    """
    try:
        check_limits(command)
    except CommandError as error:
        return _usage_reply(runtime, error)

    async def attempt() -> Reply:
        async with transaction(runtime.sessions) as session:
            if once is not None and not await first_time(
                session, platform=once.platform, event_id=once.event_id, kind=once.kind, now=runtime.clock()
            ):
                raise AlreadyReceived(once.event_id)
            return await _HANDLERS[command.verb](runtime, session, command, actor, where)

    try:
        return await retrying(attempt)
    except flows.FieldRejected as error:
        return Reply(str(error), ok=False, fix_field=error.field)
    except (flows.CaseNotFound, flows.InvalidTransition) as error:
        return Reply(str(error), ok=False)
    except Denied as error:
        return Reply(f"Not allowed: {error}", ok=False)


async def _help(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    topic = command.args.get("topic")
    if topic:
        verb = verb_named(topic)
        if verb is None:
            return Reply(
                f"No verb {topic!r}.\n{help_text(command=runtime.config.slash_command)}",
                ok=False,
                report=HelpListing(runtime.config.slash_command),
            )
        return Reply(f"{runtime.config.slash_command} {verb.usage}: {verb.summary}")
    return Reply(
        help_text(command=runtime.config.slash_command), report=HelpListing(runtime.config.slash_command)
    )


async def _list(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    scope = command.args["scope"]
    now = runtime.clock()
    query = (
        select(Case).where(Case.state.in_(OPEN_CASE_STATES)).order_by(Case.id.desc()).limit(LIST_LIMIT + 1)
    )
    title = {
        "mine": "Your open cases",
        "overdue": "Overdue cases",
        "new": "New cases",
        "all": "All open cases",
    }.get(scope)
    if scope == "mine":
        query = query.where(Case.assignee.in_(mine(runtime.config, actor)))
    elif scope == "team":
        team = command.args["team"]
        if team not in runtime.config.team_keys:
            return Reply(
                f"{team!r} is not a team (teams are: {', '.join(runtime.config.team_keys)})", ok=False
            )
        query = query.where(Case.team_key == team)
        title = f"Open cases of {team}"
    elif scope == "overdue":
        query = query.where(overdue(now))
    elif scope == "new":
        query = query.where(Case.state == "new")
    found = list((await session.execute(query)).scalars())
    more = len(found) > LIST_LIMIT
    found = found[:LIST_LIMIT]
    if not found:
        return Reply(f"{title}: none.")
    lines = [f"{title}:"] + [f"• {c.ref} [{c.state}] {c.team_key}: {markup.shown(c.title)}" for c in found]
    if more:
        lines.append(f"(showing the newest {LIST_LIMIT}; narrow with `list team <team>`)")
    return Reply("\n".join(lines), cases=found)


async def _show(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    assert command.case_id is not None
    case = await flows.get_case(session, command.case_id)
    events = await flows.timeline(session, case.id)
    lines = [*show_head(case), *(timeline_line(e) for e in events)]
    return Reply("\n".join(lines), case=case, events=events)


def show_head(case: Case) -> list[str]:
    """The first lines of `show`: the case's own words (title, routing reason) masked."""
    return [
        f"{case.ref} [{case.state}] {markup.shown(case.title)}",
        f"Team: {case.team_key} · Assignee: {markup.person(case.assignee)} · "
        f"Escalation level: {case.escalation_level}",
        f"Why here: {markup.shown(case.routing_reason)}",
    ]


def timeline_line(event: CaseEvent) -> str:
    """One timeline line of `show`: neutral text with mention tokens, masked like a thread line."""
    return f"{event.at:%Y-%m-%d %H:%M} {mask_text(event.detail or event.kind)}"


async def _case_action(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    assert command.case_id is not None
    common = {"config": runtime.config, "case_id": command.case_id, "actor": actor, "now": runtime.clock()}
    verb = command.verb
    if verb == "ack":
        result = await flows.acknowledge(session, **common)
    elif verb == "take":
        result = await flows.take(session, **common)
    elif verb == "assign":
        result = await flows.assign(session, user=command.args["user"], **common)
    elif verb == "route":
        result = await flows.route(session, team=command.args["team"], **common)
    elif verb == "note":
        result = await flows.note(session, text=command.args["text"], **common)
    elif verb == "snooze":
        result = await flows.snooze(
            session, duration=command.args["duration"], reason=command.args["reason"], **common
        )
    elif verb == "escalate":
        result = await flows.escalate(session, **common)
    elif verb == "resolve":
        result = await flows.resolve(
            session,
            outcome=command.args["outcome"],
            root_cause=command.args["root_cause"],
            no_contact_reason=command.args.get("reason"),
            **common,
        )
        if result.changed:  # the team may want the customer re-surveyed now (design.md §7)
            followup = await resurvey.on_resolved(runtime, session, case_id=command.case_id, actor=actor)
            if followup:
                return Reply(f"{result.message}. {followup}", case=result.case)
    elif verb == "reopen":
        result = await flows.reopen(session, **common)
    else:  # pragma: no cover - the table below only routes case verbs here
        raise AssertionError(verb)
    return Reply(result.message, case=result.case)


async def _team_link(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    team = command.args["team"]
    if team not in runtime.config.team_keys:
        return Reply(f"{team!r} is not a team (teams are: {', '.join(runtime.config.team_keys)})", ok=False)
    if not where.channel:
        return Reply("`team link` binds the channel it is typed in; type it in the team's channel", ok=False)
    # Re-binding where a team's cases and digests go is configuration: admins only (design.md §6).
    require_admin(
        runtime.config, actor, doing="link a channel to a team (it re-routes its cards and digests)"
    )
    stmt = insert_for(session, TeamDestination).values(
        team_key=team,
        platform=where.platform,
        address=where.channel,
        reference=where.reference,
        linked_by=actor.ident,
        linked_at=runtime.clock(),
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[TeamDestination.team_key, TeamDestination.platform],
            set_={
                "address": where.channel,
                "reference": where.reference,
                "linked_by": actor.ident,
                "linked_at": runtime.clock(),
            },
        )
    )
    return Reply(f"This channel now receives {team}'s case cards and digests.", ephemeral=False)


async def _teams(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    rows = await session.execute(select(TeamDestination))
    channels: dict[str, list[str]] = {}
    for dest in rows.scalars():
        channels.setdefault(dest.team_key, []).append(f"{dest.platform}:{dest.address}")
    mine = set(teams_of(runtime.config, actor))
    lines = []
    for team in runtime.config.teams:
        touchpoints = [t.key for t in runtime.config.touchpoints if t.team == team.key]
        marker = " (yours)" if team.key in mine else ""
        lines.append(
            f"• {team.key}{marker}: {team.name}, {team.timezone}; "
            f"channels {', '.join(channels.get(team.key, [])) or 'none'}; "
            f"touchpoints {', '.join(touchpoints) or 'none'}"
        )
    return Reply("\n".join(lines))


async def _config(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    config = runtime.config
    limits = config.thresholds
    sentiment = f"yes, below {config.sentiment.negative_below}" if config.sentiment.enabled else "no"
    return Reply(
        "\n".join(
            [
                f"Config: {len(config.teams)} teams, {len(config.touchpoints)} touchpoints, "
                f"{len(config.routing.rules)} routing rules, fallback team {config.routing.fallback_team}",
                f"Thresholds: NPS ≤ {limits.nps}, CSAT ≤ {limits.csat}, CES ≤ {limits.ces}",
                f"Sentiment adds cases: {sentiment}",
                "SLA policies: "
                + "; ".join(
                    f"{name} ack {p.acknowledge}, resolve {p.resolve}"
                    for name, p in config.sla_policies.items()
                ),
            ]
        )
    )


async def _new(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    """Open a case by hand; `new` alone is a request for the form, which only some platforms have."""
    args = command.args
    if not args:
        verb = verb_named("new")
        assert verb is not None
        return Reply(
            f"`new` needs a team and then a text or feedback:<id>. "
            f"Usage: {runtime.config.slash_command} {verb.usage}",
            ok=False,
            usage=verb.usage,
        )
    result = await flows.open_case(
        session,
        config=runtime.config,
        actor=actor,
        team=args["team"],
        feedback_id=args.get("feedback_id"),
        text=args.get("text"),
        touchpoint=args.get("touchpoint"),
        now=runtime.clock(),
    )
    return Reply(f"{result.message} (its card goes to the team's channel)", case=result.case)


async def _home(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    """The caller's overview (what Slack's App Home shows): their cases, their teams' overdue, scores."""
    overview = await overview_of(session, actor, config=runtime.config, now=runtime.clock())
    return Reply(overview_text(overview, command=runtime.config.slash_command), report=overview)


async def _score(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    try:
        kind, key = resolve_scope(
            runtime.config, command.args.get("scope"), default_teams=teams_of(runtime.config, actor)
        )
    except ScopeNotFound as error:
        return Reply(str(error), ok=False)
    report = await build_score_report(
        session, config=runtime.config, kind=kind, key=key, window=command.args["window"], now=runtime.clock()
    )
    return Reply(render_score_report(report), report=report)


async def _digest(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    config = runtime.config
    team_key = command.args.get("team")
    if team_key is None:
        mine = teams_of(config, actor)
        if len(mine) != 1:
            return Reply(
                f"Which team? Usage: {config.slash_command} digest <team> preview "
                f"(teams are: {', '.join(config.team_keys)})",
                ok=False,
            )
        team_key = mine[0]
    if team_key not in config.team_keys:
        return Reply(f"{team_key!r} is not a team (teams are: {', '.join(config.team_keys)})", ok=False)
    if not is_admin(config, actor):
        require_member(config, actor, team_key, doing="preview its digest")
    team = config.team(team_key)
    now = runtime.clock()
    report_date = local_date(moment=now, zone=ZoneInfo(team.timezone)) - timedelta(days=1)
    digest = await build_team_digest(session, team=team, report_date=report_date, now=now, config=config)
    return Reply(render_team_digest(digest), report=digest)


async def _annotate(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    try:
        annotation = await record_annotation(
            session,
            config=runtime.config,
            actor=actor,
            touchpoint=command.args["touchpoint"],
            text=command.args["text"],
            now=runtime.clock(),
        )
    except AnnotationRejected as error:
        return Reply(str(error), ok=False)
    return Reply(
        f"Noted at {annotation.touchpoint_key} ({annotation.effective_at:%Y-%m-%d %H:%M} UTC): "
        f"“{annotation.text}”. `{runtime.config.slash_command} score {annotation.touchpoint_key}` "
        "will show the scores before and after it."
    )


async def _customer(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    """The single customer view; the page itself is built (and any PII reveal audited) in cases.customers."""
    args = command.args
    try:
        page = await customer_page(
            session,
            config=runtime.config,
            actor=actor,
            ident=args["customer"],
            case_id=args.get("case_id"),
            before=args.get("before"),
            after=args.get("after"),
            now=runtime.clock(),
        )
    except CustomerNotFound as error:
        return Reply(str(error), ok=False)
    return Reply(page.text(command=runtime.config.slash_command), report=page)


async def _resurvey(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    assert command.case_id is not None
    result = await resurvey.send_command(runtime, session, case_id=command.case_id, actor=actor)
    return Reply(result.message, case=result.case)


async def _reveal(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    """The customer's details, for the caller only: always ephemeral, whatever the platform."""
    assert command.case_id is not None
    shown = await privacy.reveal(
        session, config=runtime.config, case_id=command.case_id, actor=actor, now=runtime.clock()
    )
    return Reply(shown.text, ephemeral=True, private=True)


async def _forget(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    """`forget <id>` erases a customer for good; `forget <id> undo` lifts that (both admins only)."""
    erase = privacy.restore if command.args.get("undo") else privacy.forget
    try:
        done = await erase(
            session,
            config=runtime.config,
            external_id=command.args["customer"],
            actor=actor,
            now=runtime.clock(),
        )
    except LookupError as error:
        return Reply(f"{error}; give the customer's id as the survey tool sends it", ok=False)
    return Reply(done.message)


async def _contact(runtime: Runtime, session: Any, command: Command, actor: Actor, where: Where) -> Reply:
    """Message the customer; `contact CX-42` alone lists the ways (Slack opens its composer instead)."""
    assert command.case_id is not None
    args = command.args
    if not args:
        form = await contact_flows.composer(
            session, config=runtime.config, case_id=command.case_id, actor=actor
        )
        if form.problem:
            return Reply(form.problem, ok=False)
        lines = [f"Contact the customer of {form.ref}:"]
        lines += [f"• {choice.channel}: {choice.label}" for choice in form.channels]
        lines.append("Templates: " + ", ".join(name for name, _ in form.templates))
        lines.append(
            f"Send with `{runtime.config.slash_command} contact {form.ref} <channel> "
            f"[template:<name>] [text]`; without text, template {form.rendered.name!r} goes as it reads:"
        )
        lines.append(form.rendered.body)
        return Reply("\n".join(lines))
    result = await contact_flows.contact(
        session,
        config=runtime.config,
        case_id=command.case_id,
        actor=actor,
        channel=args.get("channel"),
        template=args.get("template"),
        text=args.get("text"),
        now=runtime.clock(),
        idempotency_key=args.get("idempotency_key"),
    )
    return Reply(result.message, case=result.case)


_HANDLERS = {
    "help": _help,
    "customer": _customer,
    "score": _score,
    "digest": _digest,
    "annotate": _annotate,
    "list": _list,
    "show": _show,
    "home": _home,
    "team_link": _team_link,
    "teams": _teams,
    "config": _config,
    "new": _new,
    "resurvey": _resurvey,
    "reveal": _reveal,
    "forget": _forget,
    "contact": _contact,
    **{
        verb: _case_action
        for verb in ("ack", "take", "assign", "route", "note", "snooze", "escalate", "resolve", "reopen")
    },
}
