"""Re-surveys (design.md §7): a signed, expiring, one-time link that asks the case's question again.

`/cx resurvey CX-42` (or resolving, when the team enables it) creates a `resurveys` row and sends
the customer a link to `GET /r/<token>` through the customer-contact outbox. The token is
`<id>.<expiry>.<nonce>.<signature>`, the signature an HMAC-SHA256 over the first three parts with
`CXBOT_SECRET_KEY`; the row must also still hold the nonce and be unanswered and unexpired, so a
tampered, expired or reused link changes nothing. The answer is stored as new feedback (source
`resurvey`) through the normal ingest, never opening a case of its own, and closes the case with its
recovery outcome (:mod:`cxbot.loop.recovery`). At most one re-survey per customer per suppression window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot.authz import Actor, require_member
from cxbot.cases.flows import ActionResult, InvalidTransition, get_case, record_event, transition
from cxbot.config import Config, parse_duration
from cxbot.ingest.routing import METRIC_LABELS
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.limits import MAX_RESURVEY_COMMENT_CHARS, parse_id, parse_unix_seconds, text_problem
from cxbot.loop.contact.flows import channels_for, queue_contact
from cxbot.loop.recovery import recovery_outcome
from cxbot.models import Case, Customer, Feedback, Resurvey, Touchpoint
from cxbot.runtime import Runtime
from cxbot.settings import MissingSetting, Settings

SOURCE = "resurvey"
SECRET_VARIABLE = "CXBOT_SECRET_KEY"
CUSTOMER = Actor(user_id="customer", platform="web", display="the customer")
SYSTEM = Actor(user_id="cxbot", platform="system")
SCALES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
MAX_COMMENT_CHARS = MAX_RESURVEY_COMMENT_CHARS


@dataclass(frozen=True, slots=True)
class Question:
    """What the page asks: the wording, the scale and the words at its ends."""

    metric: str
    text: str
    low: int
    high: int
    labels: dict[int, str]
    #: The team whose customer is asked: its brand is the page's.
    team: str | None = None


def question(metric: str, *, about: str | None) -> Question:
    """The standard wording of each metric's question, so the answer is comparable with the first."""
    where = f" with {about}" if about else ""
    if metric == "nps":
        return Question(
            "nps",
            "How likely are you to recommend us to a friend or colleague?",
            0,
            10,
            {0: "Not at all likely", 10: "Extremely likely"},
        )
    if metric == "csat":
        return Question(
            "csat",
            f"How satisfied are you with your experience{where}?",
            1,
            5,
            {1: "Very dissatisfied", 2: "Dissatisfied", 3: "Neutral", 4: "Satisfied", 5: "Very satisfied"},
        )
    if metric == "ces":
        return Question(
            "ces",
            f"How easy was it to get your issue{where} resolved?",
            1,
            7,
            {1: "Very difficult", 4: "Neither easy nor difficult", 7: "Very easy"},
        )
    raise ValueError(f"{metric!r} has no re-survey question")


# --------------------------------------------------------------------------- tokens


class LinkError(Exception):
    """A link that cannot be answered; `status` is the HTTP status, the message plain words."""

    status = 400
    title = "This link does not work"


class LinkInvalid(LinkError):
    """Tampered, truncated or unknown."""


class LinkExpired(LinkError):
    status = 410
    title = "This link has expired"


class LinkUsed(LinkError):
    status = 410
    title = "You have already answered"


def secret_key(settings: Settings) -> bytes:
    """The signing secret, or MissingSetting naming the variable."""
    return settings.require(SECRET_VARIABLE, "re-survey links are signed with it").encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signature(key: bytes, ident: int, expiry: int, nonce: str) -> str:
    return _b64(hmac.new(key, f"{ident}.{expiry}.{nonce}".encode(), hashlib.sha256).digest())


def make_token(key: bytes, *, ident: int, nonce: str, expires_at: datetime) -> str:
    """`<id>.<expiry epoch>.<nonce>.<HMAC-SHA256>`; only the holder of the key can make one."""
    expiry = int(expires_at.timestamp())
    return f"{ident}.{expiry}.{nonce}.{_signature(key, ident, expiry, nonce)}"


def read_token(key: bytes, token: str) -> tuple[int, int, str]:
    """(id, expiry, nonce) of a well-signed token, else LinkInvalid."""
    parts = token.split(".")
    ident = parse_id(parts[0]) if len(parts) == 4 and len(token) <= 200 else None
    expiry = parse_unix_seconds(parts[1]) if ident is not None else None
    if ident is None or expiry is None:
        raise LinkInvalid("the link is incomplete or was changed")
    nonce, signature = parts[2], parts[3]
    if not hmac.compare_digest(signature.encode(), _signature(key, ident, expiry, nonce).encode()):
        raise LinkInvalid("the link is incomplete or was changed")
    return ident, expiry, nonce


async def open_link(session: AsyncSession, *, settings: Settings, token: str, now: datetime) -> Resurvey:
    """The re-survey a link names, if it can still be answered; LinkError (with the reason) if not."""
    ident, expiry, nonce = read_token(secret_key(settings), token)
    found = await session.get(Resurvey, ident, populate_existing=True)
    if found is None or not hmac.compare_digest(found.nonce.encode(), nonce.encode()):
        raise LinkInvalid("the link is incomplete or was changed")
    if found.answered_at is not None:
        raise LinkUsed("this link was already used to answer; thank you")
    if now >= found.expires_at or now.timestamp() >= expiry:
        raise LinkExpired("the link was valid until " + f"{found.expires_at:%d %B %Y}")
    return found


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class Sent:
    resurvey: Resurvey
    link: str
    channel: str


def _pick_channel(config: Config, case: Case, customer: Customer, preferred: str | None) -> str:
    """The channel the link goes by: the configured one, else email, else SMS; InvalidTransition if none."""
    usable = {c.channel for c in channels_for(config, case.team_key, customer)}
    if preferred is not None:
        if preferred in usable:
            return preferred
        raise InvalidTransition(
            f"{case.ref}'s customer cannot get a re-survey by {preferred} "
            f"(no {preferred} address, or no {preferred} provider for {case.team_key})"
        )
    for channel in ("email", "sms"):
        if channel in usable:
            return channel
    if not customer.email and not customer.phone:
        raise InvalidTransition(
            f"{case.ref}'s customer has no email address or phone number to send a re-survey to"
        )
    raise InvalidTransition(
        f"{case.ref}'s customer cannot be re-surveyed: {case.team_key} has no email or SMS provider "
        "for their address (teams[].contact in cxbot.yaml)"
    )


def link_text(
    *, customer: Customer, touchpoint: str | None, link: str, expires_at: datetime, company: str
) -> str:
    """The message that carries the link, naming who sends it: short enough for one SMS with a long URL."""
    hello = f"Hi {customer.name.split()[0]}, " if customer.name else "Hello, "
    about = f" about {touchpoint}" if touchpoint else ""
    return (
        f"{hello}thank you for your feedback{about}. Would you tell {company} how we did now? "
        f"One question: {link} (open until {expires_at:%d %b %Y})"
    )


async def send(
    session: AsyncSession,
    *,
    runtime: Runtime,
    case_id: int,
    actor: Actor,
    now: datetime,
    check_access: bool = True,
) -> Sent:
    """Create the re-survey and queue its link to the customer, in the caller's transaction.

    Raises InvalidTransition (with the reason) when the case cannot be re-surveyed, including when
    the customer was re-surveyed within the suppression window; MissingSetting without a secret.
    """
    config = runtime.config
    case = await get_case(session, case_id)
    if check_access:
        require_member(config, actor, case.team_key, doing="re-survey its customers")
    if case.state == "closed":
        raise InvalidTransition(f"{case.ref} is closed; reopen it before re-surveying")
    if case.state == "new":
        raise InvalidTransition(f"{case.ref} must be acknowledged before its customer is re-surveyed")
    feedback = await session.get(Feedback, case.feedback_id) if case.feedback_id else None
    if feedback is None or feedback.metric not in SCALES or feedback.score is None:
        raise InvalidTransition(f"{case.ref} has no scored feedback, so there is no question to ask again")
    if case.customer_id is None:
        raise InvalidTransition(f"{case.ref} has no customer to re-survey")
    # Lock the customer's row (PostgreSQL) / take the write lock (SQLite) before the suppression check,
    # so two concurrent requests cannot both find no recent re-survey.
    await session.execute(
        update(Customer).where(Customer.id == case.customer_id).values(updated_at=Customer.updated_at)
    )
    customer = await session.get(Customer, case.customer_id, populate_existing=True)
    assert customer is not None
    settings = config.resurvey_for(case.team_key)
    if customer.forgotten_at is not None:
        raise InvalidTransition(f"{case.ref}'s customer was erased; there is no one to re-survey")
    channel = _pick_channel(config, case, customer, settings.channel)
    window = parse_duration(settings.suppression_window)
    recent = await session.execute(
        select(Resurvey.case_id, Resurvey.created_at)
        .where(Resurvey.customer_id == customer.id, Resurvey.created_at > now - window)
        .order_by(Resurvey.created_at.desc())
        .limit(1)
    )
    last = recent.first()
    if last is not None:
        raise InvalidTransition(
            f"not sent: this customer was already re-surveyed on {last.created_at:%Y-%m-%d} "
            f"(CX-{last.case_id}); "
            f"at most one re-survey per customer every {settings.suppression_window}"
        )
    key = secret_key(runtime.settings)
    expires_at = now + parse_duration(settings.link_ttl)
    resurvey = Resurvey(
        case_id=case.id,
        customer_id=customer.id,
        nonce=secrets.token_urlsafe(16),
        metric=feedback.metric,
        channel=channel,
        created_by=actor.ident,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(resurvey)
    await session.flush()
    base = (settings.base_url or runtime.settings.public_url).rstrip("/")
    link = f"{base}/r/{make_token(key, ident=resurvey.id, nonce=resurvey.nonce, expires_at=expires_at)}"
    touchpoint = await _touchpoint_name(session, case, feedback)
    company = config.brand_for(case.team_key).name or case.team_key
    body = link_text(
        customer=customer, touchpoint=touchpoint, link=link, expires_at=expires_at, company=company
    )
    await _queue_link(
        session,
        runtime=runtime,
        case=case,
        resurvey=resurvey,
        channel=channel,
        body=body,
        actor=actor,
        now=now,
    )
    await record_event(
        session,
        case,
        actor=actor,
        kind="resurvey_sent",
        detail=f"Re-survey sent by {channel} ({METRIC_LABELS[feedback.metric]}), "
        f"open until {expires_at:%Y-%m-%d %H:%M} UTC",
        now=now,
        data={"resurvey_id": resurvey.id, "channel": channel},
    )
    return Sent(resurvey=resurvey, link=link, channel=channel)


async def _touchpoint_name(session: AsyncSession, case: Case, feedback: Feedback | None) -> str | None:
    if case.touchpoint_key:
        found = await session.get(Touchpoint, case.touchpoint_key)
        if found is not None:
            return found.name
    return feedback.touchpoint if feedback is not None else None


async def _queue_link(
    session: AsyncSession,
    *,
    runtime: Runtime,
    case: Case,
    resurvey: Resurvey,
    channel: str,
    body: str,
    actor: Actor,
    now: datetime,
) -> None:
    """Hand the link to the customer-contact outbox (cxbot.loop.contact), in this transaction: one
    attempt, delivered and recorded like any other message to the customer."""
    await queue_contact(
        session,
        config=runtime.config,
        case=case,
        channel=channel,
        body=body,
        actor=actor,
        now=now,
        purpose="resurvey",
        dedupe=f"resurvey:{resurvey.id}",
    )


async def send_command(
    runtime: Runtime, session: AsyncSession, *, case_id: int, actor: Actor
) -> ActionResult:
    """`/cx resurvey CX-42`: send it and say where it went (the link itself is the customer's)."""
    now = runtime.clock()
    try:
        sent = await send(session, runtime=runtime, case_id=case_id, actor=actor, now=now)
    except MissingSetting as error:
        raise InvalidTransition(str(error)) from None
    case = await get_case(session, case_id)
    return ActionResult(
        case,
        True,
        f"Re-survey for {case.ref} queued to the customer by {sent.channel}; "
        f"the link is open until {sent.resurvey.expires_at:%Y-%m-%d %H:%M} UTC",
    )


async def on_resolved(runtime: Runtime, session: AsyncSession, *, case_id: int, actor: Actor) -> str | None:
    """After a resolve: send a re-survey when the team enables it; a sentence for the resolver."""
    case = await get_case(session, case_id)
    if not runtime.config.resurvey_for(case.team_key).enabled_on_resolve:
        return None
    try:
        async with session.begin_nested():
            sent = await send(
                session,
                runtime=runtime,
                case_id=case_id,
                actor=actor,
                now=runtime.clock(),
                check_access=False,
            )
    except (InvalidTransition, MissingSetting) as error:
        return f"No re-survey sent: {error}"
    return f"Re-survey sent to the customer by {sent.channel}."


# --------------------------------------------------------------------------- answering


@dataclass(frozen=True, slots=True)
class Answered:
    case_ref: str
    outcome: str
    feedback_id: int


def comment_problem(comment: str) -> str | None:
    """What the customer must change in their comment before it can be kept, in plain words.

    Only the first MAX_COMMENT_CHARS are kept (the form's `maxlength` says so), so only they count.
    """
    if text_problem(comment[:MAX_COMMENT_CHARS], limit=MAX_COMMENT_CHARS) is None:
        return None
    return "Your comment contains a character we cannot keep (a control character); please retype it."


def parse_score(metric: str, value: str | None) -> int:
    """The picked radio button as a score on the metric's scale, or ValueError in plain words."""
    low, high = SCALES[metric]
    if value is None or not value.strip():
        raise ValueError("Please pick a score before sending.")
    text = value.strip()
    score = int(text) if text.isascii() and text.isdigit() and len(text) <= 2 else None
    if score is None or not low <= score <= high:
        raise ValueError(f"Please pick a score from {low} to {high}.")
    return score


async def answer(
    session: AsyncSession,
    *,
    runtime: Runtime,
    token: str,
    score: int,
    comment: str | None,
    now: datetime,
) -> Answered:
    """Store the answer once: new feedback, `answered_at` by compare-and-set, the case closed."""
    resurvey = await open_link(session, settings=runtime.settings, token=token, now=now)
    claimed = await session.execute(
        update(Resurvey)
        .where(Resurvey.id == resurvey.id, Resurvey.answered_at.is_(None), Resurvey.expires_at > now)
        .values(answered_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise LinkUsed("this link was already used to answer; thank you")
    case = await get_case(session, resurvey.case_id)
    original = await session.get(Feedback, case.feedback_id) if case.feedback_id else None
    customer = await session.get(Customer, resurvey.customer_id) if resurvey.customer_id else None
    if original is None or original.score is None:
        raise LinkInvalid("the case this link belongs to has changed")
    comment = (comment or "").strip()[:MAX_COMMENT_CHARS] or None
    item = {
        "source": SOURCE,
        "external_id": f"resurvey-{resurvey.id}",
        "metric": resurvey.metric,
        "score": score,
        "comment": comment,
        "touchpoint": original.touchpoint or case.touchpoint_key,
        "received_at": now.astimezone(UTC).isoformat(),
        **({"customer": {"id": customer.external_id}} if customer is not None else {}),
    }
    [result] = await ingest_items(session, ingestor_for(runtime.config), [item], now=now, open_cases=False)
    if result.feedback_id is None:
        raise LinkInvalid(f"the answer could not be stored ({result.reason})")
    await session.execute(
        update(Resurvey).where(Resurvey.id == resurvey.id).values(feedback_id=result.feedback_id)
    )
    outcome = recovery_outcome(
        resurvey.metric,
        original.score,
        score,
        negative_at=_negative_at(runtime.config, resurvey.metric, case),
    )
    values = {
        "state": "closed",
        "closed_at": now,
        "recovery_outcome": outcome,
        "snoozed_until": None,
        "updated_at": now,
    }
    closed = await transition(
        session,
        case,
        allowed_from=("new", "acknowledged", "in_progress", "contacted", "resolved"),
        values=values,
    )
    if not closed:  # closed by hand meanwhile: the verdict still belongs to it
        await session.execute(
            update(Case).where(Case.id == case.id).values(recovery_outcome=outcome, updated_at=now)
        )
        await session.refresh(case)
    label = METRIC_LABELS[resurvey.metric]
    await record_event(
        session,
        case,
        actor=CUSTOMER,
        kind="resurvey_answered",
        detail=f"Customer answered the re-survey: {label} {score} (was {original.score:g}), {outcome}"
        + ("; case closed" if closed else "")
        + (" (with a comment)" if comment else ""),
        now=now,
        data={
            "resurvey_id": resurvey.id,
            "feedback_id": result.feedback_id,
            "score": score,
            "outcome": outcome,
        },
    )
    return Answered(case_ref=case.ref, outcome=outcome, feedback_id=result.feedback_id)


def _negative_at(config: Config, metric: str, case: Case) -> float | None:
    """The threshold that made the case, so "moved up" is judged by the same line."""
    return config.threshold(metric, team=case.team_key, touchpoint=case.touchpoint_key)


async def page_context(session: AsyncSession, *, runtime: Runtime, resurvey: Resurvey) -> Question:
    """The question to show for a re-survey, naming where the experience happened and whose team asks."""
    case = await get_case(session, resurvey.case_id)
    original = await session.get(Feedback, case.feedback_id) if case.feedback_id else None
    asked = question(resurvey.metric, about=await _touchpoint_name(session, case, original))
    return replace(asked, team=case.team_key)


__all__ = [
    "Answered",
    "LinkError",
    "LinkExpired",
    "LinkInvalid",
    "LinkUsed",
    "Question",
    "Sent",
    "answer",
    "make_token",
    "on_resolved",
    "open_link",
    "page_context",
    "parse_score",
    "question",
    "read_token",
    "send",
    "send_command",
]
