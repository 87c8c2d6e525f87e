"""The one `/cx` grammar (design.md §5), parsed here and nowhere else.

Slack's slash command, Teams' text messages (`cx list mine`) and the console all hand the text after
the command name to :func:`parse`; they only translate mentions in and render results out. A bad
command raises :class:`CommandError` carrying the usage of the verb the user meant, so every
platform can answer with the same precise line.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cxbot import limits
from cxbot.cases.customers import Cursor
from cxbot.config import parse_duration
from cxbot.limits import parse_id

# ASCII digits only (`CX-１` is not a case); the value is checked by cxbot.limits.parse_id.
CASE_REF = re.compile(r"^(?:#|cx-?)?([0-9]+)$", re.IGNORECASE)
OUTCOMES = ("recovered", "partially-recovered", "not-recovered", "could-not-contact", "no-action-needed")
LIST_SCOPES = ("mine", "team", "overdue", "new", "all")
MAX_SNOOZE = timedelta(days=30)


class CommandError(ValueError):
    """A command that cannot run as typed; `usage` is the verb's usage line (or the help)."""

    def __init__(self, message: str, *, verb: str | None, usage: str, field: str | None = None) -> None:
        super().__init__(message)
        self.verb = verb
        self.usage = usage
        #: The argument at fault, when a form should show the message on that input.
        self.field = field


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: its canonical verb, the case it names (if any) and its arguments."""

    verb: str
    case_id: int | None = None
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verb:
    name: str
    usage: str
    summary: str
    parse: Callable[[list[str], Verb], Command]
    aliases: tuple[str, ...] = ()


def case_ref(text: str) -> int | None:
    """`CX-42`, `cx42`, `#42` or `42` → 42."""
    match = CASE_REF.match(text.strip())
    return parse_id(match.group(1)) if match else None


def user_ref(text: str) -> str:
    """`@U123` or `U123` → `U123`: platforms turn their own mentions into `@id` before parsing."""
    return text.strip().lstrip("@")


def _fail(verb: Verb, message: str) -> CommandError:
    return CommandError(message, verb=verb.name, usage=verb.usage)


def _needs_case(words: list[str], verb: Verb) -> int:
    if not words:
        raise _fail(verb, f"`{verb.name}` needs a case id such as CX-42")
    ident = case_ref(words[0])
    if ident is None:
        raise _fail(verb, f"{words[0]!r} is not a case id (expected something like CX-42)")
    return ident


def _no_more(words: list[str], verb: Verb) -> None:
    if words:
        raise _fail(verb, f"unexpected {' '.join(words)!r}")


def _p_plain(words: list[str], verb: Verb) -> Command:
    _no_more(words, verb)
    return Command(verb.name)


def _p_help(words: list[str], verb: Verb) -> Command:
    return Command("help", args={"topic": words[0].lower() if words else None})


def _p_case_only(words: list[str], verb: Verb) -> Command:
    ident = _needs_case(words, verb)
    _no_more(words[1:], verb)
    return Command(verb.name, ident)


def _p_list(words: list[str], verb: Verb) -> Command:
    if not words:
        return Command("list", args={"scope": "mine"})
    scope = words[0].lower()
    if scope not in LIST_SCOPES:
        raise _fail(verb, f"{words[0]!r} is not one of {', '.join(LIST_SCOPES)}")
    if scope == "team":
        if len(words) != 2:
            raise _fail(verb, "`list team` needs exactly one team key")
        return Command("list", args={"scope": "team", "team": words[1].lower()})
    _no_more(words[1:], verb)
    return Command("list", args={"scope": scope})


def _p_assign(words: list[str], verb: Verb) -> Command:
    ident = _needs_case(words, verb)
    if len(words) != 2:
        raise _fail(verb, "`assign` needs a case id and one person")
    return Command("assign", ident, {"user": user_ref(words[1])})


def _p_route(words: list[str], verb: Verb) -> Command:
    ident = _needs_case(words, verb)
    if len(words) != 2:
        raise _fail(verb, "`route` needs a case id and one team key")
    return Command("route", ident, {"team": words[1].lower()})


def _p_note(words: list[str], verb: Verb) -> Command:
    ident = _needs_case(words, verb)
    text = " ".join(words[1:]).strip()
    if not text:
        raise _fail(verb, "`note` needs some text after the case id")
    return Command("note", ident, {"text": text})


def _p_snooze(words: list[str], verb: Verb) -> Command:
    ident = _needs_case(words, verb)
    if len(words) < 3:
        raise _fail(verb, "`snooze` needs a duration and a reason")
    try:
        duration = parse_duration(words[1])
    except ValueError as error:
        raise _fail(verb, str(error)) from None
    if not timedelta(minutes=1) <= duration <= MAX_SNOOZE:
        raise _fail(verb, "a snooze lasts between 1m and 30d")
    return Command("snooze", ident, {"duration": duration, "reason": " ".join(words[2:])})


def _p_resolve(words: list[str], verb: Verb) -> Command:
    ident = _needs_case(words, verb)
    if len(words) < 2:
        raise _fail(verb, f"`resolve` needs an outcome: {', '.join(OUTCOMES)}")
    outcome = words[1].lower()
    if outcome not in OUTCOMES:
        raise _fail(verb, f"{words[1]!r} is not an outcome: {', '.join(OUTCOMES)}")
    rest = " ".join(words[2:]).strip() or None
    if outcome == "could-not-contact":
        # The rest is why (design.md §7: no contact attempt needs an explicit reason).
        if rest is None:
            raise _fail(verb, "`could-not-contact` needs the reason, e.g. `no email or phone on record`")
        return Command("resolve", ident, {"outcome": outcome, "root_cause": None, "reason": rest})
    return Command("resolve", ident, {"outcome": outcome, "root_cause": rest})


CONTACT_CHANNELS = ("email", "sms", "webhook")
TEMPLATE_PREFIX = "template:"


def _p_contact(words: list[str], verb: Verb) -> Command:
    """`contact CX-42` alone asks for the composer; `contact CX-42 <channel> [template:<name>] [text…]` sends.

    Without text the template (the team's default if none is named) is sent as it renders.
    """
    ident = _needs_case(words, verb)
    if len(words) == 1:
        return Command("contact", ident)
    channel = words[1].lower()
    if channel not in CONTACT_CHANNELS:
        raise _fail(verb, f"{words[1]!r} is not a channel: {', '.join(CONTACT_CHANNELS)}")
    rest = words[2:]
    template = None
    if rest and rest[0].lower().startswith(TEMPLATE_PREFIX):
        template = rest[0][len(TEMPLATE_PREFIX) :].strip().lower() or None
        if template is None:
            raise _fail(verb, "`template:` needs a template name")
        rest = rest[1:]
    text = " ".join(rest).strip() or None
    return Command("contact", ident, {"channel": channel, "template": template, "text": text})


def _p_team(words: list[str], verb: Verb) -> Command:
    if len(words) != 2 or words[0].lower() != "link":
        raise _fail(verb, "`team` takes `link <team>`")
    return Command("team_link", args={"team": words[1].lower()})


FEEDBACK_PREFIX = "feedback:"
TOUCHPOINT_PREFIX = "touchpoint:"


def _p_new(words: list[str], verb: Verb) -> Command:
    """`new` alone asks for a form (platforms that have one open it); otherwise a team and what to open.

    `new <team> [touchpoint:<key>] <text…>` or `new <team> [touchpoint:<key>] feedback:<id>`.
    """
    if not words:
        return Command("new")
    args: dict[str, Any] = {"team": words[0].lower(), "feedback_id": None, "text": None, "touchpoint": None}
    rest = words[1:]
    if rest and rest[0].lower().startswith(TOUCHPOINT_PREFIX):
        args["touchpoint"] = rest[0][len(TOUCHPOINT_PREFIX) :].strip() or None
        rest = rest[1:]
    if rest and rest[0].lower().startswith(FEEDBACK_PREFIX):
        ident = parse_id(rest[0][len(FEEDBACK_PREFIX) :])
        if ident is None:
            raise _fail(verb, f"{rest[0]!r} is not a feedback id (expected something like feedback:123)")
        _no_more(rest[1:], verb)
        args["feedback_id"] = ident
        return Command("new", args=args)
    text = " ".join(rest).strip()
    if not text:
        raise _fail(verb, "`new` needs a team and then a text or feedback:<id>")
    args["text"] = text
    return Command("new", args=args)


SCORE_WINDOWS = ("1d", "7d", "28d", "90d")


def _p_score(words: list[str], verb: Verb) -> Command:
    """`score [team|touchpoint] [window]`, in either order; the handler resolves the scope word."""
    scope = window = None
    for word in words:
        lowered = word.lower()
        if lowered in SCORE_WINDOWS and window is None:
            window = lowered
        elif scope is None and lowered not in SCORE_WINDOWS:
            scope = lowered
        else:
            raise _fail(verb, f"unexpected {word!r} (give at most one team or touchpoint and one window)")
    return Command("score", args={"scope": scope, "window": window or "7d"})


def _p_digest(words: list[str], verb: Verb) -> Command:
    """`digest [team] [preview]`: the digest built now, shown only to the caller."""
    rest = [w.lower() for w in words]
    if rest and rest[-1] == "preview":
        rest = rest[:-1]
    if len(rest) > 1:
        raise _fail(verb, f"unexpected {' '.join(words[1:])!r}")
    return Command("digest", args={"team": rest[0] if rest else None})


def _p_annotate(words: list[str], verb: Verb) -> Command:
    if len(words) < 2:
        raise _fail(verb, "`annotate` needs a touchpoint and what changed")
    return Command("annotate", args={"touchpoint": words[0].lower(), "text": " ".join(words[1:]).strip()})


BEFORE_PREFIX, AFTER_PREFIX = "before:", "after:"


def _p_customer(words: list[str], verb: Verb) -> Command:
    """`customer <external id or CX-42> [before:<position>|after:<position>]` (positions come from a page)."""
    if not words:
        raise _fail(verb, "`customer` needs a customer id, or a case such as CX-42")
    args: dict[str, Any] = {"customer": words[0], "case_id": case_ref(words[0])}
    args |= {"before": None, "after": None}
    rest = words[1:]
    if len(rest) > 1:
        raise _fail(verb, f"unexpected {' '.join(rest[1:])!r}")
    if rest:
        word = rest[0]
        key = "before" if word.lower().startswith(BEFORE_PREFIX) else "after"
        if not word.lower().startswith((BEFORE_PREFIX, AFTER_PREFIX)):
            raise _fail(verb, f"unexpected {word!r} (a page is `before:<position>` or `after:<position>`)")
        try:
            args[key] = Cursor.parse(word.partition(":")[2])
        except ValueError as error:
            raise _fail(verb, str(error)) from None
    return Command("customer", args=args)


UNDO_WORDS = ("undo", "restore")


def _p_forget(words: list[str], verb: Verb) -> Command:
    """`forget <id>` erases; `forget <id> undo` lets the customer's later feedback carry PII again."""
    undo = len(words) == 2 and words[1].lower() in UNDO_WORDS
    if len(words) != 1 and not undo:
        raise _fail(
            verb, "`forget` takes one customer id (their external id), and `undo` after it to lift an erasure"
        )
    return Command("forget", args={"customer": words[0], "undo": undo})


VERBS: tuple[Verb, ...] = (
    Verb("help", "help [verb]", "what cxbot can do, or one verb's usage", _p_help, ("?",)),
    Verb(
        "list",
        "list [mine|team <team>|overdue|new|all]",
        "open cases (yours by default)",
        _p_list,
        ("ls",),
    ),
    Verb("show", "show CX-42", "one case with its timeline", _p_case_only),
    Verb("home", "home", "your open cases, your teams' overdue cases and their scores", _p_plain),
    Verb(
        "score",
        "score [team|touchpoint] [1d|7d|28d|90d]",
        "scores with CIs vs the previous window, case KPIs, before/after of annotations",
        _p_score,
        ("scores",),
    ),
    Verb(
        "digest",
        "digest [team] [preview]",
        "your team's digest as it would be posted, only to you",
        _p_digest,
    ),
    Verb(
        "annotate",
        "annotate <touchpoint> <what changed>",
        "mark a change at a touchpoint, to see the scores before and after it",
        _p_annotate,
    ),
    Verb(
        "customer",
        "customer <customer id|CX-42> [before:<position>|after:<position>]",
        "one customer's every score, comment and case, newest first",
        _p_customer,
        ("cust",),
    ),
    Verb(
        "ack",
        "ack CX-42",
        "acknowledge a case (stops the acknowledgement clock)",
        _p_case_only,
        ("acknowledge",),
    ),
    Verb("take", "take CX-42", "acknowledge and assign a case to yourself", _p_case_only),
    Verb(
        "assign",
        "assign CX-42 @person",
        "give a case to a member, manager or escalation contact of its team (or an admin)",
        _p_assign,
    ),
    Verb("route", "route CX-42 <team>", "move a case to another team", _p_route, ("reroute",)),
    Verb("note", "note CX-42 <text>", "add a note to the case's timeline", _p_note, ("comment",)),
    Verb(
        "snooze",
        "snooze CX-42 <duration> <reason>",
        "pause escalation, e.g. `snooze CX-42 2h waiting for courier`",
        _p_snooze,
    ),
    Verb("escalate", "escalate CX-42", "escalate a case to the next level now", _p_case_only),
    Verb(
        "contact",
        "contact CX-42 [email|sms|webhook] [template:<name>] [text]",
        "message the customer (alone: the composer, where there is one)",
        _p_contact,
    ),
    Verb(
        "resolve",
        f"resolve CX-42 <{'|'.join(OUTCOMES)}> [root cause]",
        "resolve a case with its outcome",
        _p_resolve,
        ("close",),
    ),
    Verb("reopen", "reopen CX-42", "reopen a resolved case", _p_case_only),
    Verb(
        "resurvey",
        "resurvey CX-42",
        "send the customer a one-time link to answer the question again",
        _p_case_only,
        ("re-survey",),
    ),
    Verb("reveal", "reveal CX-42", "show the customer's contact details, only to you (logged)", _p_case_only),
    Verb(
        "forget",
        "forget <customer id> [undo]",
        "erase a customer's personal data, for good until undone (admins)",
        _p_forget,
    ),
    Verb(
        "new",
        "new <team> [touchpoint:<key>] (<text> or feedback:<id>)",
        "open a case by hand, from free text or a feedback id (alone: a form, where there is one)",
        _p_new,
        ("create",),
    ),
    Verb(
        "team", "team link <team>", "bind this channel to a team for its cards and digests (admins)", _p_team
    ),
    Verb("teams", "teams", "the teams, their channels and touchpoints", _p_plain),
    Verb("config", "config", "a summary of the loaded configuration", _p_plain),
)

_BY_NAME: dict[str, Verb] = {name: verb for verb in VERBS for name in (verb.name, *verb.aliases)}


def verb_named(name: str) -> Verb | None:
    return _BY_NAME.get(name.lower())


@dataclass(frozen=True, slots=True)
class HelpListing:
    """The verbs a help reply lists, for renderers that lay them out themselves (a narrow terminal)."""

    command: str = "/cx"
    verbs: tuple[Verb, ...] = VERBS


def help_text(*, command: str = "/cx") -> str:
    """One line per verb: its usage and what it does."""
    width = max(len(v.usage) for v in VERBS)
    return "\n".join(f"{command} {v.usage.ljust(width)}  {v.summary}" for v in VERBS)


#: What each argument may hold (cxbot.limits): its column's length, for typed text and forms alike.
ARG_LIMITS: dict[str, tuple[str, int]] = {
    "user": ("the person", limits.MAX_USER_CHARS),
    "team": ("the team key", limits.MAX_KEY_CHARS),
    "touchpoint": ("the touchpoint", limits.MAX_KEY_CHARS),
    "reason": ("the reason", limits.MAX_REASON_CHARS),
    "root_cause": ("the root cause", limits.MAX_ROOT_CAUSE_CHARS),
    "customer": ("the customer id", limits.MAX_CUSTOMER_REF_CHARS),
    "template": ("the template name", limits.MAX_USER_CHARS),
    "topic": ("the verb", limits.MAX_KEY_CHARS),
}
#: `text` is a note, an annotation, a case's text or a message to the customer, by verb.
TEXT_LIMITS: dict[str, int] = {
    "note": limits.MAX_NOTE_CHARS,
    "annotate": limits.MAX_REASON_CHARS,
    "new": limits.MAX_COMMENT_CHARS,
    "contact": limits.MAX_CONTACT_BODY_CHARS,
}
_VERB_OF_COMMAND = {"team_link": "team"}


def check_limits(command: Command) -> None:
    """CommandError (with the verb's usage) when an argument would not fit where it is stored.

    :func:`cxbot.commands.dispatch.run` calls it for every command, typed or from a form, so a
    1 MB reason or a NUL never reaches the database, on SQLite or PostgreSQL alike.
    """
    verb = verb_named(_VERB_OF_COMMAND.get(command.verb, command.verb))
    usage = verb.usage if verb is not None else help_text()
    for name, value in command.args.items():
        if not isinstance(value, str):
            continue
        label, limit = ARG_LIMITS.get(
            name, ("the text", TEXT_LIMITS.get(command.verb, limits.MAX_COMMAND_CHARS))
        )
        problem = limits.text_problem(value, limit=limit)
        if problem is not None:
            message = limits.said(label, problem)
            raise CommandError(message, verb=verb.name if verb else None, usage=usage, field=name)


def parse(text: str) -> Command:
    """Parse the text after the command name; empty text means `help`."""
    problem = limits.text_problem(text, limit=limits.MAX_COMMAND_CHARS)
    if problem is not None:
        raise CommandError(limits.said("the command", problem), verb=None, usage=help_text())
    try:
        words = shlex.split(text.replace("\u201c", '"').replace("\u201d", '"'))
    except ValueError:
        words = text.split()
    if not words:
        return Command("help", args={"topic": None})
    verb = verb_named(words[0])
    if verb is None:
        raise CommandError(f"unknown command {words[0]!r}", verb=None, usage=help_text())
    return verb.parse(words[1:], verb)
