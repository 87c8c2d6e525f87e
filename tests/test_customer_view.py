"""`/cx customer <id>`: one customer's every score, comment and case, newest first, a page at a time.

The Skytrax reviews are real customers who reviewed more than once, some of them both seats and
lounges: their history as the command returns it, every page of it, is checked against the CSV files
read here with the csv module (thresholds from the YAML, sentiment from VADER itself), not through
cxbot. Generated data covers what the real files cannot: hundreds of items, ties on the timestamp,
comments at Slack's limits, contact details to mask or reveal.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from cxbot.authz import Actor
from cxbot.cases.customers import COMMENT_CHARS, PAGE_SIZE, CustomerPage
from cxbot.cases.detractors import raise_priority
from cxbot.cases.view import load_case_view
from cxbot.commands.dispatch import Reply, Where, run_text
from cxbot.config import RepeatDetractor
from cxbot.db import transaction
from cxbot.ingest.csv_import import ImportOptions, import_csv
from cxbot.ingest.service import ingest_items, ingestor_for
from cxbot.models import AuditEvent, Case, Customer
from cxbot.pii import mask_text
from cxbot.runtime import Runtime
from handlers.slack.blocks import (
    MAX_BLOCKS,
    MAX_TEXT,
)
from handlers.slack.customer_view import customer_message
from handlers.slack.renderers import (
    case_card,
)
from tests.conftest import FIXTURES
from tests.support.clock import FrozenClock
from tests.test_csv_import import Thresholds, _vader

SEATS = FIXTURES / "data" / "skytrax_seat.csv"
LOUNGES = FIXTURES / "data" / "skytrax_lounge_repeat_authors.csv"
SEAT_OPTIONS = ImportOptions(
    mapping={"score": "overall_rating", "comment": "content", "customer_id": "author", "received_at": "date"},
    constants={"metric": "nps", "touchpoint": "seat"},
    source="skytrax-seat",
)
LOUNGE_OPTIONS = ImportOptions(
    mapping={"score": "overall_rating", "comment": "content", "customer_id": "author", "received_at": "date"},
    constants={"metric": "csat", "touchpoint": "lounge"},
    source="skytrax-lounge",
)
TOUCHPOINT_NAMES = {"seat": "Seat comfort", "lounge": "Airport lounge"}
HERE = Where(platform="console")
TRAVEL_MANAGER, ADMIN = Actor("U0TRVMGR1", "slack"), Actor("U0ADMIN01", "slack")
BILLING_AGENT, SUPPORT_AGENT = Actor("U0BILAGT1", "slack"), Actor("U0SUPAGT1", "slack")


# --------------------------------------------------------------------------- independent expectations


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _clip_comment(text: str) -> str:
    masked = mask_text(text.strip())
    return masked if len(masked) <= COMMENT_CHARS else masked[: COMMENT_CHARS - 1] + "…"


def expected_histories() -> dict[str, list[dict[str, Any]]]:
    """Per author, every review that is valid feedback: seats as NPS 0-10, lounges as CSAT 1-5."""
    thresholds = Thresholds()
    by_author: dict[str, list[dict[str, Any]]] = defaultdict(list)
    files = ((SEATS, "nps", "seat", "skytrax-seat", 9), (LOUNGES, "csat", "lounge", "skytrax-lounge", 4))
    for path, metric, touchpoint, source, positive_from in files:
        for row in _rows(path):
            rating = row["overall_rating"].strip()
            if not rating or (metric == "csat" and not 1 <= float(rating) <= 5):
                continue  # refused by the importer (checked below through its report)
            score = float(rating)
            comment = row["content"].strip()
            negative = score <= thresholds.limit(metric, touchpoint) or (
                score < positive_from and bool(comment) and _vader(comment) < thresholds.negative_below
            )
            by_author[row["author"].strip()].append(
                {
                    "date": date.fromisoformat(row["date"]),
                    "metric": metric,
                    "score": score,
                    "touchpoint": TOUCHPOINT_NAMES[touchpoint],
                    "source": source,
                    "comment": _clip_comment(comment) if comment else None,
                    "negative": negative,
                }
            )
    return by_author


# --------------------------------------------------------------------------- helpers


async def view(runtime: Runtime, text: str, actor: Actor = TRAVEL_MANAGER) -> Reply:
    return await run_text(runtime, text, actor=actor, where=HERE)


async def every_page(runtime: Runtime, ident: str, actor: Actor = TRAVEL_MANAGER) -> list[CustomerPage]:
    """Follow "older" from the first page to the last, through the command grammar."""
    reply = await view(runtime, f"customer {_quote(ident)}", actor)
    assert reply.ok, reply.text
    pages = [reply.report]
    while (command := pages[-1].command("older")) is not None:
        reply = await view(runtime, command, actor)
        assert reply.ok, reply.text
        pages.append(reply.report)
    return pages


def _quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def assert_within_slack_limits(reply: Reply) -> None:
    message = customer_message(reply)
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    assert Block.parse_all(blocks)
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                texts.append(value["text"])
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(blocks)
    assert max(len(t) for t in texts) <= MAX_TEXT
    assert len(message["text"]) <= 4000
    for element in (e for b in blocks if b["type"] == "actions" for e in b["elements"]):
        assert len(element["value"]) <= 2000


async def post_items(client: httpx.AsyncClient, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = await client.post("/feedback", json=items)
    assert response.status_code in (200, 201, 207), response.text
    results = response.json()["results"]
    assert all(r["status"] == "created" for r in results), results
    return results


# --------------------------------------------------------------------------- real data


async def test_skytrax_customers_history_matches_the_csv_files(runtime: Runtime, clock: FrozenClock) -> None:
    seats = await import_csv(runtime, SEATS, SEAT_OPTIONS)
    lounges = await import_csv(runtime, LOUNGES, LOUNGE_OPTIONS)
    expected = expected_histories()
    assert seats.created + lounges.created == sum(len(v) for v in expected.values())
    assert len(lounges.errors) == 4  # the four lounge ratings on a 1-10 scale, refused as CSAT
    repeaters = {author: items for author, items in expected.items() if len(items) > 1}
    assert len(repeaters) > 100 and max(len(v) for v in repeaters.values()) > PAGE_SIZE
    assert sum(1 for v in repeaters.values() if len({i["source"] for i in v}) == 2) >= 40

    clock.now = datetime(2015, 7, 10, 12, 0, tzinfo=UTC)  # "now" among the reviews, for 30/90 days
    for author, items in sorted(repeaters.items()):
        pages = await every_page(runtime, author)
        first = pages[0]
        shown = [item for page in pages for item in page.items]
        assert [p.start for p in pages] == list(range(0, len(items), PAGE_SIZE))
        # Newest first; the same timestamp falls back to the newer row first.
        keys = [(i.received_at, i.feedback_id) for i in shown]
        assert keys == sorted(keys, reverse=True)
        assert [i.received_at.date() for i in shown] == sorted((i["date"] for i in items), reverse=True)
        as_shown = Counter(
            (i.received_at.date(), i.metric, i.score, i.touchpoint, i.source, i.comment, i.negative)
            for i in shown
        )
        as_filed = Counter(
            (i["date"], i["metric"], i["score"], i["touchpoint"], i["source"], i["comment"], i["negative"])
            for i in items
        )
        assert as_shown == as_filed, author
        # Every negative opened a case with the touchpoint's owner, and only negatives did.
        assert all((i.case is not None) == i.negative for i in shown), author
        assert {i.case.team_key for i in shown if i.case} <= {"travel"}
        # The header, from the same rows.
        assert first.total == len(items)
        assert first.counts == dict(Counter(i["metric"] for i in items))
        assert (first.first_seen.date(), first.last_seen.date()) == (  # type: ignore[union-attr]
            min(i["date"] for i in items),
            max(i["date"] for i in items),
        )
        today = clock.now.date()
        recent = [i for i in items if i["negative"] and today - timedelta(days=90) <= i["date"] <= today]
        assert first.negatives_90 == len(recent), author
        assert first.negatives_30 == sum(1 for i in recent if i["date"] >= today - timedelta(days=30))
        assert first.open_case_count == sum(1 for i in items if i["negative"])
        assert (first.repeat_detractor is not None) == (len(recent) >= 3)


async def test_a_case_ref_names_its_customer_and_unknown_ids_say_so(runtime: Runtime) -> None:
    await import_csv(runtime, SEATS, SEAT_OPTIONS)
    async with runtime.sessions() as session:
        case_id, customer_id = (
            await session.execute(
                select(Case.id, Customer.id)
                .join(Customer, Customer.id == Case.customer_id)
                .where(Customer.external_id == "J Wong")
                .limit(1)
            )
        ).one()
    by_case = await view(runtime, f"customer CX-{case_id}")
    assert by_case.ok and by_case.report.customer_id == customer_id
    assert by_case.report.label.startswith("J Wong")
    assert f"CX-{case_id}" in by_case.text and "responses 1–6 of 6" in by_case.text

    unknown = await view(runtime, "customer nobody-like-this")
    assert not unknown.ok and "there is no customer 'nobody-like-this'" in unknown.text
    missing_case = await view(runtime, "customer CX-99999")
    assert not missing_case.ok and "no case CX-99999" in missing_case.text
    bad = await view(runtime, "customer x before:yesterday")
    assert not bad.ok and "Usage: /cx customer <customer id|CX-42>" in bad.text


# --------------------------------------------------------------------------- PII


async def test_pii_is_revealed_only_to_the_owning_team_and_admins_and_each_reveal_is_audited(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    ada = {"id": "cust-ada", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000"}
    results = await post_items(
        client,
        [
            {
                "external_id": "r-1",
                "source": "survey",
                "metric": "csat",
                "score": 1,
                "touchpoint": "Refunds",
                "comment": "Refund missing. Call me on +44 20 7946 0000 or mail ada@example.com",
                "customer": ada,
                "received_at": "2026-11-01T09:00:00Z",
            },
            {
                "external_id": "r-2",
                "source": "survey",
                "metric": "nps",
                "score": 10,
                "touchpoint": "delivery",
                "customer": {"id": "cust-bob", "name": "Bob Hope", "email": "bob@example.org"},
                "received_at": "2026-11-01T10:00:00Z",
            },
        ],
    )
    assert results[0]["case"]  # a billing case

    async def audit_rows() -> list[tuple[str, str, str]]:
        async with runtime.sessions() as session:
            rows = await session.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject))
            return [tuple(r) for r in rows.all()]

    async with runtime.sessions() as session:
        ada_id = (
            await session.execute(select(Customer.id).where(Customer.external_id == "cust-ada"))
        ).scalar()

    masked = await view(runtime, "customer cust-ada", SUPPORT_AGENT)  # support does not own the case
    assert masked.ok and not masked.report.revealed
    assert "A. L." in masked.text and "a***@e***.com" in masked.text and "•••00" in masked.text
    assert "ada@example.com" not in masked.text and "Lovelace" not in masked.text
    assert "7946" not in json.dumps(customer_message(masked))
    assert await audit_rows() == []

    for actor in (BILLING_AGENT, ADMIN):  # a member of the owning team, an admin
        shown = await view(runtime, "customer cust-ada", actor)
        assert shown.report.revealed
        assert shown.text.startswith("Customer cust-ada · Ada Lovelace · ada@example.com · +44 20 7946 0000")
        # The comment stays masked, even for them.
        [item] = shown.report.items
        assert item.comment == "Refund missing. Call me on •••00 or mail a***@e***.com"
        assert "audited" in json.dumps(customer_message(shown))
    assert await audit_rows() == [
        (BILLING_AGENT.user_id, "pii_reveal", f"customer:{ada_id}"),
        (ADMIN.user_id, "pii_reveal", f"customer:{ada_id}"),
    ]

    # Bob has no case: only an admin may see his details.
    bob = await view(runtime, "customer cust-bob", BILLING_AGENT)
    assert not bob.report.revealed and "bob@example.org" not in bob.text
    assert (await view(runtime, "customer cust-bob", ADMIN)).report.revealed
    assert len(await audit_rows()) == 3

    # An erased customer's words and details are gone from the view, for everyone.
    async with transaction(runtime.sessions) as session:
        customer = await session.get(Customer, ada_id)
        assert customer is not None
        customer.forgotten_at = datetime(2026, 11, 2, tzinfo=UTC)
    erased = await view(runtime, "customer cust-ada", ADMIN)
    assert erased.report.erased and not erased.report.revealed
    assert "(erased customer)" in erased.text and "Refund missing" not in erased.text
    assert len(await audit_rows()) == 3


# --------------------------------------------------------------------------- pagination


def generated_items(count: int, *, customer: str, start: datetime, prefix: str) -> list[dict[str, Any]]:
    """`count` responses of one customer, every metric, 7 of every 10 sharing a timestamp with another."""
    metrics = [("nps", 3), ("csat", 5), ("ces", 2), ("comment", None), ("nps", 9)]
    touchpoints = ["delivery", "Refunds", "Inbound", "checkout", "lounge", "website"]
    items = []
    for n in range(count):
        metric, score = metrics[n % len(metrics)]
        comment = None
        if n % 7 == 0:
            comment = f"<!channel> mail me at user{n}@example.com " + "very long complaint " * 200
        elif n % 3 == 0 or metric == "comment":
            comment = f"Item {n}: parcel late again, call +1 415 555 {n:04d}"
        items.append(
            {
                "external_id": f"{prefix}-{n}",
                "source": ["web", "email", "app"][n % 3],
                "metric": metric,
                **({"score": score} if score is not None else {}),
                "touchpoint": touchpoints[n % len(touchpoints)],
                "comment": comment,
                "customer": {"id": customer},
                "received_at": (start + timedelta(hours=6 * (n // 3))).isoformat(),
            }
        )
    return items


async def store(runtime: Runtime, items: list[dict[str, Any]], now: datetime) -> list[int]:
    async with transaction(runtime.sessions) as session:
        results = await ingest_items(session, ingestor_for(runtime.config), items, now=now)
    assert all(r.status == "created" for r in results), [r for r in results if r.status != "created"][:3]
    return [r.feedback_id for r in results if r.feedback_id is not None]


async def test_hundreds_of_items_page_newest_first_disjoint_complete_and_within_slack_limits(
    runtime: Runtime, clock: FrozenClock
) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    mine = generated_items(347, customer="many-1", start=start, prefix="m")
    others = generated_items(400, customer="other-1", start=start, prefix="o")
    ids = await store(runtime, mine + others, clock.now)
    expected = sorted(
        (
            (datetime.fromisoformat(item["received_at"]), ident)
            for item, ident in zip(mine, ids, strict=False)
        ),
        reverse=True,
    )

    replies = [await view(runtime, "customer many-1")]
    while (command := replies[-1].report.command("older")) is not None:
        # Pages name the customer by the bot's own reference (`cust:17`), never by their external id.
        assert command.startswith(f"customer cust:{replies[0].report.customer_id} before:")
        assert f"Older: /cx {command}" in replies[-1].text  # the console's way to the next page
        replies.append(await view(runtime, command))
    pages = [r.report for r in replies]
    assert len(pages) == -(-347 // PAGE_SIZE)
    assert all(len(p.items) == PAGE_SIZE for p in pages[:-1]) and pages[-1].items
    shown = [(i.received_at, i.feedback_id) for p in pages for i in p.items]
    assert shown == expected  # complete, disjoint, newest first (ties: the newer id first)
    assert [p.start for p in pages] == list(range(0, 347, PAGE_SIZE))
    assert pages[0].newer is None and pages[-1].older is None
    assert "responses 346–347 of 347" in replies[-1].text
    for reply in replies:
        assert_within_slack_limits(reply)

    # And back again with "newer": the same pages, in reverse.
    back = [pages[-1]]
    while (command := back[-1].command("newer")) is not None:
        reply = await view(runtime, command)
        back.append(reply.report)
    assert [[i.feedback_id for i in p.items] for p in back] == [
        [i.feedback_id for i in p.items] for p in reversed(pages)
    ]
    # Comments are masked and cut; nobody's address survives on any page.
    text = json.dumps([customer_message(r) for r in replies])
    assert "@example.com" not in text.replace("***@e***.com", "") and "555 0" not in text


# --------------------------------------------------------------------------- repeat detractors


def negative(n: int, customer: str, at: datetime, touchpoint: str = "delivery") -> dict[str, Any]:
    return {
        "external_id": f"neg-{customer}-{n}",
        "source": "survey",
        "metric": "csat",
        "score": 1,
        "touchpoint": touchpoint,
        "customer": {"id": customer},
        "received_at": at.isoformat(),
    }


async def test_a_repeat_detractor_is_flagged_and_their_new_case_gets_the_configured_priority(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    rule = runtime.config.routing.repeat_detractor
    assert (rule.negatives, rule.window, rule.priority) == (3, "90d", "high")  # cxbot.example.yaml
    now = clock.now
    first = await post_items(client, [negative(1, "rd", now - timedelta(days=80))])
    second = await post_items(client, [negative(2, "rd", now - timedelta(days=40))])
    third = await post_items(client, [negative(3, "rd", now - timedelta(days=1), "Refunds")])
    # Three negatives too, but the first two are outside 90 days of the third.
    await post_items(
        client,
        [
            negative(1, "old", now - timedelta(days=200)),
            negative(2, "old", now - timedelta(days=100)),
        ],
    )
    spread = await post_items(client, [negative(3, "old", now - timedelta(days=1))])

    async def case(ref: str) -> Case:
        async with runtime.sessions() as session:
            found = await session.get(Case, int(ref.removeprefix("CX-")))
            assert found is not None
            return found

    assert [(await case(r[0]["case"])).priority for r in (first, second)] == ["normal", "normal"]
    raised = await case(third[0]["case"])
    assert raised.priority == "high" and raised.team_key == "billing"
    assert "repeat detractor (≥3 negatives in 90 days): high priority" in raised.routing_reason
    assert (await case(spread[0]["case"])).priority == "normal"

    # The card says it: priority, the flag in the history line, and the button to the full view.
    async with runtime.sessions() as session:
        card_view = await load_case_view(session, raised.id, config=runtime.config, now=now)
    assert card_view is not None and card_view.priority == "high"
    card = json.dumps(case_card(card_view))
    assert "*Priority*\\nhigh" in card
    assert "repeat detractor: 3 negatives in 90 days" in card
    assert f'"action_id": "cx_customer:{raised.id}"' in card
    # And the customer view.
    page = (await view(runtime, "customer rd", ADMIN)).report
    assert page.repeat_detractor == "repeat detractor: 3 negatives in 90 days"
    assert f"CX-{raised.id} [new] Billing & Payments, high priority" in page.cases_line
    old = (await view(runtime, "customer old", ADMIN)).report
    assert old.repeat_detractor is None and old.negatives_90 == 1

    # A case opened by hand from a later, positive response of theirs is raised the same way.
    [positive] = await post_items(
        client,
        [
            {
                "external_id": "pos-rd",
                "source": "survey",
                "metric": "nps",
                "score": 10,
                "touchpoint": "delivery",
                "customer": {"id": "rd"},
                "received_at": (now - timedelta(hours=1)).isoformat(),
            }
        ],
    )
    opened = await view(runtime, f"new logistics feedback:{positive['id']}", Actor("U0LOGMGR1", "slack"))
    assert opened.ok and opened.case is not None
    assert (await case(opened.case.ref)).priority == "high"


async def test_without_a_configured_priority_repeat_detractors_are_only_flagged(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    flag_only = runtime.config.model_copy(
        update={
            "routing": runtime.config.routing.model_copy(
                update={"repeat_detractor": RepeatDetractor(negatives=2, window="30d")}
            )
        }
    )
    results = await post_items(
        client,
        [negative(n, "fo", clock.now - timedelta(days=n)) for n in (1, 2)],
    )
    case_ids = [int(r["case"].removeprefix("CX-")) for r in results]
    async with transaction(runtime.sessions) as session:
        assert await raise_priority(session, config=flag_only, case_ids=case_ids, now=clock.now) == []
        card_view = await load_case_view(session, case_ids[0], config=flag_only, now=clock.now)
    assert card_view is not None and card_view.history is not None
    assert card_view.history.repeat_detractor == "repeat detractor: 2 negatives in 30 days"
    assert card_view.priority == "normal"
    # A rule only ever raises a priority: a case already urgent stays urgent under a `high` rule.
    async with transaction(runtime.sessions) as session:
        urgent = await session.get(Case, case_ids[1])
        assert urgent is not None
        urgent.priority = "urgent"
    async with transaction(runtime.sessions) as session:
        raised = await raise_priority(session, config=runtime.config, case_ids=case_ids, now=clock.now)
    assert raised == []  # the example's rule needs 3 negatives: neither case qualifies
    third = await post_items(client, [negative(3, "fo", clock.now - timedelta(hours=1))])
    async with transaction(runtime.sessions) as session:
        await raise_priority(session, config=runtime.config, case_ids=case_ids, now=clock.now)
        priorities = [(await session.get(Case, ident)).priority for ident in case_ids]  # type: ignore[union-attr]
        newest = await session.get(Case, int(third[0]["case"].removeprefix("CX-")))
    assert priorities == ["normal", "urgent"]  # judged at their own time: 1 and 2 negatives then
    assert newest is not None and newest.priority == "high"
