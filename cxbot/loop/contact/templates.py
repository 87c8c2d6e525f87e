"""Contact templates (design.md §7): the team's own over the shared ones, filled with the case's fields.

`string.Template` (`$first_name`, `${case_ref}`) because agents and CX leads write these in YAML, and
`check-config` has already refused any field not in :data:`TEMPLATE_FIELDS`, so rendering never fails
on a typo in front of a customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

from cxbot.config import Config
from cxbot.ingest.routing import METRIC_LABELS
from cxbot.loop.contact.options import TEMPLATE_FIELDS, ContactTemplate

#: Used when the team names no template and has none: still a polite, editable start.
FALLBACK = ContactTemplate(
    label="Plain",
    subject="About your feedback to $company (${case_ref})",
    body="Hi $first_name,\n\nThank you for your feedback. $agent from $team_name here: ",
)
FALLBACK_NAME = "plain"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A template with the case's fields in: what the customer would receive."""

    name: str
    subject: str
    body: str


def templates_for(config: Config, team: str) -> dict[str, ContactTemplate]:
    """The templates a team may use: shared ones, overridden or extended by the team's own."""
    own = config.team(team).contact.templates if team in config.team_keys else {}
    merged = {**config.contact_templates, **own}
    return merged or {FALLBACK_NAME: FALLBACK}


def default_template(config: Config, team: str) -> str:
    """The team's named default, else its first template."""
    available = templates_for(config, team)
    chosen = config.team(team).contact.default_template if team in config.team_keys else None
    return chosen if chosen in available else next(iter(available))


def fields(
    *,
    customer_name: str | None,
    case_ref: str,
    team_name: str,
    company: str | None = None,
    touchpoint: str | None,
    agent: str,
    score: float | None,
    metric: str | None,
) -> dict[str, str]:
    """Every template field with a value (a missing one reads naturally, never as `None`)."""
    name = (customer_name or "").strip()
    values = {
        "first_name": name.split()[0] if name else "there",
        "customer_name": name or "there",
        "case_ref": case_ref,
        "team_name": team_name,
        "company": company or team_name,
        "touchpoint": touchpoint or "your recent experience",
        "agent": agent,
        "score": f"{score:g}" if score is not None else "",
        "metric": METRIC_LABELS.get(metric, metric) if metric else "",
    }
    assert set(values) == set(TEMPLATE_FIELDS)
    return values


#: The name fields as an agent who may not see the customer reads them in the composer.
NAME_PLACEHOLDERS = {"first_name": "$first_name", "customer_name": "$customer_name"}


def fill_names(text: str, values: dict[str, str]) -> str:
    """Fill the name placeholders a composer showed (and only those) in the text the agent sends."""
    for key in NAME_PLACEHOLDERS:
        text = text.replace("${" + key + "}", values[key]).replace("$" + key, values[key])
    return text


def render(name: str, template: ContactTemplate, values: dict[str, str]) -> Rendered:
    """Fill a template; unknown fields were refused by check-config, so `safe_substitute` is a seatbelt."""
    return Rendered(
        name=name,
        subject=Template(template.subject).safe_substitute(values),
        body=Template(template.body).safe_substitute(values),
    )
