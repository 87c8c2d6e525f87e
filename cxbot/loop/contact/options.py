"""`cxbot.yaml` for contacting customers (design.md §4, §7): providers, per-team channels, templates.

Providers are named once at the top level (`contact_providers`) and picked per team and channel
(`teams[i].contact.email: <provider name>`), so one SendGrid account serves every team. The yaml names
the environment variable that holds each secret (`api_key_env: SENDGRID_API_KEY`), never the secret.
Templates use `string.Template` fields (`$first_name`, `${case_ref}`); a field that does not exist is a
config error found by `check-config`, not a customer receiving `$frist_name`.
"""

from __future__ import annotations

import re
from string import Template
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

CHANNELS = ("email", "sms", "webhook")
Channel = Literal["email", "sms", "webhook"]
#: Which channel each provider type serves.
PROVIDER_CHANNEL: dict[str, str] = {
    "sendgrid": "email",
    "mailgun": "email",
    "twilio": "sms",
    "webhook": "webhook",
}
#: The fields a template may use, with what they mean (shown by check-config on a typo).
TEMPLATE_FIELDS = {
    "first_name": "the customer's first name ('there' when unknown)",
    "customer_name": "the customer's full name",
    "case_ref": "the case id, e.g. CX-42",
    "team_name": "the owning team's name",
    "company": "who the customer hears from: brand.name (the team's brand first), else the team's name",
    "touchpoint": "where the experience happened",
    "agent": "who sends the message",
    "score": "the score the customer gave",
    "metric": "NPS, CSAT or CES",
}
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _check_env_name(value: str) -> str:
    if not ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name (e.g. SENDGRID_API_KEY)")
    return value


def _check_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


EnvName = Annotated[str, AfterValidator(_check_env_name)]
Url = Annotated[str, AfterValidator(_check_url)]
Seconds = Annotated[float, Field(gt=0, le=60)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SendGridProvider(_Model):
    """SendGrid v3 `POST /v3/mail/send` (or anything speaking it), bearer API key."""

    type: Literal["sendgrid"]
    base_url: Url = "https://api.sendgrid.com"
    api_key_env: EnvName = "SENDGRID_API_KEY"
    from_email: str
    from_name: str | None = None
    timeout: Seconds = 10.0


class MailgunProvider(_Model):
    """Mailgun `POST /v3/<domain>/messages`, form-encoded, basic auth `api:<key>`."""

    type: Literal["mailgun"]
    base_url: Url = "https://api.mailgun.net"
    domain: str
    api_key_env: EnvName = "MAILGUN_API_KEY"
    from_email: str
    from_name: str | None = None
    timeout: Seconds = 10.0


class TwilioProvider(_Model):
    """Twilio Messages `POST /2010-04-01/Accounts/<sid>/Messages.json`, form-encoded, basic auth."""

    type: Literal["twilio"]
    base_url: Url = "https://api.twilio.com"
    account_sid: str
    auth_token_env: EnvName = "TWILIO_AUTH_TOKEN"
    from_number: str
    timeout: Seconds = 10.0


class WebhookProvider(_Model):
    """A helpdesk/CRM endpoint: JSON POST, HMAC-SHA256 of the raw body in `signature_header`."""

    type: Literal["webhook"]
    url: Url
    secret_env: EnvName = "CONTACT_WEBHOOK_SECRET"
    signature_header: str = "X-Cxbot-Signature"
    timeout: Seconds = 10.0


ContactProvider = Annotated[
    SendGridProvider | MailgunProvider | TwilioProvider | WebhookProvider, Field(discriminator="type")
]


class ContactTemplate(_Model):
    """A message to start from; the agent may edit the body before sending."""

    label: str | None = None
    subject: str = "About your feedback (${case_ref})"
    body: str = Field(min_length=1)


class TeamContact(_Model):
    """Which provider a team uses per channel, and its templates (over the top-level ones)."""

    email: str | None = None
    sms: str | None = None
    webhook: str | None = None
    templates: dict[str, ContactTemplate] = Field(default_factory=dict)
    default_template: str | None = None

    def provider_name(self, channel: str) -> str | None:
        return getattr(self, channel, None) if channel in CHANNELS else None


def template_errors(path: str, text: Any) -> list[str]:
    """A template that names an unknown field, or has a stray `$`, is an error at check time."""
    if not isinstance(text, str):
        return []
    template = Template(text)
    if not template.is_valid():
        return [f"{path}: has a '$' that starts no field (write $$ for a dollar sign)"]
    unknown = [name for name in template.get_identifiers() if name not in TEMPLATE_FIELDS]
    if unknown:
        return [
            f"{path}: unknown field(s) {', '.join('$' + n for n in unknown)} "
            f"(fields are: {', '.join('$' + f for f in TEMPLATE_FIELDS)})"
        ]
    return []


def untag(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic puts the provider type into error paths of the tagged union; the yaml has no such level."""
    if len(loc) > 2 and loc[0] == "contact_providers" and loc[2] in PROVIDER_CHANNEL:
        return loc[:2] + loc[3:]
    return loc


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def contact_errors(raw: dict[str, Any]) -> list[str]:
    """Cross-checks on the raw mapping: teams name existing providers of the right channel, templates
    exist and use known fields."""
    errors: list[str] = []
    providers = _dict(raw.get("contact_providers"))
    kinds = {name: _dict(spec).get("type") for name, spec in providers.items()}
    shared = _dict(raw.get("contact_templates"))
    for name, spec in shared.items():
        for part in ("subject", "body"):
            errors += template_errors(f"contact_templates.{name}.{part}", _dict(spec).get(part))
    teams = raw.get("teams") if isinstance(raw.get("teams"), list) else []
    for i, team in enumerate(teams):
        contact = _dict(_dict(team).get("contact"))
        for channel in CHANNELS:
            chosen = contact.get(channel)
            if not isinstance(chosen, str):
                continue
            if chosen not in providers:
                known = ", ".join(providers) or "none"
                errors.append(
                    f"teams[{i}].contact.{channel}: {chosen!r} is not in contact_providers (known: {known})"
                )
            elif kinds.get(chosen) in PROVIDER_CHANNEL and PROVIDER_CHANNEL[kinds[chosen]] != channel:
                errors.append(
                    f"teams[{i}].contact.{channel}: {chosen!r} is a {kinds[chosen]} provider, "
                    f"which sends {PROVIDER_CHANNEL[kinds[chosen]]}, not {channel}"
                )
        own = _dict(contact.get("templates"))
        for name, spec in own.items():
            for part in ("subject", "body"):
                errors += template_errors(
                    f"teams[{i}].contact.templates.{name}.{part}", _dict(spec).get(part)
                )
        default = contact.get("default_template")
        if isinstance(default, str) and default not in own and default not in shared:
            errors.append(f"teams[{i}].contact.default_template: {default!r} is not a template")
    return errors
