"""`cxbot.yaml`: teams, touchpoints, routing, thresholds, SLA policies and digests (design.md §4).

The file is validated once at start. Every problem is reported at once, each with its path
(`teams[2].timezone: 'Europe/Lodnon' is not a time zone`), so an operator fixes the file in one pass.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from cxbot.ingest.providers import PROVIDERS
from cxbot.loop.contact.options import ContactProvider, ContactTemplate, TeamContact, contact_errors, untag

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: What a person's id looks like on each chat platform: a Slack user id (`U…`, `W…` for Enterprise
#: Grid) and a Teams user's Microsoft Entra object id (a GUID). A bare id in a role list is told apart
#: from a people key by this shape.
PERSON_ID_PATTERNS = {
    "slack": re.compile(r"^[UW][A-Z0-9]{2,}$"),
    "msteams": re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
}
_DURATION_PART = re.compile(r"(\d+)\s*([wdhms])")
_DURATION_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(Exception):
    """The configuration is invalid; `errors` lists every problem as `path: reason`."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} error(s)\n" + "\n".join(f"  {e}" for e in errors))


def parse_duration(value: str | int | float) -> timedelta:
    """Parse `90m`, `2h`, `1h30m`, `3d` (or a number of seconds) into a timedelta."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return timedelta(seconds=value)
    text = str(value).strip().lower().replace(" ", "")
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"{value!r} is not a duration (use e.g. 15m, 2h, 1h30m, 3d)")
    seconds = sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def slugify(text: str) -> str:
    """Turn a free-form touchpoint name (`Refund Related`) into a key (`refund-related`)."""
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_key(value: str) -> str:
    if not KEY_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a key (lower-case letters, digits, '-' or '_')")
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone") from None
    return value


def _check_clock(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 09:00 as the sexagesimal number 540.
        value = f"{value // 60:02d}:{value % 60:02d}"
    try:
        time.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day (HH:MM)") from None
    return str(value)


def _check_duration(value: str | int) -> str | int:
    parse_duration(value)
    return value


HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
DATA_IMAGE = re.compile(r"^data:image/(?:png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]+$")
WEB_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")
#: A logo as a data URI stays small: it travels inside every page.
MAX_DATA_LOGO = 64 * 1024


def _check_colour(value: str) -> str:
    if not HEX_COLOUR.match(value):
        raise ValueError(f"{value!r} is not a colour (#rrggbb or #rgb, e.g. '#0b57d0')")
    return value.lower()


def _check_web_url(value: str) -> str:
    if not WEB_URL.match(value):
        raise ValueError(f"{value!r} is not a web address (https://...)")
    return value


def _check_logo(value: str) -> str:
    if value.startswith("data:"):
        if not DATA_IMAGE.match(value):
            raise ValueError("a data URI logo must be data:image/<png|jpeg|gif|webp|svg+xml>;base64,...")
        if len(value) > MAX_DATA_LOGO:
            raise ValueError(f"the data URI logo is {len(value)} characters; at most {MAX_DATA_LOGO}")
        return value
    if not WEB_URL.match(value):
        raise ValueError(f"{value!r} is neither a web address (https://...) nor a data:image URI")
    return value


# Reusable field types: each carries its check, so a model only names the type.
Key = Annotated[str, AfterValidator(_check_key)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
# `mode="before"` because YAML may hand over an unquoted 09:30 as the number 570.
ClockTime = Annotated[str, BeforeValidator(_check_clock)]
Duration = Annotated[str | int, AfterValidator(_check_duration)]
Colour = Annotated[str, AfterValidator(_check_colour)]
WebUrl = Annotated[str, AfterValidator(_check_web_url)]
Logo = Annotated[str, AfterValidator(_check_logo)]


class Thresholds(_Model):
    """Scores at or below these are negative (design.md §3)."""

    nps: int | None = Field(default=None, ge=0, le=10)
    csat: int | None = Field(default=None, ge=1, le=5)
    ces: int | None = Field(default=None, ge=1, le=7)


class BusinessHours(_Model):
    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    start: ClockTime = "09:00"
    end: ClockTime = "17:00"

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d not in WEEKDAYS]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: days are {', '.join(WEEKDAYS)}")
        return value


class SlaPolicy(_Model):
    """The two SLA clocks of a case and how escalation repeats (design.md §6)."""

    acknowledge: Duration = "2h"
    resolve: Duration = "3d"
    warn_before: Duration = "15m"
    repeat: int = Field(default=3, ge=0, le=20)
    repeat_every: Duration = "1h"
    business_hours: BusinessHours | None = None

    def clock(self, name: str) -> timedelta:
        return parse_duration(getattr(self, name))


class Digest(_Model):
    time: ClockTime = "09:00"
    quiet_days: Literal["post", "skip"] = "post"
    cutoff: Duration = "3h"
    enabled: bool = True
    #: A 28-day trend chart image with the CI band beside the digest (needs the `charts` extra).
    charts: bool = False


class ChannelDestination(_Model):
    """Where a team's (or the leadership's) posts go on one platform."""

    channel: str | None = None


#: The chat platforms a destination can name, as their keys in `cxbot.yaml` and in the database.
CHAT_PLATFORMS = ("slack", "msteams")


def channels_by_platform(section: BaseModel, *, bare: str | None = None) -> dict[str, str]:
    """platform → channel of a section with a `ChannelDestination` per platform; `bare` is the
    older top-level `channel:` key, which names the Slack one (design.md §11 keeps it working)."""
    found: dict[str, str | None] = {name: getattr(section, name).channel for name in CHAT_PLATFORMS}
    if bare and not found[CHAT_PLATFORMS[0]]:
        found[CHAT_PLATFORMS[0]] = bare
    return {platform: channel for platform, channel in found.items() if channel}


class LeadershipDigest(_Model):
    """All teams side by side, once a day at `time` in `timezone` (design.md §8), on each platform
    with a channel: `slack.channel`, `msteams.channel`; a bare `channel` is the Slack one."""

    channel: str | None = None
    slack: ChannelDestination = Field(default_factory=ChannelDestination)
    msteams: ChannelDestination = Field(default_factory=ChannelDestination)
    time: ClockTime = "09:00"
    timezone: TimeZoneName = "UTC"
    cutoff: Duration = "3h"
    enabled: bool = True

    def destinations(self) -> dict[str, str]:
        """platform → channel of every platform the leadership digest goes to."""
        return channels_by_platform(self, bare=self.channel)


class ResurveySettings(_Model):
    """Re-survey links (design.md §7): sent by `/cx resurvey` or, when enabled, on resolve."""

    enabled_on_resolve: bool = False
    link_ttl: Duration = "7d"
    suppression_window: Duration = "30d"
    #: Where customers reach the bot; unset means the CXBOT_PUBLIC_URL setting.
    base_url: str | None = None
    #: How to send the link; unset means email when the customer has one, else SMS.
    channel: Literal["email", "sms", "webhook"] | None = None


class Brand(_Model):
    """Who the customer hears from: on the re-survey page, in messages (`$company`), the app's name.

    Every field is optional; a team's `brand:` overrides the top-level one field by field, and without
    a name the team's own name is used, so a customer never gets an anonymous page.
    """

    name: str | None = Field(default=None, min_length=1, max_length=80)
    #: An https:// address or a data:image/...;base64 URI (at most 64 KiB).
    logo: Logo | None = None
    #: The logo's text alternative; unset means "<name> logo".
    logo_alt: str | None = Field(default=None, max_length=120)
    #: Buttons and links; darkened on the page where needed to keep WCAG AA contrast.
    accent_colour: Colour | None = None
    #: One line in the page's footer, e.g. "Questions? Call 0800 123 4567 or write to help@example.com".
    support: str | None = Field(default=None, min_length=1, max_length=200)
    privacy_url: WebUrl | None = None

    def over(self, base: Brand) -> Brand:
        """This brand's fields where set, `base`'s elsewhere."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


def _id_check(platform: str, what: str) -> AfterValidator:
    """A field check that the value has the shape of a user id on `platform`."""

    def check(value: str | None) -> str | None:
        if value is not None and not PERSON_ID_PATTERNS[platform].match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


class Person(_Model):
    """Someone who acts on cases (design.md §1): one key in `people:`, an id per platform."""

    name: str = Field(min_length=1)
    email: str | None = None
    slack: Annotated[str | None, _id_check("slack", "a Slack user id (U… or W…)")] = None
    msteams: Annotated[str | None, _id_check("msteams", "a Microsoft Entra object id (a GUID)")] = None

    def platform_id(self, platform: str) -> str | None:
        """This person's user id on `platform` (None when they have none there)."""
        value = getattr(self, platform, None) if platform in CHAT_PLATFORMS else None
        return value if isinstance(value, str) else None


class Escalation(_Model):
    """Who hears when a case is late beyond the managers: `contacts` (people) and a channel on each
    platform (`slack.channel`, `msteams.channel`; a bare `channel` is the Slack one)."""

    channel: str | None = None
    slack: ChannelDestination = Field(default_factory=ChannelDestination)
    msteams: ChannelDestination = Field(default_factory=ChannelDestination)
    contacts: list[str] = Field(default_factory=list)

    def channels(self) -> dict[str, str]:
        """platform → the escalation channel there."""
        return channels_by_platform(self, bare=self.channel)


class Team(_Model):
    key: Key
    name: str
    timezone: TimeZoneName = "UTC"
    digest: Digest = Field(default_factory=Digest)
    min_n: int = Field(default=30, ge=1)
    sla_policy: str = "standard"
    thresholds: Thresholds = Field(default_factory=Thresholds)
    slack: ChannelDestination = Field(default_factory=ChannelDestination)
    msteams: ChannelDestination = Field(default_factory=ChannelDestination)
    managers: list[str] = Field(default_factory=list)
    members: list[str] = Field(default_factory=list)
    escalation: Escalation = Field(default_factory=Escalation)
    contact: TeamContact = Field(default_factory=TeamContact)
    #: Overrides the global `resurvey` section for this team's cases.
    resurvey: ResurveySettings | None = None
    #: Overrides the top-level `brand` field by field (a team that trades under its own name).
    brand: Brand | None = None

    def destinations(self) -> dict[str, str]:
        """platform → channel the config names for the team (`team link` can bind others)."""
        return channels_by_platform(self)


class Touchpoint(_Model):
    key: Key
    name: str | None = None
    team: str
    aliases: list[str] = Field(default_factory=list)
    thresholds: Thresholds = Field(default_factory=Thresholds)


class RoutingRule(_Model):
    """A named keyword rule: the first rule whose keyword appears in the comment wins."""

    name: str
    keywords: list[str] = Field(min_length=1)
    team: str


class RepeatDetractor(_Model):
    """A customer with `negatives` negative responses within `window` is a repeat detractor: flagged
    on the card and in `/cx customer`; with `priority` set, the cases they open get that priority."""

    negatives: int = Field(default=3, ge=2)
    window: Duration = "90d"
    priority: Literal["low", "normal", "high", "urgent"] | None = None


class Routing(_Model):
    rules: list[RoutingRule] = Field(default_factory=list)
    fallback_team: str
    repeat_detractor: RepeatDetractor = Field(default_factory=RepeatDetractor)


class Sentiment(_Model):
    """Text sentiment only *adds* cases: a passive score or comment-only item with negative text."""

    enabled: bool = True
    negative_below: float = Field(default=-0.5, ge=-1, le=1)


class Config(_Model):
    """The whole of `cxbot.yaml`."""

    teams: list[Team] = Field(min_length=1)
    touchpoints: list[Touchpoint] = Field(default_factory=list)
    routing: Routing
    thresholds: Thresholds = Field(default_factory=lambda: Thresholds(nps=6, csat=2, ces=3))
    sentiment: Sentiment = Field(default_factory=Sentiment)
    sla_policies: dict[str, SlaPolicy] = Field(default_factory=lambda: {"standard": SlaPolicy()})
    people: dict[Key, Person] = Field(default_factory=dict)
    admins: list[str] = Field(default_factory=list)
    root_causes: list[str] = Field(default_factory=lambda: ["product", "process", "people", "other"])
    slash_command: str = "/cx"
    webhooks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    leadership: LeadershipDigest | None = None
    contact_providers: dict[str, ContactProvider] = Field(default_factory=dict)
    contact_templates: dict[str, ContactTemplate] = Field(default_factory=dict)
    resurvey: ResurveySettings = Field(default_factory=ResurveySettings)
    brand: Brand = Field(default_factory=Brand)

    def brand_for(self, team: str | None) -> Brand:
        """The brand a team's customers see: the team's fields over the top-level ones, and a name
        always (the team's name when no brand names the company)."""
        spec = next((t for t in self.teams if t.key == team), None)
        if spec is None:
            return self.brand  # no team known (a link that cannot be read): the top-level brand, if any
        brand = spec.brand.over(self.brand) if spec.brand is not None else self.brand
        return brand if brand.name is not None else brand.model_copy(update={"name": spec.name})

    def resurvey_for(self, team: str) -> ResurveySettings:
        """The team's re-survey settings, or the global ones."""
        spec = next((t for t in self.teams if t.key == team), None)
        return spec.resurvey if spec is not None and spec.resurvey is not None else self.resurvey

    def team(self, key: str) -> Team:
        return next(t for t in self.teams if t.key == key)

    @cached_property
    def person_ids(self) -> dict[tuple[str, str], str]:
        """(platform, user id) → people key, built once (role checks run on every action)."""
        return {
            (platform, ident): key
            for key, person in self.people.items()
            for platform in CHAT_PLATFORMS
            if (ident := person.platform_id(platform))
        }

    @cached_property
    def role_people(self) -> dict[str, frozenset[str]]:
        """Who holds each role, as people, resolved once: `admins`, and per team `<key>.members`
        (members, managers and escalation contacts act on its cases) and `<key>.managers` (managers
        and escalation contacts acknowledge)."""
        roles = {"admins": frozenset(map(self.person_of, self.admins))}
        for team in self.teams:
            managers = frozenset(map(self.person_of, (*team.managers, *team.escalation.contacts)))
            roles[f"{team.key}.managers"] = managers
            roles[f"{team.key}.members"] = managers | frozenset(map(self.person_of, team.members))
        return roles

    def person_of(self, ident: str) -> str:
        """The people key for a key or any platform id of a person; anyone else stays their id.

        Platform ids never look like each other or like a people key (a Slack `U…`, a GUID), and
        `check-config` refuses one id on two people, so the lookup needs no platform.
        """
        if ident in self.people:
            return ident
        return next((key for p in CHAT_PLATFORMS if (key := self.person_ids.get((p, ident)))), ident)

    def person_for(self, platform: str, user_id: str) -> str:
        """Who a platform's user is: the people key whose id on `platform` is `user_id`, else the id.

        A chat platform's id only matches that platform's ids; the console (and other local callers)
        may name a person by key or by any of their ids."""
        if platform not in CHAT_PLATFORMS:
            return self.person_of(user_id)
        return self.person_ids.get((platform, user_id), user_id)

    def aliases(self, ident: str) -> tuple[str, ...]:
        """Every value that may name this person in a stored row: the key and each platform id
        (rows written before `people:` hold Slack ids)."""
        person = self.people.get(ident)
        if person is None:
            return (ident,)
        return (ident, *(i for p in CHAT_PLATFORMS if (i := person.platform_id(p))))

    def platform_id(self, ident: str, platform: str) -> str | None:
        """Where to reach a person (key or bare id) on `platform`; None when they have no id there.
        A platform that is not a chat platform (the console) reaches people by key."""
        if platform not in CHAT_PLATFORMS:
            return ident
        person = self.people.get(ident)
        if person is not None:
            return person.platform_id(platform)
        pattern = PERSON_ID_PATTERNS.get(platform)
        return ident if pattern is not None and pattern.match(ident) else None

    @property
    def team_keys(self) -> list[str]:
        return [t.key for t in self.teams]

    def touchpoint_index(self) -> dict[str, Touchpoint]:
        """Map every key, alias and slugified alias to its touchpoint."""
        index: dict[str, Touchpoint] = {}
        for tp in self.touchpoints:
            for name in (tp.key, *tp.aliases):
                index[name.lower()] = tp
                index[slugify(name)] = tp
        return index

    def threshold(self, metric: str, *, team: str | None, touchpoint: str | None) -> float | None:
        """The most specific threshold: touchpoint, then team, then the global default."""
        layers: list[Thresholds] = []
        if touchpoint is not None:
            tp = next((t for t in self.touchpoints if t.key == touchpoint), None)
            if tp is not None:
                layers.append(tp.thresholds)
        if team is not None and team in self.team_keys:
            layers.append(self.team(team).thresholds)
        layers.append(self.thresholds)
        defaults = Thresholds(nps=6, csat=2, ces=3)
        layers.append(defaults)
        for layer in layers:
            value = getattr(layer, metric, None)
            if value is not None:
                return float(value)
        return None


def _format_location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _format_pydantic(error: dict[str, Any]) -> str:
    # `function-…` names a validator and `[key]` a mapping's key (`people.Bad Key.[key]`): not paths.
    loc = untag(
        tuple(
            p
            for p in error["loc"]
            if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]"))
        )
    )
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required"
    return f"{_format_location(loc)}: {message}"


def _cross_references(raw: dict[str, Any]) -> list[str]:
    """Checks that span sections; run on the raw mapping so they report even when a section is broken."""
    errors: list[str] = []
    teams = raw.get("teams") if isinstance(raw.get("teams"), list) else []
    team_keys: list[str] = [
        t.get("key") for t in teams if isinstance(t, dict) and isinstance(t.get("key"), str)
    ]
    policies = raw.get("sla_policies")
    policy_keys = set(policies) if isinstance(policies, dict) else {"standard"}
    seen: set[str] = set()
    for i, key in enumerate(team_keys):
        if key in seen:
            errors.append(f"teams[{i}].key: {key!r} is used by another team")
        seen.add(key)
    for i, team in enumerate(teams):
        if isinstance(team, dict):
            policy = team.get("sla_policy", "standard")
            if isinstance(policy, str) and policy not in policy_keys:
                errors.append(f"teams[{i}].sla_policy: {policy!r} is not defined in sla_policies")

    def team_ref(path: str, value: Any) -> None:
        if isinstance(value, str) and value not in team_keys:
            errors.append(f"{path}: {value!r} is not a team (teams are: {', '.join(team_keys) or 'none'})")

    touchpoints = raw.get("touchpoints") if isinstance(raw.get("touchpoints"), list) else []
    names: dict[str, str] = {}
    for i, tp in enumerate(touchpoints):
        if not isinstance(tp, dict):
            continue
        team_ref(f"touchpoints[{i}].team", tp.get("team"))
        aliases = tp.get("aliases") if isinstance(tp.get("aliases"), list) else []
        for name in [tp.get("key"), *aliases]:
            if not isinstance(name, str):
                continue
            slug = slugify(name)
            if slug in names and names[slug] != tp.get("key"):
                errors.append(f"touchpoints[{i}]: {name!r} is also a name of touchpoint {names[slug]!r}")
            names[slug] = str(tp.get("key"))
    errors.extend(_people_references(raw, teams))
    routing = raw.get("routing")
    if isinstance(routing, dict):
        team_ref("routing.fallback_team", routing.get("fallback_team"))
        rules = routing.get("rules") if isinstance(routing.get("rules"), list) else []
        rule_names: set[str] = set()
        for i, rule in enumerate(rules):
            if isinstance(rule, dict):
                team_ref(f"routing.rules[{i}].team", rule.get("team"))
                if rule.get("name") in rule_names:
                    errors.append(f"routing.rules[{i}].name: {rule.get('name')!r} is used by another rule")
                rule_names.add(rule.get("name"))
    return errors


def _people_references(raw: dict[str, Any], teams: list[Any]) -> list[str]:
    """Role lists name people keys (or bare platform ids), and no id belongs to two people."""
    errors: list[str] = []
    people = raw.get("people") if isinstance(raw.get("people"), dict) else {}
    owners: dict[tuple[str, str], str] = {}
    for key, person in people.items():
        if not isinstance(person, dict):
            continue
        for platform in CHAT_PLATFORMS:
            ident = person.get(platform)
            if not isinstance(ident, str):
                continue
            if (platform, ident) in owners:
                errors.append(
                    f"people.{key}.{platform}: {ident!r} is also the id of people.{owners[platform, ident]}"
                )
            else:
                owners[platform, ident] = str(key)

    def names(path: str, value: Any) -> None:
        if not isinstance(value, list):
            return
        for i, name in enumerate(value):
            if not isinstance(name, str) or name in people:
                continue
            if any(pattern.match(name) for pattern in PERSON_ID_PATTERNS.values()):
                continue
            known = sorted(map(str, people))
            listing = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
            errors.append(f"{path}[{i}]: {name!r} is not in people (people are: {listing or 'none'})")

    names("admins", raw.get("admins"))
    for i, team in enumerate(teams):
        if not isinstance(team, dict):
            continue
        names(f"teams[{i}].managers", team.get("managers"))
        names(f"teams[{i}].members", team.get("members"))
        escalation = team.get("escalation")
        if isinstance(escalation, dict):
            names(f"teams[{i}].escalation.contacts", escalation.get("contacts"))
    return errors


def _webhook_options(raw: dict[str, Any]) -> list[str]:
    """Validate `webhooks.<provider>` against each provider's own options model."""
    errors: list[str] = []
    hooks = raw.get("webhooks")
    if not isinstance(hooks, dict):
        return errors
    for name, options in hooks.items():
        provider = PROVIDERS.get(name)
        if provider is None:
            errors.append(f"webhooks.{name}: unknown provider (known: {', '.join(sorted(PROVIDERS))})")
            continue
        try:
            provider.options_model.model_validate(options or {})
        except ValidationError as exc:
            errors.extend(_format_pydantic({**e, "loc": ("webhooks", name, *e["loc"])}) for e in exc.errors())
    return errors


def parse_config(raw: Any, *, source: str = "cxbot.yaml") -> Config:
    """Validate a mapping as a Config, raising ConfigError with every problem found."""
    if not isinstance(raw, dict):
        raise ConfigError(source, ["(top level): expected a mapping of sections (teams, touchpoints, ...)"])
    errors: list[str] = []
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        errors.extend(_format_pydantic(e) for e in exc.errors())
    errors.extend(_cross_references(raw))
    errors.extend(_webhook_options(raw))
    errors.extend(contact_errors(raw))
    if errors or config is None:
        raise ConfigError(source, errors)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raises ConfigError (with the file as its source)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found (copy cxbot.example.yaml to start)"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(str(path), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return parse_config(raw, source=str(path))
