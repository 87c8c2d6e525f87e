"""Storing feedback: idempotent on (source, external_id), in bulk, in the caller's transaction.

HTTP ingest, webhooks and the CSV importer all come through :func:`ingest_items`. Each batch is a few
set-based statements (customers, feedback, cases, case events) rather than one round trip per item,
which is what lets a single SQLite file take thousands of items a second. Concurrent writers of the
same item meet on unique keys (`ON CONFLICT DO NOTHING`) and the loser treats the row as existing.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cxbot import limits
from cxbot.cases.detractors import raise_priority
from cxbot.cases.sla import deadlines
from cxbot.config import Config
from cxbot.db import custom_plans, insert_for
from cxbot.ingest.bulk import BulkWriter
from cxbot.ingest.common import (
    SYSTEM_ACTOR,
    CustomerIds,
    ItemResult,
    PendingItem,
    case_title,
    refresh_customers,
    routing_reason,
    sort_customer_rows,
    tombstones_of,
    without_erased_pii,
)
from cxbot.ingest.routing import Route, Router
from cxbot.ingest.schema import CustomerIn, FeedbackIn, ItemError, validate_item
from cxbot.models import Case, CaseEvent, Customer, Feedback
from cxbot.outbox.queue import queue_case_cards, queue_case_update

CHUNK = 500
#: Distinct touchpoint spellings whose route is remembered (a configured set, so small in practice).
ROUTE_CACHE_SIZE = 1024


_BY_INDEX = attrgetter("index")


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _route_warnings(item: FeedbackIn, route: Route) -> list[str]:
    """Tell the sender when its touchpoint did not decide the owner (the reason names the touchpoint)."""
    return [] if route.known_touchpoint else [route.reason]


async def _customer_ids(session: AsyncSession, customers: list[CustomerIn], *, now: datetime) -> CustomerIds:
    """Find or create customers by their external id, refreshing PII that the source sent.

    An erased customer is found under their id or, when `forget` replaced an id that was itself PII,
    under its tombstone; either way they stay erased (see :class:`cxbot.ingest.common.CustomerIds`).
    """
    latest: dict[str, CustomerIn] = {c.id: c for c in customers}
    keys = list(latest)
    tombstones = tombstones_of(keys)
    columns = (
        Customer.id,
        Customer.external_id,
        Customer.name,
        Customer.email,
        Customer.phone,
        Customer.forgotten_at,
    )
    known: list[Any] = []
    for chunk in _chunks([*keys, *tombstones]):
        # Plain rows, not ORM objects: loading entities costs more than the query on a big import.
        known.extend((await session.execute(select(*columns).where(Customer.external_id.in_(chunk)))).all())
    found, stored = sort_customer_rows(known, tombstones, latest)
    ids = found.ids
    # Sorted, so two concurrent batches lock new customers in the same order and cannot deadlock.
    missing = [latest[k] for k in sorted(keys) if k not in ids]
    if missing:
        values = [
            {
                "external_id": c.id,
                "name": c.name,
                "email": c.email,
                "phone": c.phone,
                "created_at": now,
                "updated_at": now,
            }
            for c in missing
        ]
        stmt = insert_for(session, Customer.__table__).on_conflict_do_nothing(
            index_elements=[Customer.external_id]
        )
        for chunk in _chunks(values):
            returned = await session.execute(stmt.returning(Customer.id, Customer.external_id), list(chunk))
            ids.update({external_id: ident for ident, external_id in returned.all()})
        raced = [c.id for c in missing if c.id not in ids]
        if raced:
            rows = await session.execute(
                select(Customer.id, Customer.external_id).where(Customer.external_id.in_(raced))
            )
            ids.update({external_id: ident for ident, external_id in rows.all()})
    await refresh_customers(session, stored, latest, now=now)
    return found


class Ingestor:
    """Stores validated feedback and opens cases for the negative items, for one configuration.

    Built from the configuration, not by the runtime: :func:`ingestor_for` keeps one per loaded
    configuration, so its compiled rules and route cache are shared by every request.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self.config = router.config
        self._routes: dict[str, Route] = {}
        self._bulk = BulkWriter(router)

    def _route(self, item: FeedbackIn) -> Route:
        """Route one item; a configured touchpoint's route ignores the comment, so it is reused."""
        touchpoint = item.touchpoint
        if touchpoint is not None:
            cached = self._routes.get(touchpoint)
            if cached is not None:
                return cached
        route = self.router.route(touchpoint=touchpoint, comment=item.comment)
        if touchpoint is not None and route.known_touchpoint and len(self._routes) < ROUTE_CACHE_SIZE:
            self._routes[touchpoint] = route
        return route

    def _pending(self, index: int, item: FeedbackIn) -> PendingItem:
        """A routed item, to be created unless its key turns out to be stored."""
        route = self._route(item)
        warnings = [] if route.known_touchpoint else [route.reason]
        return PendingItem(index, item, route, ItemResult(index, "created", None, None, None, warnings))

    async def store(
        self,
        session: AsyncSession,
        items: Sequence[tuple[int, FeedbackIn]],
        *,
        now: datetime,
        open_cases: bool = True,
        bulk: bool = False,
    ) -> list[ItemResult]:
        """Store (index, item) pairs; a key repeated inside the batch is applied in order, as an update.

        `bulk` writes new feedback and cases with :class:`cxbot.ingest.bulk.BulkWriter` (large imports);
        the result and the rows written are the same either way.
        """
        results: list[ItemResult] = []
        rounds: list[list[tuple[int, FeedbackIn]]] = []
        if len({(item.source, item.external_id) for _, item in items}) == len(items):
            rounds.append(list(items))  # the usual case: every key once
        else:
            seen: dict[tuple[str, str], int] = {}
            for index, item in items:
                key = (item.source, item.external_id)
                depth = seen.get(key, 0)
                seen[key] = depth + 1
                if depth == len(rounds):
                    rounds.append([])
                rounds[depth].append((index, item))
        for batch in rounds:
            results.extend(await self._store_round(session, batch, now=now, open_cases=open_cases, bulk=bulk))
        if len(rounds) > 1:
            results.sort(key=_BY_INDEX)
        return results

    async def _store_round(
        self,
        session: AsyncSession,
        batch: list[tuple[int, FeedbackIn]],
        *,
        now: datetime,
        open_cases: bool,
        bulk: bool,
    ) -> list[ItemResult]:
        customers = [item.customer for _, item in batch if item.customer is not None]
        lookup: asyncio.Future[CustomerIds] | None = None
        if not customers:
            found = CustomerIds()
        elif bulk:
            # The customers are looked up while the items are routed, which needs no database.
            lookup = asyncio.ensure_future(self._bulk.customer_ids(session, customers, now=now))
            await asyncio.sleep(0)  # let it send its first statement
        else:
            found = await _customer_ids(session, customers, now=now)
        try:
            pending = [self._pending(index, item) for index, item in batch]
        except BaseException:
            if lookup is not None:
                await asyncio.wait([lookup])  # it ends before the transaction rolls back
            raise
        if lookup is not None:
            found = await lookup
        customer_ids = found.ids
        if found.erased:  # stored and counted, but nothing about them is kept (erasure lasts)
            erased = found.erased
            pending = [
                self._pending(p.index, without_erased_pii(p.item))  # routed again, comment masked
                if p.item.customer is not None and p.item.customer.id in erased
                else p
                for p in pending
            ]

        items = [p.item for p in pending]
        if bulk:  # one cheap probe first; the full rows only of the keys already stored
            items = await self._bulk.stored(session, items)
        existing = await self._existing(session, items) if items else {}
        fresh = [p for p in pending if (p.item.source, p.item.external_id) not in existing]
        negatives: list[tuple[PendingItem, int, str]] = []
        if fresh:
            insert = self._bulk.insert if bulk else self._insert
            raced = await insert(session, fresh, customer_ids, now=now, negatives=negatives)
            if raced:
                existing.update(await self._existing(session, [p.item for p in raced]))
        for p in pending:
            row = existing.get((p.item.source, p.item.external_id))
            if row is not None and p.result.feedback_id is None:
                await self._update(session, p, row, customer_ids, now=now, negatives=negatives)
        if open_cases and negatives:
            open_ = self._bulk.open_cases if bulk else self._open_cases
            await open_(session, negatives, customer_ids, now=now)
        return [p.result for p in pending]

    async def _existing(self, session: AsyncSession, items: list[FeedbackIn]) -> dict[tuple[str, str], Any]:
        by_source: dict[str, list[str]] = {}
        for item in items:
            by_source.setdefault(item.source, []).append(item.external_id)
        found: dict[tuple[str, str], Any] = {}
        columns = (
            Feedback.id,
            Feedback.source,
            Feedback.external_id,
            Feedback.metric,
            Feedback.score,
            Feedback.comment,
            Feedback.touchpoint,
            Feedback.customer_id,
            Feedback.tags,
            Feedback.is_negative,
        )
        # asyncpg prepares statements, and after five runs PostgreSQL may switch to a generic plan.
        # Before the first ANALYZE (a fresh table filling up in a bulk import) that plan scans
        # every row of the source instead of probing (source, external_id): 250 ms instead of 10.
        async with custom_plans(session):
            for source, external_ids in by_source.items():
                for chunk in _chunks(external_ids):
                    rows = await session.execute(
                        select(*columns).where(Feedback.source == source, Feedback.external_id.in_(chunk))
                    )
                    found.update({(row.source, row.external_id): row for row in rows})
        return found

    async def _insert(
        self,
        session: AsyncSession,
        fresh: list[PendingItem],
        customer_ids: dict[str, int],
        *,
        now: datetime,
        negatives: list[tuple[PendingItem, int, str]],
    ) -> list[PendingItem]:
        """Insert new feedback; return the items another writer inserted first."""
        rows = []
        verdicts = {}
        for p in fresh:
            verdict = self.router.judge(p.item, p.route)
            verdicts[id(p)] = verdict
            rows.append(
                {
                    "source": p.item.source,
                    "external_id": p.item.external_id,
                    "metric": p.item.metric,
                    "score": p.item.score,
                    "raw_score": p.item.raw_score if p.item.raw_score != p.item.score else None,
                    "comment": p.item.comment,
                    "touchpoint": p.item.touchpoint,
                    "touchpoint_key": p.route.touchpoint_key,
                    "team_key": p.route.team,
                    "customer_id": customer_ids.get(p.item.customer.id) if p.item.customer else None,
                    "sentiment": verdict.sentiment,
                    "is_negative": verdict.negative,
                    "tags": list(p.item.tags),
                    "received_at": p.item.received_at,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        stmt = (
            insert_for(session, Feedback.__table__)
            .on_conflict_do_nothing(index_elements=[Feedback.source, Feedback.external_id])
            .returning(Feedback.id, Feedback.source, Feedback.external_id)
        )
        inserted: dict[tuple[str, str], int] = {}
        for chunk in _chunks(rows):
            returned = await session.execute(stmt, list(chunk))
            inserted.update({(source, ext): ident for ident, source, ext in returned.all()})
        raced = []
        for p in fresh:
            ident = inserted.get((p.item.source, p.item.external_id))
            if ident is None:
                raced.append(p)
                continue
            p.result.feedback_id = ident
            verdict = verdicts[id(p)]
            if verdict.negative and verdict.reason:
                negatives.append((p, ident, verdict.reason))
        return raced

    async def _update(
        self,
        session: AsyncSession,
        p: PendingItem,
        row: Any,
        customer_ids: dict[str, int],
        *,
        now: datetime,
        negatives: list[tuple[PendingItem, int, str]],
    ) -> None:
        """Apply a later delivery of the same response; fields it leaves out keep their value."""
        item = p.item
        p.result.feedback_id = row.id
        wanted: dict[str, Any] = {"metric": item.metric, "score": item.score}
        if item.comment is not None:
            wanted["comment"] = item.comment
        if item.touchpoint is not None:
            wanted["touchpoint"] = item.touchpoint
        if item.customer is not None:
            wanted["customer_id"] = customer_ids.get(item.customer.id)
        if item.tags:
            wanted["tags"] = list(item.tags)
        changes = {name: value for name, value in wanted.items() if getattr(row, name) != value}
        if not changes:
            p.result.status = "duplicate"
            p.result.warnings = []
            return
        p.result.status = "updated"
        merged = FeedbackIn(
            source=item.source,
            external_id=item.external_id,
            metric=item.metric,
            score=item.score,
            comment=changes.get("comment", row.comment),
            touchpoint=changes.get("touchpoint", row.touchpoint),
            customer=item.customer,
            received_at=item.received_at,
            tags=item.tags,
        )
        route = self.router.route(touchpoint=merged.touchpoint, comment=merged.comment)
        verdict = self.router.judge(merged, route)
        changes.update(
            touchpoint_key=route.touchpoint_key,
            team_key=route.team,
            is_negative=verdict.negative or row.is_negative,
            sentiment=verdict.sentiment,
            raw_score=item.raw_score if item.raw_score != item.score else None,
            updated_at=now,
        )
        await session.execute(update(Feedback).where(Feedback.id == row.id).values(**changes))
        if "score" in changes:
            await _note_rating_change(session, row, item, now=now)
        p.route = route
        p.result.warnings = _route_warnings(merged, route)
        if verdict.negative and verdict.reason:
            negatives.append((p, row.id, verdict.reason))

    async def _open_cases(
        self,
        session: AsyncSession,
        negatives: list[tuple[PendingItem, int, str]],
        customer_ids: dict[str, int],
        *,
        now: datetime,
    ) -> None:
        """Open one case per negative feedback; the unique feedback_id makes this safe to repeat."""
        rows = []
        due: dict[str, tuple[datetime, datetime]] = {}
        for p, feedback_id, why in negatives:
            if p.route.team not in due:
                due[p.route.team] = deadlines(self.config, team=p.route.team, start=now)
            ack_due, resolve_due = due[p.route.team]
            rows.append(
                {
                    "feedback_id": feedback_id,
                    "customer_id": customer_ids.get(p.item.customer.id) if p.item.customer else None,
                    "team_key": p.route.team,
                    "touchpoint_key": p.route.touchpoint_key,
                    "title": case_title(p.item, p.route),
                    "state": "new",
                    "priority": "normal",
                    "routing_rule": p.route.rule,
                    "routing_reason": routing_reason(why, p.route),
                    "created_by": SYSTEM_ACTOR,
                    "escalation_level": 0,
                    "reopened_count": 0,
                    "created_at": now,
                    "updated_at": now,
                    "ack_due_at": ack_due,
                    "resolve_due_at": resolve_due,
                }
            )
        stmt = (
            insert_for(session, Case.__table__)
            .on_conflict_do_nothing(index_elements=[Case.feedback_id])
            .returning(Case.id, Case.feedback_id, Case.routing_reason)
        )
        opened: dict[int, int] = {}
        events = []
        for chunk in _chunks(rows):
            returned = await session.execute(stmt, list(chunk))
            for case_id, feedback_id, reason in returned.all():
                opened[feedback_id] = case_id
                events.append(
                    {
                        "case_id": case_id,
                        "at": now,
                        "actor": SYSTEM_ACTOR,
                        "kind": "created",
                        "detail": reason,
                    }
                )
        await raise_priority(session, config=self.config, case_ids=list(opened.values()), now=now)
        if events:
            await session.execute(insert_for(session, CaseEvent.__table__), events)
            team_of = {row["feedback_id"]: row["team_key"] for row in rows}
            await queue_case_cards(session, [(c, team_of[f]) for f, c in opened.items()], now=now)
        for p, feedback_id, _ in negatives:
            if feedback_id in opened:
                p.result.case = f"CX-{opened[feedback_id]}"


def _score_text(metric: str, score: float | None) -> str:
    return "no score" if score is None else f"{metric.upper()} {score:g}"


async def _note_rating_change(session: AsyncSession, row: Any, item: FeedbackIn, *, now: datetime) -> None:
    """A customer who changes their rating (Intercom, Zendesk) tells the open case: a timeline event
    and a card refresh, so the team does not chase a score that is no longer true."""
    case = (
        await session.execute(
            select(Case.id, Case.team_key).where(
                Case.feedback_id == row.id, Case.state.not_in(("resolved", "closed"))
            )
        )
    ).first()
    if case is None:
        return
    detail = (
        f"Rating changed from {_score_text(row.metric, row.score)} to {_score_text(item.metric, item.score)}"
    )
    event_id = (
        await session.execute(
            insert_for(session, CaseEvent.__table__)
            .values(case_id=case.id, at=now, actor=SYSTEM_ACTOR, kind="rating_changed", detail=detail)
            .returning(CaseEvent.id)
        )
    ).scalar_one()
    await queue_case_update(
        session, case_id=case.id, team_key=case.team_key, event_id=event_id, text=detail, now=now
    )


async def ingest_items(
    session: AsyncSession,
    ingestor: Ingestor,
    raw_items: Sequence[Any],
    *,
    now: datetime,
    default_source: str | None = None,
    open_cases: bool = True,
    bulk: bool = False,
) -> list[ItemResult]:
    """Validate raw items and store the valid ones; invalid ones get an `error` result with the reason.

    An item that is already a :class:`FeedbackIn` was validated by its caller (the CSV importer's
    lean path), all but its date against `now`, which is checked here as validate_item would.
    """
    valid: list[tuple[int, FeedbackIn]] = []
    errors: list[ItemResult] = []
    for index, raw in enumerate(raw_items):
        if type(raw) is FeedbackIn:
            received = raw.received_at
            problem = None if received is None else limits.received_at_problem(received, now=now)
            if problem is None:
                valid.append((index, raw))
            else:
                errors.append(ItemResult(index=index, status="error", reason=f"received_at: {problem}"))
            continue
        try:
            valid.append((index, validate_item(raw, now=now, default_source=default_source)))
        except ItemError as error:
            errors.append(ItemResult(index=index, status="error", reason=str(error)))
    stored = await ingestor.store(session, valid, now=now, open_cases=open_cases, bulk=bulk) if valid else []
    return sorted([*stored, *errors], key=_BY_INDEX) if errors else stored


#: Configurations whose ingestor is kept: a process runs one, a test suite a few at a time.
KEPT_INGESTORS = 8
_ingestors: OrderedDict[int, tuple[Config, Ingestor]] = OrderedDict()


def ingestor_for(config: Config) -> Ingestor:
    """The ingestor of a loaded configuration, built on first use (the entry holds the config, so
    its id is not reused while the entry is kept)."""
    key = id(config)
    kept = _ingestors.get(key)
    if kept is not None and kept[0] is config:
        _ingestors.move_to_end(key)
        return kept[1]
    ingestor = Ingestor(Router(config))
    _ingestors[key] = (config, ingestor)
    while len(_ingestors) > KEPT_INGESTORS:
        _ingestors.popitem(last=False)
    return ingestor
