"""Delivering the outbox (design.md §9): claim due rows, hand them to the platform's notifier, record.

Flows write `outbox` rows in the same transaction as the state change; this worker delivers them
later. The order of work per batch is what makes it safe:

1. **Claim** in one short statement: due `pending` rows (or `sending` rows whose lease ran out after a
   crash) become `sending` with a lease, measured from the clock at the claim. The lease is short
   (15 s) so a crashed replica's rows move on within seconds, and renewed while the round still holds
   them (before a delivery once half of it is gone, and on a heartbeat while a slow call runs).
   PostgreSQL takes them `FOR UPDATE SKIP LOCKED`, so replicas never claim the same row; SQLite has a
   single writer and the one UPDATE is atomic. Only the oldest open row of each (case, platform,
   destination) is claimable, so a case's card is posted before its thread lines and never twice by
   two workers.
2. **Deliver** with no transaction open and no lock held.
   Each send first takes its slot in its destination's pace (cxbot.outbox.pacing): sends to one
   channel keep to its rate while other channels go on, and a send that would wait more than a
   quarter of a second goes back to `pending` with the time its slot comes, so the round is not
   held up.
3. **Record** the result in a second short transaction: `sent`; back to `pending` after a backoff
   that honours Retry-After (which also holds the rest of that destination, or of the platform
   when the notifier says the limit was the platform's); or `dead` for a permanent error (or too
   many attempts), with a report queued for the team's channel or the admins. Dead rows are never retried.
   A Retry-After is kept where every worker sees it until it has passed: the worker that got it
   writes it to `outbox_holds` at once, in a transaction of its own (`rows.hold`), so no replica
   claims the destination's rows, and a row claimed before it is put back when it is read for
   delivery; the worker that got it also keeps it in memory (`holds`), which its next call to that
   destination sees: calls to one destination go one at a time (`Pacer.turn`), so none is on its
   way when a 429 comes. A sent row whose record fails because the database is briefly away is
   recorded again, not left to its lease.

Delivery is at least once, and once where the platform lets us look: a crash between a successful
call and step 3 leaves the row `sending` until its lease expires. The claim that takes it then keeps
the lost lease's end (`lost_lease_until`), and its delivery carries `maybe_sent_since`: a notifier
that can (Slack: the channel's history, by each message's metadata) looks for the earlier post and
reports it instead of posting again. Elsewhere that row is sent again (bench/soak.py kills a replica
mid-run and counts the duplicates).

Every time the worker writes (lease, retry time, platform pause, `sent_at`) is read from the clock at
that moment, not once per run: a round of slow posts takes seconds, and a Retry-After measured from
the start of the run would let another replica send again too early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, exists, false, func, null, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cxbot import markup
from cxbot.cases.view import load_case_view
from cxbot.db import transaction
from cxbot.models import CasePost, OutboxMessage
from cxbot.outbox.contract import (
    CASE_KINDS,
    CASE_THREAD,
    CHAT_KINDS,
    OPEN_STATUSES,
    REPORT,
    Delivery,
    Notifier,
    OutcomeRecorder,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from cxbot.outbox.inbox import KEEP_INBOUND_EVENTS, forget_inbound_events
from cxbot.outbox.pacing import CHANNEL_PACE, MAX_WAIT_SECONDS, Pace, Pacer
from cxbot.outbox.queue import queue_message
from cxbot.outbox.rows import (
    bind_post,
    bury_destination,
    destination_held,
    forget_holds,
    hold,
    hold_ends,
    later_refreshes,
    result_ref,
    supersede,
)

if TYPE_CHECKING:  # runtime → ingest → outbox: only the type is needed here
    from cxbot.runtime import Runtime


log = logging.getLogger(__name__)


PRUNE_EVERY = timedelta(hours=1)
#: Pauses between tries to record a row that was sent while the database is away (well inside the lease).
RECORD_RETRY_PAUSES = (0.25, 0.5, 1.0, 2.0, 2.0)
#: How far before a lost lease's last renewal its post may have gone out: a claimed row can wait in
#: its lane (pace, a slow channel) for a while before it is posted, and the lease is renewed meanwhile.
LOST_LEASE_LOOKBACK = timedelta(minutes=5)
WAKE_GAP_SECONDS = 0.2

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff (base · 2^(attempt-1), capped); a platform's Retry-After always wins if later."""

    base: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(minutes=30)
    max_attempts: int = 8

    def delay(self, attempt: int, retry_after: float | None) -> timedelta:
        backoff = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        if retry_after is not None:
            return max(timedelta(seconds=retry_after), timedelta(seconds=1))
        return backoff


@dataclass(slots=True)
class RunStats:
    """What one `run_once` did, for logs, metrics and tests."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    reports: int = 0
    fenced: int = 0
    #: Card refreshes not sent because an earlier refresh of the same card already showed their state.
    superseded: int = 0

    def add(self, other: RunStats) -> None:
        for name in ("claimed", "sent", "retried", "dead", "released", "reports", "fenced", "superseded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class _Outcome:
    status: str  # sent | retry | dead | released
    result: dict[str, Any] | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    report: PermanentDeliveryError | None = None
    counted: bool = True
    message_ref: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Claim:
    """The rows one round still holds and the lease they are held by (the fence for every write)."""

    rows: dict[int, OutboxMessage]
    until: datetime
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OutboxWorker:
    """Delivers due outbox rows through the notifier registered for each platform."""

    def __init__(
        self,
        runtime: Runtime,
        notifiers: Mapping[str, Notifier],
        *,
        batch_size: int = 25,
        lease: timedelta = timedelta(seconds=15),
        retry: RetryPolicy | None = None,
        max_rounds: int = 20,
        concurrency: int = 8,
        pacer: Pacer | None = None,
        max_pace_wait: float = MAX_WAIT_SECONDS,
        paced: bool = False,
        record_retry_pauses: tuple[float, ...] = RECORD_RETRY_PAUSES,
        rolling: bool = True,
    ) -> None:
        self.runtime = runtime
        #: Rows done (and places free) before the next claim while others are still in flight: a third
        #: of a batch, or (not `rolling`) the whole batch, a claim only once a round is done. SQLite
        #: runs that way: every claim queues for its one connection in front of the requests
        #: (measured in docs/performance.md).
        self.claim_every = max(1, batch_size // 3) if rolling else batch_size
        self.notifiers = dict(notifiers)
        self.batch_size = batch_size
        self.lease = lease
        self.retry = retry or RetryPolicy()
        self.max_rounds = max_rounds
        #: Posts in flight at once in a round (each to a different case or destination).
        self.concurrency = concurrency
        #: Sends per destination when `paced` (as `serve` runs it; a worker driven round by round on
        #: a test's frozen clock is not): a notifier's `pace`, else a chat channel's for chat kinds
        #: (contacts go to a provider, whose limits its own Retry-After tells). Retry-After holds
        #: apply either way.
        self.paces: dict[str, Pace | None] = {
            platform: getattr(notifier, "pace", CHANNEL_PACE if notifier.kinds & CHAT_KINDS else None)
            if paced
            else None
            for platform, notifier in self.notifiers.items()
        }
        #: All of a platform's sends together, for a notifier that names an `app_pace` (Teams).
        self.app_paces: dict[str, Pace | None] = {
            platform: getattr(notifier, "app_pace", None) if paced else None
            for platform, notifier in self.notifiers.items()
        }
        self.pacer = pacer or Pacer()
        self.max_pace_wait = max_pace_wait
        self.record_retry_pauses = record_retry_pauses
        #: When (pacer seconds) the soonest row put back for its pace or hold falls due again.
        self.due_again: float | None = None
        #: Retry-After holds this worker got, by (platform, destination; None for the whole platform),
        #: on the runtime's clock: known before the next call to that destination goes, with no
        #: database read (the table `outbox_holds` tells the other workers, a moment later).
        self.holds: dict[tuple[str, str | None], datetime] = {}

    async def run_once(self, *, now: datetime | None = None) -> RunStats:
        """Deliver everything due, claiming again as lanes free up (a card unblocks its thread lines).

        `now` moves the worker's clock to that instant (the console's jumps ahead); time still runs
        from there as the runtime's clock does, and every write reads it afresh.
        """
        clock = self._clock_from(now)
        total = RunStats()
        self.due_again = None
        if self.notifiers:
            await _Rounds(self, clock, total).run()
        return total

    async def run_forever(self, stop: asyncio.Event, *, idle_seconds: float = 2.0) -> None:
        """The `serve` loop until `stop` is set: a run as soon as rows are queued here, else every
        `idle_seconds` (retries falling due, rows another replica queued)."""
        pruned_at: datetime | None = None
        queued = self.runtime.outbox_queued
        # Woken by every commit that queued rows, at most this often: at 90 commits/s a run per commit
        # spent the database on empty claims (measured on PostgreSQL, docs/performance.md).
        gap = min(WAKE_GAP_SECONDS, idle_seconds)
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            queued.clear()  # rows queued from here on wake the next run, even while this one runs
            try:
                await self.run_once()
                now = self.runtime.clock()
                if pruned_at is None or now - pruned_at >= PRUNE_EVERY:
                    await forget_inbound_events(self.runtime, before=now - KEEP_INBOUND_EVENTS)
                    async with transaction(self.runtime.sessions) as session:
                        await forget_holds(session, before=now)
                    self.pacer.forget_idle()
                    pruned_at = now
            except Exception:  # one bad round must not stop delivery for good
                log.exception("outbox round failed")
            wait = idle_seconds
            if self.due_again is not None:  # a row put back for its pace falls due before the poll
                wait = min(wait, max(0.0, self.due_again - self.pacer.monotonic()))
            await first_of(stop, queued, timeout=wait)
            rest = started + gap - loop.time()
            if rest > 0 and not stop.is_set():
                await first_of(stop, timeout=rest)

    def _clock_from(self, now: datetime | None) -> Clock:
        if now is None:
            return self.runtime.clock
        start = self.runtime.clock()
        return lambda: now + (self.runtime.clock() - start)

    # -- one round ---------------------------------------------------------------------------

    async def _deliver_held(
        self,
        claim: _Claim,
        row_id: int,
        clock: Clock,
        stats: RunStats,
        slots: asyncio.Semaphore,
        broken: dict[tuple[str, str | None], str],
    ) -> None:
        """One row: its pace, its destination's turn, a slot, then the post and the record.

        A Retry-After that comes while the row waits (`self.holds`) puts it back, checked again just
        before the post, after the case was read: that read can take a while under load. The turn
        (one call in flight per destination) is waited for outside the slot, so rows waiting for a
        slow channel do not hold the other channels' places, and handed on once the answer and any
        hold it brings are known."""
        row = claim.rows.get(row_id)
        if row is None:
            return
        outcome = None
        if (row.platform, row.destination) in broken:
            outcome = _Outcome("dead", error=broken[(row.platform, row.destination)], counted=False)
        else:
            wait = self.pacer.reserve(
                row.platform,
                row.destination,
                self.paces.get(row.platform),
                max_wait=self.max_pace_wait,
                app_pace=self.app_paces.get(row.platform),
            )
            if wait > self.max_pace_wait:  # its slot is far off: put it back for then, move on
                outcome = self._put_back(clock, wait)
            elif wait > 0:
                await asyncio.sleep(wait)
        turn = self.pacer.turn(row.platform, row.destination if outcome is None else None)
        async with turn as next_may_go, slots:
            until = self._held_until(row.platform, row.destination, clock())
            if outcome is None and until is not None:  # a Retry-After came meanwhile
                outcome = self._put_back(clock, (until - clock()).total_seconds())
            if claim.until - clock() < self.lease / 2:  # a slow round: keep what it still holds
                await self._renew(claim, clock, stats)
            if row_id not in claim.rows:
                return  # the lease ran out anyway and another worker has it now
            if outcome is None:
                outcome = await self._deliver(row, clock)
                scope, held_until = outcome.extra.get("hold"), outcome.extra.get("hold_until")
                key = (row.platform, row.destination if scope == "destination" else None)
                if held_until is not None:
                    earlier = self.holds.get(key)
                    if earlier is None or earlier < held_until:  # a hold only lengthens
                        self.holds[key] = held_until
                next_may_go()  # the next call to this destination sees the hold, if one came
                if held_until is not None:
                    await self._share_hold(key, held_until)
                if outcome.report is not None and outcome.report.scope == "destination":
                    broken[(row.platform, row.destination)] = f"destination_dead: see outbox {row.id}"
            await self._record_held(claim, row, outcome, clock, stats)

    async def _share_hold(self, key: tuple[str, str | None], until: datetime) -> None:
        """Tell every worker of a Retry-After at once: not with the row's record, which waits behind
        the claim's other records (bench/soak.py had the other replica post 0.6 s into a hold)."""
        try:
            async with transaction(self.runtime.sessions) as session:
                await hold(session, key[0], key[1], until=until)
        except DBAPIError as error:  # the row still waits for it, and so does this worker
            log.warning("Retry-After on %s %s not shared with other workers: %s", key[0], key[1], error)

    def _held_until(self, platform: str, destination: str | None, now: datetime) -> datetime | None:
        """When the Retry-After on this destination (or its whole platform) ends, if it has not yet."""
        ends = [self.holds.get((platform, None))]
        if destination is not None:
            ends.append(self.holds.get((platform, destination)))
        return max((end for end in ends if end is not None and end > now), default=None)

    def _forget_holds(self, now: datetime) -> None:
        for key, until in list(self.holds.items()):
            if until <= now:
                del self.holds[key]

    def _put_back(self, clock: Clock, seconds: float) -> _Outcome:
        """Back to pending, due when its pace or hold allows; the run loop wakes for it then."""
        self._due_in(seconds)
        return _Outcome("released", next_attempt_at=clock() + timedelta(seconds=seconds), counted=False)

    async def _record_held(
        self, claim: _Claim, row: OutboxMessage, outcome: _Outcome, clock: Clock, stats: RunStats
    ) -> None:
        """Record under the claim's lock. A sent row's record is tried again while the database is
        briefly away (a PostgreSQL restart, a dropped connection): given up, the row would stay
        `sending` until its lease ran out and then be posted a second time."""
        row_id = row.id
        async with claim.lock:
            now = clock()
            pauses = self.record_retry_pauses if outcome.status == "sent" else ()
            for pause in (*pauses, None):
                try:
                    await self._record(row, outcome, claim.until, now, stats)
                    break
                except DBAPIError as error:
                    if pause is None:
                        raise
                    log.warning(
                        "outbox %s sent, recording it failed (%s); again in %s s", row_id, error, pause
                    )
                    await asyncio.sleep(pause)
            claim.rows.pop(row_id, None)

    async def _heartbeat(self, claim: _Claim, clock: Clock, stats: RunStats) -> None:
        """Renew the lease while one call takes long (a slow platform), so no replica takes it over."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            await self._renew(claim, clock, stats)

    async def _renew(self, claim: _Claim, clock: Clock, stats: RunStats) -> None:
        """Extend the lease of the rows still held, fenced on the old one; drop any lost meanwhile."""
        async with claim.lock:
            if not claim.rows:
                return
            until = clock() + self.lease
            async with transaction(self.runtime.sessions) as session:
                kept = await session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.id.in_(sorted(claim.rows)),
                        OutboxMessage.status == "sending",
                        OutboxMessage.next_attempt_at == claim.until,
                    )
                    .values(next_attempt_at=until)
                    .returning(OutboxMessage.id)
                    .execution_options(synchronize_session=False)
                )
                held = set(kept.scalars())
            for lost in set(claim.rows) - held:
                log.warning("outbox %s: lease ran out before it was renewed; leaving it", lost)
                del claim.rows[lost]
                stats.fenced += 1
            claim.until = until

    def _claimable(self, now: datetime) -> Any:
        """Rows a notifier here delivers, except to destinations whose pace has no slot soon or that
        are under a Retry-After: claimed, they would only be put back (an UPDATE each, round after
        round, while the backlog grows)."""
        conditions = []
        self._forget_holds(now)
        for platform, notifier in self.notifiers.items():
            condition = and_(
                OutboxMessage.platform == platform, OutboxMessage.kind.in_(sorted(notifier.kinds))
            )
            if (platform_hold := self._held_until(platform, None, now)) is not None:
                self._due_in((platform_hold - now).total_seconds())
                continue  # the whole platform is under a Retry-After
            full = self.pacer.saturated(platform, self.paces.get(platform), beyond=self.max_pace_wait)
            for (held_platform, destination), until in self.holds.items():
                if held_platform == platform and destination is not None:
                    full[destination] = min(full.get(destination, math.inf), (until - now).total_seconds())
            if full:
                condition = and_(
                    condition,
                    or_(OutboxMessage.destination.is_(None), OutboxMessage.destination.not_in(sorted(full))),
                )
                self._due_in(min(full.values()))
            conditions.append(condition)
        return or_(*conditions) if conditions else false()

    def _due_in(self, seconds: float) -> None:
        """Wake the run loop in `seconds` (pacer time) for rows left out or put back until then."""
        due = self.pacer.monotonic() + seconds
        self.due_again = due if self.due_again is None else min(self.due_again, due)

    async def _claim(self, clock: Clock, limit: int) -> _Claim:
        now = clock()
        earlier = aliased(OutboxMessage)
        blocked_by_earlier = exists().where(
            earlier.case_id == OutboxMessage.case_id,
            earlier.platform == OutboxMessage.platform,
            earlier.destination == OutboxMessage.destination,
            earlier.id < OutboxMessage.id,
            earlier.status.in_(OPEN_STATUSES),
        )
        due = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status.in_(OPEN_STATUSES),
                OutboxMessage.next_attempt_at <= now,
                self._claimable(now),
                ~blocked_by_earlier,
                ~destination_held(now),  # a Retry-After another worker got
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=OutboxMessage)
        )
        until = now + self.lease
        async with transaction(self.runtime.sessions) as session:
            rows = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(due.scalar_subquery()))
                .values(
                    status="sending",
                    next_attempt_at=until,
                    # A row still `sending` here lost its lease unrecorded: keep when (the first time).
                    lost_lease_until=case(
                        (
                            OutboxMessage.status == "sending",
                            func.coalesce(OutboxMessage.lost_lease_until, OutboxMessage.next_attempt_at),
                        ),
                        else_=OutboxMessage.lost_lease_until,
                    ),
                )
                .returning(OutboxMessage)
                .execution_options(synchronize_session=False)
            )
            claimed = {row.id: row for row in rows.scalars()}
        return _Claim(claimed, until)

    async def _deliver(self, row: OutboxMessage, clock: Clock) -> _Outcome:
        notifier = self.notifiers[row.platform]
        delivery, supersedes, shared_hold = await self._prepare(row, clock())
        now = clock()
        holds = (self._held_until(row.platform, row.destination, now), shared_hold)
        if (until := max((t for t in holds if t is not None and t > now), default=None)) is not None:
            return self._put_back(clock, (until - now).total_seconds())  # a 429 came meanwhile
        try:
            result = await notifier.deliver(delivery)
        except TransientDeliveryError as error:  # Retry-After counts from when the answer arrived
            outcome = self._transient(row, clock(), str(error), error.retry_after, error.hold)
            outcome.message_ref = result_ref(error.result)
            return outcome
        except PermanentDeliveryError as error:
            return _Outcome(
                "dead", error=f"{error.code}: {error}", report=error, message_ref=result_ref(error.result)
            )
        except Exception as error:  # a bug or an unmapped network failure: retry, loudly
            log.exception("outbox %s: unexpected delivery failure", row.id)
            return self._transient(row, clock(), f"{type(error).__name__}: {error}", None)
        # A refresh that edited the card it was given binds nothing new: no write for an unchanged ref.
        ref = result_ref(result)
        outcome = _Outcome("sent", result=result, message_ref=ref if ref != delivery.message_ref else None)
        outcome.extra["supersedes"] = supersedes
        return outcome

    def _transient(
        self,
        row: OutboxMessage,
        now: datetime,
        error: str,
        retry_after: float | None,
        scope: str = "destination",
    ) -> _Outcome:
        attempt = row.attempts + 1
        when = now + self.retry.delay(attempt, retry_after)
        if attempt >= self.retry.max_attempts:
            gave_up = PermanentDeliveryError("gave_up", f"gave up after {attempt} attempts: {error}")
            outcome = _Outcome("dead", error=f"gave_up: {error}", report=gave_up)
        else:
            outcome = _Outcome("retry", error=error, next_attempt_at=when)
        if retry_after is not None:  # what the rate limit holds (the destination, or the platform),
            outcome.extra.update(hold=scope, hold_until=when)  # even when this row gives up
        return outcome

    async def _prepare(
        self, row: OutboxMessage, now: datetime
    ) -> tuple[Delivery, list[int], datetime | None]:
        """Read what the notifier needs (case snapshot, card reference) in a short read-only session,
        and whether another worker got a Retry-After for the destination since this row was claimed.

        For a card refresh, also the later refreshes of the same card already queued: they are read
        first, so the snapshot read after them includes their changes, and once this card is sent
        they have nothing left to show (the card always shows the case as it is).
        """
        case_view = None
        message_ref = None
        supersedes: list[int] = []
        held_until = None
        async with self.runtime.sessions() as session:
            if row.case_id is not None and row.kind in CASE_KINDS:
                if row.kind == "case.card":
                    supersedes = await later_refreshes(session, row)
                if row.destination is not None:
                    message_ref = await session.scalar(
                        select(CasePost.message_ref).where(
                            CasePost.case_id == row.case_id,
                            CasePost.platform == row.platform,
                            CasePost.destination == row.destination,
                        )
                    )
                # A thread line under a posted card needs only to know the case is still there; one
                # whose card was never posted posts the card first, so it needs the whole view.
                brief = row.kind == CASE_THREAD and message_ref is not None
                case_view = await load_case_view(
                    session, row.case_id, config=self.runtime.config, now=now, brief=brief
                )
            # Last, after the case reads (slow under load): a 429 another replica recorded meanwhile
            # is seen (bench/soak.py had calls 0.25-0.65 s into the other replica's Retry-After).
            held_until = await hold_ends(session, row.platform, row.destination, now)
        return (
            Delivery(
                id=row.id,
                kind=row.kind,
                platform=row.platform,
                destination=row.destination,
                payload=dict(row.payload or {}),
                attempt=row.attempts + 1,
                case=case_view,
                message_ref=message_ref,
                maybe_sent_since=(
                    row.lost_lease_until - self.lease - LOST_LEASE_LOOKBACK
                    if row.lost_lease_until is not None
                    else None
                ),
            ),
            supersedes,
            held_until,
        )

    async def _record(
        self, row: OutboxMessage, outcome: _Outcome, held_until: datetime, now: datetime, stats: RunStats
    ) -> None:
        values: dict[str, Any] = {"attempts": row.attempts + (1 if outcome.counted else 0)}
        if outcome.status == "sent":
            values.update(
                status="sent", sent_at=now, result=outcome.result, last_error=None, lost_lease_until=None
            )
        elif outcome.status == "dead":
            values.update(status="dead", last_error=outcome.error, lost_lease_until=None)
        else:
            values.update(status="pending", next_attempt_at=outcome.next_attempt_at, result=null())
            if outcome.status == "retry":
                values["last_error"] = outcome.error
        async with transaction(self.runtime.sessions) as session:
            # Fenced on our claim (status, lease and attempts as we claimed them): if the lease ran out
            # and another worker took the row meanwhile, its result is the one that counts.
            fenced = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row.id,
                    OutboxMessage.status == "sending",
                    OutboxMessage.next_attempt_at == held_until,
                    OutboxMessage.attempts == row.attempts,
                )
                .values(**values)
                .returning(OutboxMessage.id)
                .execution_options(synchronize_session=False)
            )
            if fenced.first() is None:
                log.warning("outbox %s was claimed again after its lease ran out; leaving it", row.id)
                stats.fenced += 1
                return
            if outcome.message_ref and row.case_id is not None and row.destination is not None:
                await bind_post(session, row, outcome.message_ref, now)
            if outcome.status == "sent" and outcome.extra.get("supersedes"):
                stats.superseded += await supersede(session, row, outcome.extra["supersedes"], now)
            # A notifier may keep its own record (customer contacts: the contact row and the case card),
            # in this transaction; it then also owns telling people about a dead message.
            notifier = self.notifiers.get(row.platform)
            recorder = notifier if isinstance(notifier, OutcomeRecorder) else None
            if recorder is not None and outcome.status != "released":
                await recorder.record_outcome(
                    session,
                    payload=dict(row.payload or {}),
                    status=outcome.status,
                    attempts=values["attempts"],
                    result=outcome.result,
                    error=str(outcome.report) if outcome.report is not None else outcome.error,
                    now=now,
                )
            if outcome.status == "dead":
                log.warning(
                    "outbox %s (%s to %s) is dead: %s", row.id, row.kind, row.destination, outcome.error
                )
                if outcome.report is not None and recorder is None:
                    stats.reports += await self._queue_report(session, row, outcome.report, now)
                    if outcome.report.scope == "destination":
                        stats.dead += await bury_destination(session, row, now)
        counter = {"sent": "sent", "dead": "dead", "retry": "retried", "released": "released"}[outcome.status]
        setattr(stats, counter, getattr(stats, counter) + 1)
        if outcome.status in ("sent", "dead"):
            name = "delivered" if outcome.status == "sent" else "dead"
            self.runtime.counters.inc(f"cxbot_outbox_{name}_total", platform=row.platform, kind=row.kind)
        if outcome.status == "sent" and row.created_at is not None:  # queued to delivered, for /metrics
            waited = (now - row.created_at).total_seconds()
            self.runtime.counters.observe(
                "cxbot_outbox_delivery_seconds", max(0.0, waited), platform=row.platform
            )

    async def _queue_report(
        self, session: AsyncSession, row: OutboxMessage, error: PermanentDeliveryError, now: datetime
    ) -> int:
        """Tell a person about a dead message: the team's channel, or the admins if that is what broke."""
        if row.kind == REPORT:
            return 0  # a report that cannot be delivered is only logged; no report about a report
        if error.scope == "credentials":
            log.error(
                "%s credentials rejected (%s): nothing can be posted on %s until they are fixed",
                row.platform,
                error.code,
                row.platform,
            )
            return 0
        what = f"CX-{row.case_id}" if row.case_id else f"outbox message {row.id}"
        text = (
            f"{markup.alert('warning')} cxbot could not deliver a {row.kind} message for {what} to "
            f"{row.destination} on {row.platform}: {markup.plain(error.code)}. It will not be retried."
        )
        config = self.runtime.config
        # Admins are people: each is told at their id on the platform that failed (if they have one).
        admins = [i for a in config.admins if (i := config.platform_id(config.person_of(a), row.platform))]
        if error.scope == "destination" or error.code == "gave_up":
            targets = admins
            link = markup.command(f"{self.runtime.config.slash_command} team link")
            text += f" Check that the channel exists and that cxbot is a member (or {link} again)."
        else:
            targets = [row.destination] if row.destination else admins
        queued = 0
        for target in targets:
            queued += await queue_message(
                session,
                kind=REPORT,
                platform=row.platform,
                destination=target,
                payload={"text": text, "dead_id": row.id, "code": error.code},
                subject=(row.id, target),
                now=now,
            )
        if not targets:
            log.error("no admin configured to report dead outbox message %s to", row.id)
        return queued


LaneKey = tuple[str, str | None, int | None]


class _Rounds:
    """One `run_once`: claims, and the lanes delivering what they claimed.

    A lane is one (platform, destination, case): its rows go one after another, so a card is posted
    before its thread lines and case-less rows to one destination (digests, reports) keep their order.
    Lanes of different claims run side by side: once `claim_every` rows are done and as many places
    free (or nothing is in flight), the next claim is made, so new cards need not wait for a
    round's slowest lane (a post, a slow database connection). Each claim keeps its own lease, renewed
    by its own heartbeat and fencing each of its writes; a row claimed for a lane that is still busy
    joins the end of that lane. At most `batch_size` rows are
    held at once. A run ends when nothing is in flight and nothing was sent or buried since the last
    claim (only that can unblock more rows: the next of its case, a report).
    """

    def __init__(self, worker: OutboxWorker, clock: Clock, stats: RunStats) -> None:
        self.worker = worker
        self.clock = clock
        self.stats = stats
        self.slots = asyncio.Semaphore(worker.concurrency)
        self.broken: dict[tuple[str, str | None], str] = {}
        self.lanes: dict[LaneKey, list[tuple[_Claim, int]]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.heartbeats: dict[int, asyncio.Task[None]] = {}
        self.in_flight = 0
        self.progress = asyncio.Event()
        self.failure: BaseException | None = None
        #: Places freed (and rows done) before the next claim while rows are still in flight.
        self.step = worker.claim_every
        #: Rows claimed, and claims made, per run at most (as `max_rounds` full rounds would).
        self.budget = worker.max_rounds * worker.batch_size

    def _finished(self) -> int:
        return self.stats.sent + self.stats.dead

    async def run(self) -> None:
        worker = self.worker
        claims = 0
        finished_at_claim = 0
        full = True  # the first claim is always made
        try:
            while True:
                finished = self._finished() - finished_at_claim
                free = worker.batch_size - self.in_flight
                worth = (
                    self.failure is None
                    and claims < self.budget
                    and self.stats.claimed < self.budget
                    and (full or finished > 0)
                )
                # Claim with nothing in flight, or once `step` places are free and as many rows done
                # (or the last claim was full): not after every row, each claim costs a statement.
                if worth and (self.in_flight == 0 or (free >= self.step and (full or finished >= self.step))):
                    finished_at_claim = self._finished()
                    claim = await worker._claim(self.clock, free)
                    claims += 1
                    self.stats.claimed += len(claim.rows)
                    full = len(claim.rows) >= free
                    self._start(claim)
                    continue
                if self.in_flight == 0:
                    break
                self.progress.clear()
                await self.progress.wait()
        except asyncio.CancelledError:
            for task in self.tasks:
                task.cancel()
            raise
        finally:
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            for heartbeat in self.heartbeats.values():
                heartbeat.cancel()
            for heartbeat in self.heartbeats.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
        if self.failure is not None:
            raise self.failure

    def _start(self, claim: _Claim) -> None:
        if not claim.rows:
            return
        self.heartbeats[id(claim)] = asyncio.create_task(
            self.worker._heartbeat(claim, self.clock, self.stats)
        )
        for row_id in sorted(claim.rows):
            row = claim.rows[row_id]
            key = (row.platform, row.destination, row.case_id)
            self.in_flight += 1
            queued = self.lanes.get(key)
            if queued is not None:  # that lane is still delivering: after its rows, in order
                queued.append((claim, row_id))
                continue
            self.lanes[key] = [(claim, row_id)]
            task = asyncio.create_task(self._lane(key))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _lane(self, key: LaneKey) -> None:
        queued = self.lanes[key]
        while queued:
            claim, row_id = queued.pop(0)
            try:
                await self.worker._deliver_held(
                    claim, row_id, self.clock, self.stats, self.slots, self.broken
                )
            except Exception as error:  # the run ends with it once the other lanes are done
                self.failure = self.failure or error
                self.in_flight -= len(queued)
                queued.clear()
            finally:
                self.in_flight -= 1
                if not claim.rows and (heartbeat := self.heartbeats.pop(id(claim), None)):
                    heartbeat.cancel()
                self.progress.set()
        del self.lanes[key]


async def first_of(*events: asyncio.Event, timeout: float) -> None:
    """Return when any of `events` is set, or after `timeout` seconds."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
