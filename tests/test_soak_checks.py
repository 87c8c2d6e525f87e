"""The soak's verdict (bench/soak.py): each check on hand-made records, no servers. A check that
passes what it should fail would make the soak's PASS worthless, so each is shown failing too."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

from bench.soak import (
    CaseCheck,
    Clocked,
    FeedbackCheck,
    PostCheck,
    Record,
    Sent,
    Timeline,
    Window,
    check_cases,
    check_digests,
    check_feedback,
    check_posts,
    classify_failures,
    doubled_firings,
    first_tick_after,
    last_sure_tick,
    missed_steps,
    retry_after_undercuts,
    summary_line,
)

NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def item(key: str, *outcomes: int | str, at: float = 100.0) -> Sent:
    sent = Sent("feedback", key)
    sent.answers = [(at + i, at + i + 0.1, outcome) for i, outcome in enumerate(outcomes)]
    return sent


def call(
    at: float, channel: str = "C1", *, status: int = 200, ref: str | None = None, **extra: object
) -> Record:
    fields = {"wall": at, "method": "chat.postMessage", "channel": channel, "status": status, "kind": "card"}
    fields.update(extra)  # type: ignore[arg-type]
    return Record(at=at, ok=status == 200, ref=ref, **fields)  # type: ignore[arg-type]


def test_feedback_answered_2xx_is_stored_once_and_a_resend_after_a_5xx_counts_once() -> None:
    sent = [item("a", 200), item("b", 500, "ReadError", 200), item("c", 500), item("d", 200)]
    check = check_feedback(sent, Counter({"a": 1, "b": 1, "c": 1, "d": 1}))
    assert (check.accepted, check.lost, check.doubled) == (3, [], [])
    # Never answered 2xx: not stored is fine; stored twice is not, whatever the answers were.
    check = check_feedback(sent, Counter({"a": 1, "b": 2, "c": 2}))
    assert check.lost == ["d"] and check.doubled == ["b", "c"]


def test_each_negative_needs_exactly_one_case() -> None:
    assert check_cases({"n1": 1, "n2": 1}) == CaseCheck(2, 2, [], [])
    check = check_cases({"n1": 1, "n2": 0, "n3": 2})
    assert (check.cases, check.without_case, check.extra_cases) == (2, ["n2"], ["n3"])


def test_posts_are_missing_doubled_or_unasked_for() -> None:
    expected = [("C1", "CX-1"), ("C1", "CX-2"), ("C2", "CX-3")]
    assert check_posts(expected, expected) == PostCheck(3, 3, [], 0, [])
    check = check_posts(expected, [("C1", "CX-1"), ("C1", "CX-1"), ("C2", "CX-3"), ("C9", "CX-9")])
    assert check.posted == 2 and check.missing == [("C1", "CX-2")]
    assert check.duplicates == 1 and check.unexpected == [("C9", "CX-9")]


def test_one_sent_digest_run_per_scope_for_the_day() -> None:
    today, yesterday = date(2026, 12, 3), date(2026, 12, 2)
    runs = [
        ("a", today, "sent"),
        ("a", yesterday, "skipped"),
        ("b", today, "skipped"),
        ("c", yesterday, "sent"),
    ]
    good, problems = check_digests(["a", "b", "c"], runs, today)
    assert good == 1
    assert problems == ["b: ['skipped']", "c: no run"]


def test_a_step_recorded_twice_is_doubled() -> None:
    steps = [(1, "acknowledge", 1), (1, "acknowledge", 2), (2, "acknowledge", 1), (1, "acknowledge", 1)]
    assert doubled_firings(steps) == [(1, "acknowledge", 1)]


def test_steps_due_before_the_last_sure_tick_must_have_fired() -> None:
    tick = last_sure_tick(NOON + timedelta(seconds=15))
    assert tick == NOON
    assert last_sure_tick(NOON + timedelta(seconds=5)) == NOON - timedelta(minutes=1)
    cases = [
        Clocked("CX-1", NOON - timedelta(seconds=30), 0, None, True),  # due before the tick: missed
        Clocked("CX-2", NOON + timedelta(seconds=1), 0, None, True),  # due after it: not yet
        Clocked("CX-3", NOON - timedelta(minutes=2), 1, NOON - timedelta(seconds=20), True),  # step 2 missed
        Clocked("CX-4", NOON - timedelta(minutes=2), 1, NOON + timedelta(seconds=2), True),
        Clocked("CX-5", NOON - timedelta(minutes=2), 2, None, True),  # all steps done
        Clocked("CX-6", NOON - timedelta(minutes=2), 0, None, False),  # acknowledged: clock stopped
    ]
    assert missed_steps(cases, last_tick=tick, steps=2) == ["CX-1 step 1", "CX-3 step 2"]


def test_a_call_inside_a_retry_after_is_an_undercut_unless_it_was_already_in_flight() -> None:
    limited = call(10.0, status=429, ref="CX-1", retry_after=2.0, replica="replica1")
    records = [
        limited,
        call(10.1, ref="CX-2", replica="replica2"),  # another case, within the in-flight grace
        call(10.2, ref="CX-1", replica="replica1"),  # the same case again: a retry, too early
        call(11.0, ref="CX-3", replica="replica2"),  # another case, well inside: too early
        call(11.0, channel="C2", ref="CX-4"),  # another channel is not held
        call(12.0, ref="CX-1", replica="replica1"),  # on time
    ]
    found = retry_after_undercuts(records, grace=0.25)
    assert [(u.same_case, u.same_replica, round(u.after, 2)) for u in found] == [
        (True, True, 0.2),
        (False, False, 1.0),
    ]
    assert round(found[0].early_by, 2) == 1.8
    assert retry_after_undercuts([limited, call(12.0, ref="CX-1")], grace=0.25) == []


def test_a_call_that_says_when_it_was_sent_is_placed_by_that_not_by_when_the_fake_got_to_it() -> None:
    limited = call(10.0, status=429, ref="CX-1", retry_after=3.0, replica="replica1")
    records = [
        limited,
        # Sent before the 429 was answered, recorded 0.4 s after it (the fake paused): in flight.
        call(10.4, ref="CX-2", replica="replica2", sent_at=9.8),
        # Recorded 0.3 s after it but sent only 0.1 s after it: within the grace.
        call(10.3, ref="CX-3", replica="replica2", sent_at=10.1),
        # Sent 0.5 s after the 429 was answered: too early, however it is measured.
        call(10.52, ref="CX-4", replica="replica2", sent_at=10.5),
    ]
    found = retry_after_undercuts(records, grace=0.25)
    assert [u.call.ref for u in found if u.call is not None] == ["CX-4"]
    # Without send times the first two count by arrival: that is what the grace alone can tell.
    untimed = [limited, *(call(r.at, ref=r.ref, replica=r.replica) for r in records[1:])]
    assert len(retry_after_undercuts(untimed, grace=0.25)) == 3


def test_5xx_and_dropped_connections_count_apart_while_postgres_restarts_or_a_replica_is_killed() -> None:
    pg = [Window(200.0, 205.0)]
    kills = [Window(100.0, 104.0)]
    sent = [
        item("a", 500, 200, at=199.95),  # sent just before the restart, answered inside it
        item("b", 502, at=300.0),  # a 5xx outside any fault
        item("c", "ReadError", 200, at=99.9),  # dropped by the replica killed mid-request
        item("d", "ConnectError", at=150.0),  # dropped for no reason
        item("e", 422, at=300.0),  # a 4xx is the client's: not counted
    ]
    assert classify_failures(sent, pg_windows=pg, kill_windows=kills) == {
        "5xx": 1,
        "5xx during PG restart": 1,
        "dropped": 1,
        "dropped at kill or PG": 1,
    }


def test_the_summary_is_one_line_that_says_pass_or_fail() -> None:
    posts = PostCheck(expected=240, posted=240, missing=[], duplicates=1, unexpected=[])
    line = summary_line(
        feedback=FeedbackCheck(1200, [], []),
        sent_items=1200,
        cases=CaseCheck(240, 240, [], []),
        cards=posts,
        kills=1,
        digests=(41, 41),
        escalations=PostCheck(80, 80, [], 0, []),
        escalation_doubled=0,
        failures={"5xx": 0, "5xx during PG restart": 12, "dropped": 0, "dropped at kill or PG": 3},
        undercuts=0,
        passed=True,
    )
    assert "\n" not in line
    assert line.startswith("soak: 1200 feedback 0 lost 0 doubled | 240 cases/240 negatives | ")
    assert "cards 240/240 posted, 1 duplicate (1 kill)" in line
    assert "5xx 0 (12 during PG restart)" in line and line.endswith("retry-after undercut 0 | PASS")


def test_the_checks_wait_for_a_tick_after_postgres_is_back_and_after_the_digests() -> None:
    timeline = Timeline(pg_restarts=[Window(NOON.timestamp() + 59.5, NOON.timestamp() + 65.0)])
    digest_at = NOON + timedelta(minutes=1)
    # The restart ended after the 12:01 tick had failed: the 12:02 tick is the one that makes up for it.
    assert first_tick_after(timeline, digest_at, after_load=False) == NOON + timedelta(minutes=2)
    assert first_tick_after(Timeline(), digest_at, after_load=False) == digest_at
