"""The forms a platform shows for a command (snooze, resolve, a new case), described as data.

Slack renders them as modals and Teams as Adaptive Cards; both send back what was entered, field by
field, and the core checks it here (:meth:`Form.submit`): choices, lengths, required fields and the
rules between fields, with one error per field the platform can show beside it. A valid submission
becomes the :class:`~cxbot.commands.grammar.Command` a typed command would have made, so a form can
do nothing the grammar cannot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cxbot import limits
from cxbot.cases.flows import COULD_NOT_CONTACT
from cxbot.commands.grammar import OUTCOMES, Command
from cxbot.config import Config, parse_duration
from cxbot.limits import parse_id

SNOOZE_CHOICES = (("1h", "1 hour"), ("4h", "4 hours"), ("1d", "1 day"), ("3d", "3 days"), ("7d", "1 week"))
MAX_CASE_TITLE = 300
MAX_DESCRIPTION = 2_000
FEEDBACK_HINT = "The id POST /feedback answered with; the case takes its score, customer and touchpoint."
#: More choices than a platform's select shows (Slack: 100) become a text field for the key.
MAX_CHOICES = 100


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class Field:
    """One input: a choice among `choices`, or text when there are none (`number` for an id)."""

    key: str
    label: str
    choices: tuple[Choice, ...] = ()
    required: bool = True
    max_length: int | None = None
    multiline: bool = False
    number: bool = False
    placeholder: str | None = None
    hint: str | None = None
    initial: str | None = None
    #: What to say when a required field is left blank.
    missing: str = "Required"

    @property
    def is_choice(self) -> bool:
        return bool(self.choices)


class FormRejected(ValueError):
    """What was entered cannot be submitted; `errors` maps each field's key to why."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {why}" for key, why in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True, slots=True)
class Form:
    """A command's form: its fields in order, and a note shown above them."""

    verb: str
    title: str
    submit_label: str
    fields: tuple[Field, ...]
    case_id: int | None = None
    note: str | None = None
    #: Which field an error about the command's argument belongs to (a flow's FieldRejected names
    #: arguments such as `text`; the form shows it on the field where it was typed).
    field_of: Mapping[str, str] = field(default_factory=dict)

    def field(self, key: str) -> Field:
        return next(f for f in self.fields if f.key == key)

    def clean(self, entered: Mapping[str, str | None]) -> dict[str, str | None]:
        """Each field's value stripped (blank is None), checked alone; FormRejected with every error."""
        values: dict[str, str | None] = {}
        errors: dict[str, str] = {}
        for spec in self.fields:
            raw = entered.get(spec.key)
            value = raw.strip() if isinstance(raw, str) and raw.strip() else None
            values[spec.key] = value
            if value is None:
                if spec.required:
                    errors[spec.key] = spec.missing
                continue
            if spec.is_choice and value not in {c.value for c in spec.choices}:
                errors[spec.key] = f"Pick one of the {spec.label.lower()} offered"
            elif spec.max_length is not None and (
                problem := limits.text_problem(value, limit=spec.max_length)
            ):
                errors[spec.key] = limits.said(spec.label, problem)
            elif spec.number and parse_id(value) is None:
                errors[spec.key] = f"{spec.label} is a whole number"
        if errors:
            raise FormRejected(errors)
        return values

    def submit(self, entered: Mapping[str, str | None]) -> Command:
        """The command this submission makes; FormRejected with per-field errors otherwise."""
        values = self.clean(entered)
        return _COMMANDS[self.verb](self, values)

    def field_for(self, argument: str | None) -> str:
        """The field to show a flow's refusal on (`argument` as in FieldRejected.field)."""
        keys = {f.key for f in self.fields}
        mapped = self.field_of.get(argument or "", argument or "")
        return mapped if mapped in keys else self.fields[0].key


def snooze_form(case_id: int) -> Form:
    """Snooze needs a duration and a reason (design.md §6)."""
    return Form(
        verb="snooze",
        title=f"Snooze CX-{case_id}",
        submit_label="Snooze",
        case_id=case_id,
        fields=(
            Field(
                "duration",
                "Snooze for",
                choices=tuple(Choice(value, label) for value, label in SNOOZE_CHOICES),
                initial=SNOOZE_CHOICES[0][0],
                missing="Pick how long to snooze",
            ),
            Field(
                "reason",
                "Why",
                max_length=limits.MAX_REASON_CHARS,
                placeholder="waiting for courier",
                missing="A snooze needs a reason",
            ),
        ),
    )


def resolve_form(case_id: int, *, root_causes: Sequence[str]) -> Form:
    """The outcome, a root cause from the configured list, and why a customer could not be reached."""
    fields = [
        Field(
            "outcome",
            "Outcome",
            choices=tuple(Choice(o, o.replace("-", " ")) for o in OUTCOMES),
            missing="Pick an outcome",
        )
    ]
    if root_causes:
        causes = tuple(Choice(c, c) for c in root_causes[:MAX_CHOICES])
        fields.append(Field("root_cause", "Root cause", choices=causes, required=False))
    fields.append(
        Field(
            "reason",
            "Why the customer could not be contacted",
            required=False,
            max_length=limits.MAX_REASON_CHARS,
            placeholder="no email or phone on record",
            hint="Needed for the outcome “could not contact”; any other outcome needs a contact attempt.",
        )
    )
    return Form(
        verb="resolve",
        title=f"Resolve CX-{case_id}",
        submit_label="Resolve",
        case_id=case_id,
        fields=tuple(fields),
    )


def new_case_form(config: Config, *, team: str | None = None) -> Form:
    """A case by hand (design.md §5): a team, then a feedback id *or* a title and description."""
    teams = tuple(Choice(t.key, t.name) for t in config.teams[:MAX_CHOICES])
    touchpoints = tuple(Choice(tp.key, tp.name or tp.key) for tp in config.touchpoints)
    return Form(
        verb="new",
        title="New case",
        submit_label="Open case",
        note="Open it from a feedback id, or describe it with a title.",
        field_of={"text": "title", "feedback_id": "feedback"},
        fields=(
            Field("team", "Team", choices=teams, initial=team, missing="Pick the team that owns the case"),
            Field(
                "feedback",
                "Feedback id",
                required=False,
                number=True,
                hint=FEEDBACK_HINT,
            ),
            Field(
                "title",
                "Title",
                required=False,
                max_length=MAX_CASE_TITLE,
                placeholder="Customer called twice about a lost parcel",
            ),
            Field("description", "Description", required=False, multiline=True, max_length=MAX_DESCRIPTION),
            Field(
                "touchpoint",
                "Touchpoint",
                required=False,
                choices=touchpoints if 0 < len(touchpoints) <= MAX_CHOICES else (),
                max_length=limits.MAX_KEY_CHARS,
                placeholder="touchpoint key",
            ),
        ),
    )


def _snooze(form: Form, values: Mapping[str, str | None]) -> Command:
    duration = parse_duration(values["duration"] or "")
    return Command("snooze", form.case_id, {"duration": duration, "reason": values["reason"]})


def _resolve(form: Form, values: Mapping[str, str | None]) -> Command:
    if values["outcome"] == COULD_NOT_CONTACT and values["reason"] is None:
        raise FormRejected({"reason": "Say why the customer could not be contacted"})
    args = {"outcome": values["outcome"], "root_cause": values.get("root_cause"), "reason": values["reason"]}
    return Command("resolve", form.case_id, args)


def _new(form: Form, values: Mapping[str, str | None]) -> Command:
    feedback, title, description = values["feedback"], values["title"], values["description"]
    if feedback and (title or description):
        raise FormRejected({"feedback": "Give a feedback id or a title, not both"})
    if not feedback and not title:
        if description:
            raise FormRejected({"title": "A case from free text needs a title"})
        raise FormRejected({"feedback": "Give a feedback id, or a title below"})
    text = f"{title}\n{description}" if description else title
    return Command(
        "new",
        args={
            "team": values["team"],
            "feedback_id": parse_id(feedback) if feedback else None,
            "text": None if feedback else text,
            "touchpoint": values["touchpoint"],
        },
    )


_COMMANDS = {"snooze": _snooze, "resolve": _resolve, "new": _new}
