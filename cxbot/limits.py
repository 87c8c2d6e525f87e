"""The one set of input limits at the edge (issue #11, design.md §5 "Bad input gets a 4xx").

Every surface that takes text from outside (`/cx` on every platform, modals, `POST /feedback`,
webhooks, the re-survey page, the API's query parameters) checks it here before anything is stored,
so SQLite and PostgreSQL see the same bounded values: no text longer than its column (PostgreSQL
refuses what SQLite would keep), no NUL (PostgreSQL cannot store one), no lone surrogate (no
database can encode one), ids that are ASCII digits within a 64-bit integer, timestamps in a sane
range. `docs/security.md` "Input limits" is the table of these values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

#: Largest body any route reads (the default of CXBOT_MAX_BODY_BYTES); more is a 413.
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
#: Items in one `POST /feedback` or one webhook delivery.
MAX_ITEMS_PER_DELIVERY = 5_000

#: Ids (cases, feedback, re-survey links) are ASCII digits within a signed 64-bit integer.
MAX_ID = 2**63 - 1
MAX_ID_DIGITS = len(str(MAX_ID))
#: Unix-seconds timestamps in signature headers (Slack, Formbricks): 12 digits reach the year 33658.
MAX_UNIX_SECONDS_DIGITS = 12

# Feedback fields (cxbot.ingest.schema), each within its column.
MAX_EXTERNAL_ID_CHARS = 200  # feedback.external_id, customers.external_id, touchpoint
MAX_SOURCE_CHARS = 64  # feedback.source
MAX_COMMENT_CHARS = 10_000  # feedback.comment (TEXT: bounded so a card and a digest stay readable)
MAX_TAGS = 50
MAX_TAG_CHARS = 100
MAX_EMAIL_CHARS = 320  # customers.email
MAX_PHONE_CHARS = 40  # customers.phone
#: received_at: not before this, and not more than a day ahead of the server's clock.
EARLIEST_RECEIVED_AT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_RECEIVED_AHEAD = timedelta(days=1)

# What people type in commands and forms, each within its column.
MAX_COMMAND_CHARS = 4_000  # the whole text after `/cx` (Slack sends at most 4,000)
MAX_NOTE_CHARS = 3_000  # case_events.detail; one Slack text block holds 3,000
MAX_REASON_CHARS = 500  # cases.snooze_reason, cases.no_contact_reason
MAX_ROOT_CAUSE_CHARS = 100  # cases.root_cause
MAX_USER_CHARS = 100  # cases.assignee, every actor column
MAX_KEY_CHARS = 64  # team and touchpoint keys
MAX_CONTACT_BODY_CHARS = 20_000  # a message to the customer (the composer's email; SMS allows less)
MAX_CUSTOMER_REF_CHARS = MAX_EXTERNAL_ID_CHARS

#: The re-survey form: one score and a comment (cxbot.loop.resurvey keeps at most 2,000 characters).
MAX_RESURVEY_FIELDS = 10
MAX_RESURVEY_COMMENT_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class Limit:
    """One row of the documented table: what is bounded, the bound, and where it is checked."""

    what: str
    bound: str
    where: str


#: The table `docs/security.md` shows (a test keeps the two in step).
TABLE: tuple[Limit, ...] = (
    Limit("Request body, every route", f"{DEFAULT_MAX_BODY_BYTES:,} bytes (CXBOT_MAX_BODY_BYTES)", "413"),
    Limit("Items per `/feedback` request or webhook delivery", f"{MAX_ITEMS_PER_DELIVERY:,}", "413"),
    Limit(
        "Ids (`CX-42`, `feedback:7`, re-survey links, `before=`)",
        f"ASCII digits, 1 to {MAX_ID}",
        "usage / 400",
    ),
    Limit(
        "Signature timestamps (Slack, Formbricks)", f"ASCII digits, at most {MAX_UNIX_SECONDS_DIGITS}", "401"
    ),
    Limit(
        "Feedback `external_id`, `touchpoint`, `customer.id`, `customer.name`",
        f"{MAX_EXTERNAL_ID_CHARS} characters",
        "item error",
    ),
    Limit("Feedback `source`", f"{MAX_SOURCE_CHARS} characters", "item error"),
    Limit("Feedback `comment`", f"{MAX_COMMENT_CHARS:,} characters", "item error"),
    Limit("Feedback `tags`", f"{MAX_TAGS} tags of {MAX_TAG_CHARS} characters", "item error"),
    Limit(
        "`customer.email` / `customer.phone`",
        f"{MAX_EMAIL_CHARS} / {MAX_PHONE_CHARS} characters",
        "item error",
    ),
    Limit(
        "Feedback `received_at`",
        f"from {EARLIEST_RECEIVED_AT:%Y-%m-%d} to one day ahead of the server",
        "item error",
    ),
    Limit("Command text after `/cx`", f"{MAX_COMMAND_CHARS:,} characters", "usage"),
    Limit("`note` text", f"{MAX_NOTE_CHARS:,} characters", "usage"),
    Limit("Snooze reason, could-not-contact reason", f"{MAX_REASON_CHARS} characters", "usage"),
    Limit("`annotate` text", f"{MAX_REASON_CHARS} characters", "usage"),
    Limit("Text of a case opened with `new`", f"{MAX_COMMENT_CHARS:,} characters", "usage"),
    Limit(
        "Message to the customer (`contact`, its composer)", f"{MAX_CONTACT_BODY_CHARS:,} characters", "usage"
    ),
    Limit("Root cause", f"{MAX_ROOT_CAUSE_CHARS} characters", "usage"),
    Limit("Assignee", f"{MAX_USER_CHARS} characters", "usage"),
    Limit("Team and touchpoint keys", f"{MAX_KEY_CHARS} characters", "usage"),
    Limit("Customer id in `customer` / `forget`", f"{MAX_CUSTOMER_REF_CHARS} characters", "usage"),
    Limit(
        "Re-survey form",
        f"{MAX_RESURVEY_FIELDS} fields, comment {MAX_RESURVEY_COMMENT_CHARS:,} characters",
        "400 page",
    ),
    Limit("Any stored text", "no NUL, no unpaired surrogate", "item error / usage / 400"),
)


def parse_id(text: str | None) -> int | None:
    """`"42"` → 42; None for anything but ASCII digits from 1 to MAX_ID (`"١"`, `"²"`, `"-1"`, 400 digits)."""
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > MAX_ID_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def parse_unix_seconds(text: str | None) -> int | None:
    """A Unix timestamp header as ASCII digits of sane length, else None (never an overflow later)."""
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > MAX_UNIX_SECONDS_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def text_problem(text: str, *, limit: int) -> str | None:
    """Why `text` cannot be stored as it is (too long, a NUL, a lone surrogate), or None."""
    if len(text) > limit:
        return f"longer than {limit} characters"
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an unpaired surrogate, which is not text"
    return None


def said(subject: str, problem: str) -> str:
    """`the note` + a problem from :func:`text_problem` as one sentence ("… is longer …", "… contains …")."""
    return f"{subject} {problem}" if problem.startswith("contains") else f"{subject} is {problem}"


def received_at_problem(value: datetime, *, now: datetime) -> str | None:
    """Why a feedback timestamp is not believable, or None."""
    if value < EARLIEST_RECEIVED_AT:
        return f"{value.date().isoformat()} is before {EARLIEST_RECEIVED_AT.date().isoformat()}"
    if value > now + MAX_RECEIVED_AHEAD:
        return f"{value.isoformat(sep=' ', timespec='minutes')} is more than a day in the future"
    return None
