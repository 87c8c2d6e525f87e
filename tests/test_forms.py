"""Forms as data (cxbot.commands.forms): checked in the core, one error per field, and a valid
submission is exactly the command the grammar makes of the same typed words."""

from __future__ import annotations

import pytest

from cxbot.commands.forms import FormRejected, new_case_form, resolve_form, snooze_form
from cxbot.commands.grammar import parse
from cxbot.config import Config


def rejected(form_submit: object, values: dict[str, str | None]) -> dict[str, str]:
    with pytest.raises(FormRejected) as caught:
        form_submit(values)  # type: ignore[operator]
    return caught.value.errors


def test_a_valid_form_makes_the_command_the_grammar_makes() -> None:
    assert snooze_form(4).submit({"duration": "4h", "reason": " waiting for the courier "}) == parse(
        "snooze CX-4 4h waiting for the courier"
    )
    resolved = resolve_form(7, root_causes=["process"]).submit(
        {"outcome": "could-not-contact", "root_cause": "process", "reason": "no phone on file"}
    )
    assert (resolved.verb, resolved.case_id, resolved.args) == (
        "resolve",
        7,
        {"outcome": "could-not-contact", "root_cause": "process", "reason": "no phone on file"},
    )


def test_every_field_gets_its_own_error_at_once() -> None:
    form = snooze_form(4)
    assert rejected(form.submit, {"duration": None, "reason": "  "}) == {
        "duration": "Pick how long to snooze",
        "reason": "A snooze needs a reason",
    }
    # A choice the form never offered (a hand-made submission) and text past its column.
    errors = rejected(form.submit, {"duration": "99y", "reason": "x" * 501})
    assert errors["duration"] == "Pick one of the snooze for offered"
    assert errors["reason"].startswith("Why") and "500" in errors["reason"]
    assert "NUL" in rejected(form.submit, {"duration": "1h", "reason": "a\x00b"})["reason"]


def test_resolve_rules_between_fields() -> None:
    form = resolve_form(7, root_causes=[])
    assert [f.key for f in form.fields] == ["outcome", "reason"]  # no root causes configured
    assert rejected(form.submit, {"outcome": "could-not-contact", "reason": None}) == {
        "reason": "Say why the customer could not be contacted"
    }
    assert rejected(form.submit, {"outcome": "fixed-it-myself"}) == {
        "outcome": "Pick one of the outcome offered"
    }
    assert form.field_for("root_cause") == "outcome" and form.field_for("reason") == "reason"


def test_a_new_case_needs_a_feedback_id_or_a_title(example_config: Config) -> None:
    form = new_case_form(example_config, team="support")
    assert form.field("team").initial == "support"
    base = {"team": "support", "feedback": None, "title": None, "description": None, "touchpoint": None}
    assert rejected(form.submit, base) == {"feedback": "Give a feedback id, or a title below"}
    assert rejected(form.submit, {**base, "description": "lost parcel"}) == {
        "title": "A case from free text needs a title"
    }
    assert rejected(form.submit, {**base, "feedback": "12", "title": "t"}) == {
        "feedback": "Give a feedback id or a title, not both"
    }
    assert rejected(form.submit, {**base, "feedback": "²"}) == {"feedback": "Feedback id is a whole number"}
    assert rejected(form.submit, {**base, "team": None, "title": "t"}) == {
        "team": "Pick the team that owns the case"
    }
    opened = form.submit(
        {**base, "title": "Lost parcel", "description": "Rang twice", "touchpoint": "delivery"}
    )
    assert opened.args == {
        "team": "support",
        "feedback_id": None,
        "text": "Lost parcel\nRang twice",
        "touchpoint": "delivery",
    }
    assert form.submit({**base, "feedback": "12"}).args["feedback_id"] == 12
    assert form.field_for("text") == "title" and form.field_for("feedback_id") == "feedback"
