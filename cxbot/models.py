"""The database schema. Changes go through an Alembic migration in `migrations/versions/`.

PII (customer name, email, phone) lives only in `customers`, apart from the feedback itself, so
that erasing a customer is one row's update and never a hunt through every table.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CASE_STATES = ("new", "acknowledged", "in_progress", "contacted", "resolved", "closed")
OPEN_CASE_STATES = ("new", "acknowledged", "in_progress", "contacted")
METRICS = ("nps", "csat", "ces", "comment")
OUTBOX_STATES = ("pending", "sending", "sent", "dead")
#: A provider fetch: waiting or backing off, claimed, stored, skipped (recorded reason), given up.
FETCH_STATES = ("pending", "fetching", "done", "skipped", "dead")
DIGEST_STATES = ("claimed", "sent", "skipped", "failed")

# SQLite only auto-increments an INTEGER PRIMARY KEY, so the big ids fall back to INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always aware and in UTC, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Team(Base):
    """A cross-functional owner of touchpoints, synchronised from `cxbot.yaml` at start."""

    __tablename__ = "teams"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    destinations: Mapped[list[TeamDestination]] = relationship(back_populates="team")


class TeamDestination(Base):
    """Where a team's cards and digests go on one platform (set by config or by `/cx team link`)."""

    __tablename__ = "team_destinations"
    __table_args__ = (UniqueConstraint("team_key", "platform"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_key: Mapped[str] = mapped_column(ForeignKey("teams.key", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(200))
    # Teams needs a whole conversation reference (service URL, tenant) to post proactively.
    reference: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    linked_by: Mapped[str | None] = mapped_column(String(100))
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    team: Mapped[Team] = relationship(back_populates="destinations")


class Touchpoint(Base):
    __tablename__ = "touchpoints"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    team_key: Mapped[str] = mapped_column(ForeignKey("teams.key"), index=True)


class Customer(Base):
    """The only table holding PII; feedback refers to it by id."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    forgotten_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Feedback(Base):
    """One survey response, unique on (source, external_id) so ingest is idempotent."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint(_in("metric", METRICS), name="metric"),
        Index(None, "team_key", "received_at"),
        Index(None, "touchpoint_key", "received_at"),
        Index(None, "customer_id", "received_at"),
        Index(None, "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    # The score as sent, when normalisation changed it (legacy 1-5 CES).
    raw_score: Mapped[float | None] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(Text)
    # The touchpoint as the source named it, and the configured touchpoint it resolved to (if any).
    touchpoint: Mapped[str | None] = mapped_column(String(200))
    touchpoint_key: Mapped[str | None] = mapped_column(ForeignKey("touchpoints.key"))
    team_key: Mapped[str] = mapped_column(ForeignKey("teams.key"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    sentiment: Mapped[float | None] = mapped_column(Float)
    is_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Case(Base):
    """A recovery ticket. Its number is its id: case 42 is `CX-42`."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(_in("state", CASE_STATES), name="state"),
        Index(None, "team_key", "state"),
        Index(None, "state", "ack_due_at"),
        Index(None, "state", "resolve_due_at"),
        Index(None, "customer_id"),
        # The digest's case-health query reads one team's cases opened in a window.
        Index(None, "team_key", "created_at"),
        # Case KPIs (first contact resolution, time to resolve) read the cases resolved in a window.
        Index(None, "team_key", "resolved_at"),
        Index(None, "touchpoint_key", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Unique, so the same feedback can never open two cases (retries, replays, updates).
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id"), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    team_key: Mapped[str] = mapped_column(ForeignKey("teams.key"))
    touchpoint_key: Mapped[str | None] = mapped_column(ForeignKey("touchpoints.key"))
    title: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(16), default="new")
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    routing_rule: Mapped[str] = mapped_column(String(100))
    routing_reason: Mapped[str] = mapped_column(String(500))
    assignee: Mapped[str | None] = mapped_column(String(100))
    created_by: Mapped[str | None] = mapped_column(String(100))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    snoozed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    snooze_reason: Mapped[str | None] = mapped_column(String(500))
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(100))
    root_cause: Mapped[str | None] = mapped_column(String(100))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    # Set when a case is resolved without reaching the customer (design.md §7: contact or a reason).
    no_contact_reason: Mapped[str | None] = mapped_column(String(500))
    # The re-survey's verdict once the customer answered: recovered, unchanged or worse.
    recovery_outcome: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    in_progress_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    contacted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ack_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolve_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    # Escalation state per SLA clock (cxbot/cases/escalation.py), claimed with compare-and-set UPDATEs.
    # `*_clock_due_at` is the deadline the rest refers to: when a flow moves the deadline (reopen),
    # the clock's warning and steps start over without that flow knowing about escalation.
    ack_clock_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ack_warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ack_escalations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    ack_next_escalation_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolve_clock_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolve_warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolve_escalations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    resolve_next_escalation_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    @property
    def ref(self) -> str:
        return f"CX-{self.id}"

    @property
    def escalated(self) -> bool:
        return self.escalation_level > 0


class CaseEvent(Base):
    """Append-only timeline and audit trail of a case: who did what, when."""

    __tablename__ = "case_events"
    __table_args__ = (Index(None, "case_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Contact(Base):
    """One attempt to reach the customer about a case, with its delivery result."""

    __tablename__ = "contacts"
    __table_args__ = (Index(None, "case_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    template: Mapped[str | None] = mapped_column(String(100))
    # The text as sent; it may name the customer, so `forget` blanks it with the customer's PII.
    body: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Resurvey(Base):
    """A one-time, expiring invitation to answer the case's question again (`GET /r/<token>`).

    The link carries a signed token naming this row; `answered_at` is set with a compare-and-set
    update, so a reused link changes nothing. `feedback_id` is the answer, stored as new feedback.
    """

    __tablename__ = "resurveys"
    __table_args__ = (Index(None, "customer_id", "created_at"), Index(None, "case_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    # Random part of the token, so a guessed id alone opens nothing.
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    metric: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(16))
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("feedback.id"))


class Annotation(Base):
    """A dated change made at a touchpoint ("new returns policy live"), for before/after scores."""

    __tablename__ = "annotations"
    __table_args__ = (Index(None, "touchpoint_key", "effective_at"), Index(None, "team_key", "effective_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    touchpoint_key: Mapped[str] = mapped_column(ForeignKey("touchpoints.key"))
    team_key: Mapped[str] = mapped_column(ForeignKey("teams.key"))
    text: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # When the change went live; the before/after windows meet here.
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditEvent(Base):
    """Append-only audit of actions that belong to no single case: PII reveals, erasures, config."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "subject", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    # What the action was about, e.g. `customer:17` or `case:42`; never the PII itself.
    subject: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str | None] = mapped_column(Text)


class DigestRun(Base):
    """One digest per scope (team key or a leadership scope) and local date; the unique key is the lock."""

    __tablename__ = "digest_runs"
    __table_args__ = (
        UniqueConstraint("scope", "local_date"),
        CheckConstraint(_in("status", DIGEST_STATES), name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(64))
    local_date: Mapped[date] = mapped_column(Date)
    scheduled_for: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="claimed")
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    detail: Mapped[str | None] = mapped_column(Text)


class OutboxMessage(Base):
    """A side effect written in the same transaction as the state change, delivered later with retries."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("status", OUTBOX_STATES), name="status"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "case_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Two writers asking for the same effect (a replayed click) collide here instead of sending twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The end of a lease that ran out while the row was still `sending` (its worker stopped between
    # the post and its record): that attempt may have been delivered, so the next one looks first.
    lost_lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OutboxHold(Base):
    """A Retry-After a platform gave: nothing goes to `destination` (or, as `*`, to any destination
    of the platform) from any worker before `until`. Written the moment the answer arrives, in a
    transaction of its own, so another replica knows within milliseconds (cxbot.outbox.rows.hold)."""

    __tablename__ = "outbox_holds"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    destination: Mapped[str] = mapped_column(String(200), primary_key=True)
    until: Mapped[datetime] = mapped_column(UtcDateTime)


class ProviderFetch(Base):
    """A webhook that carried only ids: the response still to be fetched from the provider's API.

    Written when the webhook is answered and worked later with retries (like the outbox), so a
    restart or a provider outage loses nothing; `dedupe_key` makes a redelivered webhook one fetch.
    """

    __tablename__ = "provider_fetches"
    __table_args__ = (
        CheckConstraint(_in("status", FETCH_STATES), name="status"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    feedback_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class CasePost(Base):
    """The chat message that shows a case in one destination, so later changes update it in place.

    `message_ref` is the platform's id of the card (Slack `ts`, Teams activity id); thread lines go
    under it. One row per case, platform and destination.
    """

    __tablename__ = "case_posts"
    __table_args__ = (UniqueConstraint("case_id", "platform", "destination"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(200))
    message_ref: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class InboundEvent(Base):
    """Platform events already handled (Slack `event_id`), so a retried delivery never acts twice."""

    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("platform", "event_id"), Index(None, "received_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ChatConversation(Base):
    """A conversation a platform lets the bot post to proactively, remembered from inbound activity.

    Teams needs a whole conversation reference (service URL, tenant, conversation id) to post a case
    card, a digest or an escalation notice; it is stored on install and on every message. `user_id`
    is the person's platform id for a personal (1:1) chat, so escalation notices find it.
    """

    __tablename__ = "chat_conversations"
    __table_args__ = (UniqueConstraint("platform", "conversation_id"), Index(None, "platform", "user_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    conversation_id: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(String(100))
    reference: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
