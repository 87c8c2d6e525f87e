"""The one `/cx` grammar: what parses, and the usage line every mistake answers with."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cxbot.commands.grammar import (
    OUTCOMES,
    VERBS,
    Command,
    CommandError,
    case_ref,
    help_text,
    parse,
    user_ref,
)

OUTCOME_LIST = "recovered, partially-recovered, not-recovered, could-not-contact, no-action-needed"
assert ", ".join(OUTCOMES) == OUTCOME_LIST


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command("help", args={"topic": None})),
        ("help snooze", Command("help", args={"topic": "snooze"})),
        ("list", Command("list", args={"scope": "mine"})),
        ("ls overdue", Command("list", args={"scope": "overdue"})),
        ("list team Billing", Command("list", args={"scope": "team", "team": "billing"})),
        ("show CX-42", Command("show", 42)),
        ("ack cx42", Command("ack", 42)),
        ("acknowledge #7", Command("ack", 7)),
        ("take 9", Command("take", 9)),
        ("assign CX-1 @U0SUPAGT1", Command("assign", 1, {"user": "U0SUPAGT1"})),
        ("assign CX-1 @sam", Command("assign", 1, {"user": "sam"})),
        ("route CX-3 logistics", Command("route", 3, {"team": "logistics"})),
        (
            "note CX-3 called, no answer — will retry",
            Command("note", 3, {"text": "called, no answer — will retry"}),
        ),
        ("note CX-3 customer's parcel", Command("note", 3, {"text": "customer's parcel"})),
        (
            "snooze CX-3 2h waiting for courier",
            Command("snooze", 3, {"duration": timedelta(hours=2), "reason": "waiting for courier"}),
        ),
        ("escalate CX-3", Command("escalate", 3)),
        ("resolve CX-3 recovered", Command("resolve", 3, {"outcome": "recovered", "root_cause": None})),
        (
            'resolve CX-3 not-recovered "product defect"',
            Command("resolve", 3, {"outcome": "not-recovered", "root_cause": "product defect"}),
        ),
        ("reopen CX-3", Command("reopen", 3)),
        ("team link support", Command("team_link", args={"team": "support"})),
        ("teams", Command("teams")),
        ("config", Command("config")),
    ],
)
def test_parses(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "verb", "message"),
    [
        ("ack", "ack", "`ack` needs a case id such as CX-42"),
        ("ack banana", "ack", "'banana' is not a case id (expected something like CX-42)"),
        ("ack CX-1 CX-2", "ack", "unexpected 'CX-2'"),
        ("list forever", "list", "'forever' is not one of mine, team, overdue, new, all"),
        ("list team", "list", "`list team` needs exactly one team key"),
        ("snooze CX-1 2h", "snooze", "`snooze` needs a duration and a reason"),
        ("snooze CX-1 soon because", "snooze", "'soon' is not a duration (use e.g. 15m, 2h, 1h30m, 3d)"),
        ("snooze CX-1 90d too long", "snooze", "a snooze lasts between 1m and 30d"),
        (
            "resolve CX-1",
            "resolve",
            "`resolve` needs an outcome: " + OUTCOME_LIST,
        ),
        (
            "resolve CX-1 fixed",
            "resolve",
            "'fixed' is not an outcome: " + OUTCOME_LIST,
        ),
        ("note CX-1", "note", "`note` needs some text after the case id"),
        ("team unlink x", "team", "`team` takes `link <team>`"),
        ("teams now", "teams", "unexpected 'now'"),
    ],
)
def test_mistakes_carry_the_verbs_usage(text: str, verb: str, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse(text)
    assert str(caught.value) == message
    assert caught.value.verb == verb
    assert caught.value.usage == next(v.usage for v in VERBS if v.name == verb)


def test_unknown_verb_answers_with_the_help() -> None:
    with pytest.raises(CommandError) as caught:
        parse("frobnicate CX-1")
    assert caught.value.verb is None
    assert caught.value.usage == help_text()
    assert "/cx ack CX-42" in caught.value.usage


def test_refs() -> None:
    assert [case_ref(t) for t in ("CX-42", "cx-42", "#42", "42", "CX42", "CX-", "x42")] == [
        42,
        42,
        42,
        42,
        42,
        None,
        None,
    ]
    assert user_ref("@U123ABC") == user_ref(" U123ABC") == "U123ABC"
    assert user_ref("@maria") == "maria"


def test_help_lists_every_verb_once() -> None:
    lines = help_text().splitlines()
    assert len(lines) == len(VERBS)
    assert all(line.startswith("/cx ") for line in lines)
