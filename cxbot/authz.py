"""Who may do what to a case (design.md §6), decided server side on every action.

Roles come from `cxbot.yaml`: a team's `members` and `managers`, its escalation `contacts`, and the
global `admins`. Every denial says why, so the platform can show it to the user as it is.

Roles are held by people (design.md §1): a role list names people keys (or bare platform ids), and an
actor is the person whose id on their platform is theirs, so the same manager is the same manager on
Slack, Teams and the console. Someone not in `people:` stays their platform id, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cxbot.config import Config


@dataclass(frozen=True, slots=True)
class Actor:
    """Someone acting through a platform: `user_id` is the platform's id (Slack `U…`, a Teams GUID);
    `person` their people key when :func:`actor_for` found them in the config."""

    user_id: str
    platform: str
    display: str | None = None
    person: str | None = None

    @property
    def label(self) -> str:
        return self.display or self.user_id

    @property
    def ident(self) -> str:
        """Who to record in a case (assignee, acknowledged by, event actor): the person, else the id."""
        return self.person or self.user_id


def actor_for(config: Config, platform: str, user_id: str, *, display: str | None = None) -> Actor:
    """The actor for a platform's user, resolved to their person when `people:` knows the id."""
    key = config.person_for(platform, user_id)
    return Actor(user_id, platform, display, person=key if key in config.people else None)


def identity(config: Config, actor: Actor) -> str:
    """The actor's person key (or their id when they are nobody in `people:`)."""
    return actor.person or config.person_for(actor.platform, actor.user_id)


def mine(config: Config, actor: Actor) -> tuple[str, ...]:
    """Every stored value that names this actor: their key and platform ids (older rows hold ids)."""
    return tuple(dict.fromkeys((*config.aliases(identity(config, actor)), actor.user_id)))


def _people(config: Config, names: Iterable[str]) -> list[str]:
    """A role list as people (keys, or ids of people not in `people:`), each once, in order."""
    return list(dict.fromkeys(config.person_of(name) for name in names))


class Denied(PermissionError):
    """The actor may not do this; the message says why."""


def is_admin(config: Config, actor: Actor) -> bool:
    return identity(config, actor) in config.role_people["admins"]


def is_member(config: Config, actor: Actor, team: str) -> bool:
    """Members, managers and escalation contacts all act on the team's cases."""
    if team not in config.team_keys:
        return False
    return identity(config, actor) in config.role_people[f"{team}.members"]


def is_manager(config: Config, actor: Actor, team: str) -> bool:
    if team not in config.team_keys:
        return False
    return identity(config, actor) in config.role_people[f"{team}.managers"]


def require_member(config: Config, actor: Actor, team: str, *, doing: str) -> None:
    if is_admin(config, actor) or is_member(config, actor, team):
        return
    raise Denied(f"only members of {team} can {doing}; you are not listed in teams.{team} of the config")


def require_manager(config: Config, actor: Actor, team: str, *, doing: str) -> None:
    if is_admin(config, actor) or is_manager(config, actor, team):
        return
    raise Denied(f"only managers of {team} can {doing}")


def require_admin(config: Config, actor: Actor, *, doing: str) -> None:
    if not is_admin(config, actor):
        raise Denied(f"only admins can {doing}")


def assignable(config: Config, team: str) -> list[str]:
    """Who a case of `team` may be given to: its members, managers and escalation contacts, and admins
    (as people keys, or the ids of people not in `people:`)."""
    if team not in config.team_keys:
        return _people(config, config.admins)
    spec = config.team(team)
    return _people(config, (*spec.members, *spec.managers, *spec.escalation.contacts, *config.admins))


def may_see_customer(config: Config, actor: Actor, *, owner_teams: Iterable[str]) -> bool:
    """The one rule for unmasking a customer (design.md §7): admins, and members of a team that owns
    the feedback their cases were opened from. A case's own team does not count: a case made by hand
    or re-routed elsewhere is no way into another team's customers (`owner_teams` comes from
    :func:`cxbot.cases.customers.customer_owner_teams`)."""
    return is_admin(config, actor) or any(is_member(config, actor, team) for team in owner_teams)


def require_feedback_owner(config: Config, actor: Actor, *, feedback_team: str, feedback_id: int) -> None:
    """A case opened by hand from feedback: only the team owning that feedback (or an admin) may."""
    if is_admin(config, actor) or is_member(config, actor, feedback_team):
        return
    raise Denied(
        f"feedback {feedback_id} belongs to {feedback_team}; only its members (or an admin) "
        "can open a case from it"
    )


def teams_of(config: Config, actor: Actor) -> list[str]:
    """The teams whose cases this person works on."""
    return [t.key for t in config.teams if is_member(config, actor, t.key)]
