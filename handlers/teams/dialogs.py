"""Teams dialogs (task modules) for the forms: resolve, snooze, reassign, the contact composer, a new case.

A case card's form-backed button is an Action.Submit carrying `msteams.type: task/fetch` and the
dialog's name; Teams then sends a `task/fetch` invoke, answered here with a task module whose
Adaptive Card is drawn from the core's form description (:mod:`cxbot.commands.forms`, the contact
composer of :mod:`cxbot.loop.contact.flows`). Its submit comes back as `task/submit` with what was
entered; the core checks it (:meth:`Form.submit`) and a refusal re-renders the dialog with each
field's error beside it and the values as entered. A valid submission runs the same command a typed
one would (:func:`cxbot.commands.dispatch.run`), so authorization and state changes are the core's;
success closes the dialog with the result, and the outbox `PUT`s the refreshed case card. A refusal
that no field can fix (not a member, a closed case) closes the dialog with the message, nothing changed.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from cxbot import limits, markup
from cxbot.authz import Actor, Denied, assignable, require_member, teams_of
from cxbot.cases.customers import case_history_command
from cxbot.cases.flows import CaseNotFound, InvalidTransition, get_case
from cxbot.commands.dispatch import Reply, Where, run
from cxbot.commands.forms import (
    MAX_CHOICES,
    Choice,
    Field,
    Form,
    FormRejected,
    new_case_form,
    resolve_form,
    snooze_form,
)
from cxbot.commands.grammar import Command, CommandError, parse
from cxbot.limits import parse_id
from cxbot.loop.contact.flows import Composer, composer_for
from cxbot.models import Case
from cxbot.runtime import Runtime
from handlers.teams.cards import (
    CASE_KEY,
    DIALOG_KEY,
    MAX_FACT,
    MAX_TEXT,
    adaptive_card,
    attachment,
    card_text,
    clip,
    dialog_button,
    text_block,
)

log = logging.getLogger("handlers.teams")
#: The invokes a dialog sends (handlers.teams.app passes them here).
DIALOG_INVOKES = ("task/fetch", "task/submit")
#: Hidden data of a dialog's own buttons, beside the inputs Teams merges into it.
TOKEN_KEY, PREVIEW_KEY, TEMPLATE_KEY = "cxToken", "cxPreview", "cxTemplate"
TOKEN = re.compile(r"^[0-9a-f]{32}$")
CASE_DIALOGS = ("snooze", "resolve", "assign", "contact")
DIALOGS = (*CASE_DIALOGS, "new")
FAILED = "Something went wrong on cxbot's side; nothing was changed. Try again."
NOT_OURS = "This form is not one of cxbot's."
#: The composer's inputs; the core's FieldRejected fields of a contact map onto them.
CHANNEL, TEMPLATE, BODY = "channel", "template", "body"


def task_message(text: str) -> dict[str, Any]:
    """Close the dialog (or open none) and show `text` to the person who used it."""
    return {"task": {"type": "message", "value": clip(markup.as_plain_text(text), MAX_TEXT)}}


def task_card(title: str, card: dict[str, Any]) -> dict[str, Any]:
    """Open the dialog, or keep it open drawn anew (`continue`)."""
    return {
        "task": {
            "type": "continue",
            "value": {"title": clip(title, 64), "width": "medium", "card": attachment(card)},
        }
    }


@dataclass(frozen=True, slots=True)
class Launch:
    """A typed command that asks for a form (`cx new`, `cx contact CX-42` alone): a typed message
    cannot open a dialog, so the answer is a card whose button opens it, as Slack opens its modal."""

    text: str
    title: str
    dialog: str
    case_id: int | None = None

    def message(self) -> dict[str, Any]:
        button = dialog_button(self.title, self.dialog, self.case_id)
        card = adaptive_card([text_block(card_text(self.text))], fallback=self.text, actions=[button])
        return {"type": "message", "attachments": [attachment(card)]}


def launch_for(text: str) -> Launch | None:
    """The dialog a typed command asks for, if it asks for one (the console needs the text instead)."""
    try:
        command = parse(markup.plain(text))
    except CommandError:
        return None
    if command.verb == "new" and not command.args:
        return Launch("Open a case by hand, from a feedback id or a title.", "New case", "new")
    if command.verb == "contact" and not command.args and command.case_id is not None:
        ref = f"CX-{command.case_id}"
        return Launch(f"Write to the customer of {ref}.", "Contact customer", "contact", command.case_id)
    return None


async def card_command(runtime: Runtime, text: str) -> str:
    """A card's `customer CX-42` names the case's customer by our row ref (`cust:17`), so an external
    id that happens to read `CX-42` can never stand in for the case's own customer."""
    try:
        command = parse(markup.plain(text))
    except CommandError:
        return text
    case_id = command.args.get("case_id") if command.verb == "customer" else None
    if case_id is None or command.args.get("before") or command.args.get("after"):
        return text
    async with runtime.sessions() as session:
        return await case_history_command(session, case_id)


# -- drawing a form ----------------------------------------------------------------------------


def shown_value(value: Any) -> str | None:
    """What Teams sent for one input, as the text the core's form checks (blank is None)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    return value if isinstance(value, str) else None


def entered(form: Form, data: Mapping[str, Any]) -> dict[str, str | None]:
    return {spec.key: shown_value(data.get(spec.key)) for spec in form.fields}


def form_input(spec: Field, value: str | None) -> dict[str, Any]:
    """One core field as an Adaptive Cards input: a ChoiceSet, a Number, or a (multiline) Text."""
    common: dict[str, Any] = {"id": spec.key, "label": clip(spec.label, MAX_FACT)}
    if spec.required:
        common |= {"isRequired": True, "errorMessage": clip(spec.missing, MAX_FACT)}
    if spec.is_choice:
        choices = [
            {"title": clip(markup.plain(c.label), MAX_FACT), "value": c.value}
            for c in spec.choices[:MAX_CHOICES]
        ]
        picked = value if value is not None else spec.initial
        element = {"type": "Input.ChoiceSet", **common, "style": "compact", "choices": choices}
        if picked in {c["value"] for c in choices}:
            element["value"] = picked
        return element
    if spec.number:
        element = {"type": "Input.Number", **common, "min": 1}
        ident = parse_id(value) if value else None
        if ident is not None and ident < 2**53:  # a JSON number a card can hold exactly
            element["value"] = ident
        return element
    element = {"type": "Input.Text", **common, "isMultiline": spec.multiline}
    if spec.max_length:
        element["maxLength"] = spec.max_length
    if spec.placeholder:
        element["placeholder"] = clip(spec.placeholder, MAX_FACT)
    if value:
        element["value"] = clip(markup.plain(value), spec.max_length or limits.MAX_COMMAND_CHARS)
    return element


def error_block(text: str) -> dict[str, Any]:
    return text_block(card_text(text), color="attention", size="Small", spacing="None")


def form_card(
    form: Form,
    *,
    data: dict[str, Any],
    values: Mapping[str, str | None] | None = None,
    errors: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The form as a dialog's card; with `errors`, each under its field and the values kept."""
    values, errors = values or {}, errors or {}
    body: list[dict[str, Any]] = []
    if form.note:
        body.append(text_block(card_text(form.note), isSubtle=True))
    keys = {spec.key for spec in form.fields}
    if errors:
        body.append(error_block("Nothing was changed; check what is marked below."))
    body += [error_block(why) for key, why in errors.items() if key not in keys]
    for spec in form.fields:
        body.append(form_input(spec, values.get(spec.key)))
        if spec.hint:
            body.append(text_block(card_text(spec.hint), isSubtle=True, size="Small", spacing="None"))
        if spec.key in errors:
            body.append(error_block(errors[spec.key]))
    submit = {"type": "Action.Submit", "title": form.submit_label, "data": data, "style": "positive"}
    return adaptive_card(body, fallback=form.title, actions=[submit])


def composer_card(
    form: Composer,
    *,
    data: dict[str, Any],
    channel: str | None = None,
    text: str | None = None,
    errors: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The contact composer (design.md §5): how to send, the template, the editable text and its
    preview; Preview redraws it (a new template brings its own text), Send sends."""
    errors = errors or {}
    if form.problem or not form.channels:
        problem = form.problem or "No way to reach this customer."
        return adaptive_card([text_block(card_text(problem))], fallback=problem)
    channels = [Choice(c.channel, c.label) for c in form.channels]
    templates = [Choice(key, label) for key, label in form.templates[:MAX_CHOICES]]
    text = form.rendered.body if text is None else text
    fields = (
        Field(CHANNEL, "Send by", choices=tuple(channels), required=False, initial=channels[0].value),
        Field(TEMPLATE, "Template", choices=tuple(templates), required=False, initial=form.rendered.name),
        Field(BODY, "Message", required=False, multiline=True, max_length=limits.MAX_CONTACT_BODY_CHARS),
    )
    shown = {CHANNEL: channel, TEMPLATE: form.rendered.name, BODY: text}
    body: list[dict[str, Any]] = []
    if errors:
        body.append(error_block("Nothing was sent; check what is marked below."))
    for spec in fields:
        body.append(form_input(spec, shown[spec.key]))
        if spec.key == BODY:
            hint = "Edit freely; this is what the customer receives."
            body.append(text_block(hint, isSubtle=True, size="Small", spacing="None"))
        if spec.key in errors:
            body.append(error_block(errors[spec.key]))
    preview = [
        text_block(f"**Subject:** {card_text(form.rendered.subject, MAX_FACT)}"),
        text_block(f"**Preview of “{card_text(form.rendered.name, MAX_FACT)}”:**"),
        text_block(card_text(text or " ")),
    ]
    body.append({"type": "Container", "id": "preview", "style": "emphasis", "items": preview})
    state = {**data, TEMPLATE_KEY: form.rendered.name}
    actions = [
        {"type": "Action.Submit", "title": "Preview", "data": {**state, PREVIEW_KEY: True}},
        {"type": "Action.Submit", "title": "Send", "data": state, "style": "positive"},
    ]
    return adaptive_card(body, fallback=f"Contact {form.ref}", actions=actions)


# -- the invokes -------------------------------------------------------------------------------


def dialog_data(value: Any) -> dict[str, Any] | None:
    """The data of a dialog invoke (`value.data`), when it names one of our dialogs rightly."""
    data = value.get("data") if isinstance(value, dict) else None
    if not isinstance(data, dict) or data.get(DIALOG_KEY) not in DIALOGS:
        return None
    if data[DIALOG_KEY] in CASE_DIALOGS:
        case_id = data.get(CASE_KEY)
        if type(case_id) is not int or parse_id(str(case_id)) is None:
            return None
    return data


async def answer_invoke(
    runtime: Runtime, activity: dict[str, Any], *, actor: Actor | None, where: Where, first: bool
) -> dict[str, Any]:
    """A `task/fetch` (open a dialog) or `task/submit` (its form sent) from Teams, answered."""
    data = dialog_data(activity.get("value"))
    if data is None or actor is None:
        return task_message(NOT_OURS)
    if activity.get("name") == "task/fetch":
        data = {key: data[key] for key in (DIALOG_KEY, CASE_KEY) if key in data}
        data[TOKEN_KEY] = secrets.token_hex(16)
        return await answered(open_dialog(runtime, data, actor), f"({data.get(DIALOG_KEY)}) opening")
    if not first:  # a redelivered submit: the first one acted and answered
        return task_message("Already done.")
    return await answered(submitted(runtime, data, actor, where), f"({data.get(DIALOG_KEY)}) submit")


async def answered(work: Awaitable[dict[str, Any]], what: str) -> dict[str, Any]:
    """The dialog's answer, or the refusal as a message (a failure is logged, never a 500)."""
    try:
        return await work
    except (CaseNotFound, InvalidTransition) as error:
        return task_message(str(error))
    except Denied as error:
        return task_message(f"Not allowed: {error}")
    except Exception:
        log.exception("a Teams dialog %s failed", what)
        return task_message(FAILED)


async def form_of(runtime: Runtime, data: Mapping[str, Any], actor: Actor) -> Form:
    """The core form behind a dialog (the composer is not one: see :func:`composer_of`)."""
    kind, case_id, config = data[DIALOG_KEY], data.get(CASE_KEY), runtime.config
    if kind == "new":
        mine = teams_of(config, actor)
        return new_case_form(config, team=mine[0] if len(mine) == 1 else None)
    assert isinstance(case_id, int)
    async with runtime.sessions() as session:
        case = await get_case(session, case_id)
    if kind == "snooze":
        return snooze_form(case_id)
    if kind == "resolve":
        return resolve_form(case_id, root_causes=config.root_causes)
    return assign_form(runtime, case, actor)


def assign_form(runtime: Runtime, case: Case, actor: Actor) -> Form:
    """Reassign: Slack offers a user picker, then the core refuses anyone but the team's people;
    here the picker offers just those people (members, managers, escalation contacts, admins)."""
    config = runtime.config
    require_member(config, actor, case.team_key, doing="assign its cases")
    people = assignable(config, case.team_key)
    choices = tuple(Choice(ident, person_label(runtime, ident)) for ident in people[:MAX_CHOICES])
    current = case.assignee if case.assignee in people else None
    field = Field("assignee", "Assign to", choices=choices, initial=current, missing="Pick who takes it")
    return Form(
        verb="assign", title=f"Reassign {case.ref}", submit_label="Reassign", case_id=case.id, fields=(field,)
    )


def person_label(runtime: Runtime, ident: str) -> str:
    person = runtime.config.people.get(runtime.config.person_of(ident))
    return f"{person.name} ({ident})" if person is not None and person.name else ident


async def composer_of(
    runtime: Runtime, data: Mapping[str, Any], actor: Actor, template: str | None
) -> Composer:
    case_id = data[CASE_KEY]
    return await composer_for(
        runtime.sessions, config=runtime.config, case_id=case_id, actor=actor, template=template
    )


async def open_dialog(runtime: Runtime, data: dict[str, Any], actor: Actor) -> dict[str, Any]:
    if data[DIALOG_KEY] == "contact":
        composer = await composer_of(runtime, data, actor, None)
        return task_card(f"Contact {composer.ref}", composer_card(composer, data=data))
    form = await form_of(runtime, data, actor)
    return task_card(form.title, form_card(form, data=data))


def hidden(data: Mapping[str, Any]) -> dict[str, Any]:
    """The dialog's own hidden data, without the inputs Teams merged into it."""
    token = data.get(TOKEN_KEY)
    kept = {key: data[key] for key in (DIALOG_KEY, CASE_KEY) if key in data}
    kept[TOKEN_KEY] = token if isinstance(token, str) and TOKEN.match(token) else secrets.token_hex(16)
    return kept


async def submitted(runtime: Runtime, data: dict[str, Any], actor: Actor, where: Where) -> dict[str, Any]:
    if data[DIALOG_KEY] == "contact":
        return await contact_submitted(runtime, data, actor, where)
    form = await form_of(runtime, data, actor)
    values = entered(form, data)
    try:
        command = (
            Command("assign", form.case_id, {"user": form.clean(values)["assignee"]})
            if form.verb == "assign"
            else form.submit(values)
        )
    except FormRejected as rejected:
        return task_card(
            form.title, form_card(form, data=hidden(data), values=values, errors=rejected.errors)
        )
    reply = await run(runtime, command, actor=actor, where=where)
    if reply.ok:
        return task_message(reply.text)
    if reply.fix_field is None:  # not a member, a closed case: nothing in the form can fix it
        return task_message(reply.text)
    errors = {form.field_for(reply.fix_field): refusal(reply)}
    return task_card(form.title, form_card(form, data=hidden(data), values=values, errors=errors))


def refusal(reply: Reply) -> str:
    return markup.as_plain_text(reply.text)


async def contact_submitted(
    runtime: Runtime, data: dict[str, Any], actor: Actor, where: Where
) -> dict[str, Any]:
    """Preview redraws the composer; Send sends once (the dialog's token is the contact's key)."""
    channel, template = shown_value(data.get(CHANNEL)), shown_value(data.get(TEMPLATE))
    text = shown_value(data.get(BODY)) or ""
    state = hidden(data)
    composer = await composer_of(runtime, data, actor, template)
    title = f"Contact {composer.ref}"
    if data.get(PREVIEW_KEY) is True:
        switched = composer.rendered.name != data.get(TEMPLATE_KEY)
        shown = None if switched else text  # a newly picked template brings its own text
        return task_card(title, composer_card(composer, data=state, channel=channel, text=shown))
    errors = {}
    if not channel:
        errors[CHANNEL] = "Pick how to send it"
    if not text.strip():
        errors[BODY] = "Write the message"
    if not errors:
        args = {
            "channel": channel,
            "template": template,
            "text": text,
            "idempotency_key": f"teams-dialog:{actor.user_id}:{state[TOKEN_KEY]}",
        }
        reply = await run(runtime, Command("contact", composer.case_id, args), actor=actor, where=where)
        if reply.ok or reply.fix_field is None:
            return task_message(reply.text)
        field = reply.fix_field if reply.fix_field in (CHANNEL, TEMPLATE) else BODY
        errors[field] = refusal(reply)
    card = composer_card(composer, data=state, channel=channel, text=text, errors=errors)
    return task_card(title, card)
