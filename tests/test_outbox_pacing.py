"""Per-destination pacing and Retry-After in the outbox worker (issue #15).

Two teams, each with its own channel, reached through an in-memory notifier on a frozen clock; the
pacer runs on a monotonic clock the test moves by hand, and a wait longer than `max_pace_wait` puts
the row back for later instead of sleeping, so nothing here waits on real time. What is checked is
what a channel receives (and when) and what the outbox rows hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from cxbot.authz import actor_for
from cxbot.commands.dispatch import Where, run_text
from cxbot.config import Config, parse_config
from cxbot.models import OutboxHold, OutboxMessage
from cxbot.outbox.contract import CHAT_KINDS, Delivery, TransientDeliveryError
from cxbot.outbox.pacing import APP_PACE, CHANNEL_PACE, CONVERSATION_PACE, Pace, Pacer
from cxbot.outbox.worker import OutboxWorker, RetryPolicy
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.conftest import API_KEY
from tests.support.clock import FrozenClock

PLATFORM = "msteams"
BUSY = "19:busy00000000000000000000000000@thread.tacv2"
QUIET = "19:quiet0000000000000000000000000@thread.tacv2"
MARA = "0b6c8f2e-4d1a-4c7e-9f3b-2a5d6e7f8a91"
OPENED = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


class Monotonic:
    """The pacer's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True, slots=True)
class Sent:
    destination: str | None
    kind: str
    case: int | None
    text: str
    at: float  # the pacer's clock when the post reached the channel


class Channels:
    """The platform as channels see it: what arrived where and when; `answer` may fail a post."""

    platform = PLATFORM
    kinds = CHAT_KINDS

    def __init__(self, monotonic: Monotonic, pace: Pace | None = CHANNEL_PACE) -> None:
        self.monotonic = monotonic
        self.pace = pace
        self.sent: list[Sent] = []
        self.attempts: list[str | None] = []
        self.answer: Callable[[Delivery], Any] | None = None

    async def deliver(self, delivery: Delivery) -> dict[str, Any]:
        self.attempts.append(delivery.destination)
        if self.answer is not None:
            await self.answer(delivery)
        case = delivery.case.id if delivery.case else None
        self.sent.append(
            Sent(
                delivery.destination, delivery.kind, case, delivery.payload.get("text", ""), self.monotonic()
            )
        )
        return {"message_ref": f"{delivery.destination}:{case}"} if case else {}

    def to(self, destination: str) -> list[Sent]:
        return [s for s in self.sent if s.destination == destination]


def limit_once(channels: Channels, clock: FrozenClock, destination: str, *, retry_after: int) -> None:
    """The first post to `destination` is answered 429 with `retry_after`; later ones go through."""
    answered: list[datetime] = []

    async def limited_once(delivery: Delivery) -> None:
        if delivery.destination == destination and not answered:
            answered.append(clock.now)
            raise TransientDeliveryError("rate limited", retry_after=retry_after)

    channels.answer = limited_once


def two_channel_config() -> Config:
    return parse_config(
        {
            "people": {"mara": {"name": "Mara Quinn", "msteams": MARA}},
            "admins": ["mara"],
            "teams": [
                {"key": key, "name": key.title(), "msteams": {"channel": channel}, "managers": ["mara"]}
                for key, channel in (("busy", BUSY), ("quiet", QUIET))
            ],
            "touchpoints": [
                {"key": "phone", "team": "busy", "aliases": ["Phone"]},
                {"key": "chat", "team": "quiet", "aliases": ["Chat"]},
            ],
            "routing": {"fallback_team": "busy"},
        }
    )


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient, FrozenClock]]:
    settings = Settings(_env_file=None, DATABASE_URL=database_url, CXBOT_API_KEY=API_KEY)  # type: ignore[call-arg]
    clock = FrozenClock(OPENED)
    runtime = Runtime.build(settings=settings, config=two_channel_config(), clock=clock)
    await runtime.sync_directory()
    transport = httpx.ASGITransport(app=create_app(runtime))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://cxbot.test", headers=headers) as http:
        try:
            yield runtime, http, clock
        finally:
            await runtime.close()


async def open_cases(http: httpx.AsyncClient, touchpoint: str, count: int, first: int = 0) -> list[str]:
    items = [
        {
            "external_id": f"{touchpoint}-{n}",
            "source": "t",
            "metric": "csat",
            "score": 1,
            "touchpoint": touchpoint,
        }
        for n in range(first, first + count)
    ]
    response = await http.post("/feedback", json=items)
    return [result["case"] for result in response.json()["results"]]


async def outbox(runtime: Runtime, destination: str) -> list[OutboxMessage]:
    async with runtime.sessions() as session:
        found = await session.execute(
            select(OutboxMessage).where(OutboxMessage.destination == destination).order_by(OutboxMessage.id)
        )
        return list(found.scalars())


def most_in_any(times: list[float], seconds: float) -> int:
    return max((sum(1 for t in times if start <= t < start + seconds) for start in times), default=0)


def test_the_pacer_keeps_every_window_and_each_destination_to_itself() -> None:
    monotonic = Monotonic()
    pacer = Pacer(monotonic=monotonic)
    for pace, windows in (
        (CHANNEL_PACE, CHANNEL_PACE.windows),
        (CONVERSATION_PACE, CONVERSATION_PACE.windows),
    ):
        times = [monotonic.now + pacer.reserve(PLATFORM, f"{pace}", pace, max_wait=1e9) for _ in range(200)]
        assert times == sorted(times)  # in the order they asked
        for count, seconds in windows:
            assert most_in_any(times, seconds) <= count, (count, seconds)
    # A burst then the sustained rate: 4 at once on a channel, then about one a second.
    channel = [pacer.reserve(PLATFORM, "fresh", CHANNEL_PACE, max_wait=1e9) for _ in range(30)]
    assert channel[:4] == [0.0] * 4 and channel[4] == 1.0
    assert 20.0 <= channel[-1] <= 25.0  # 30 sends: about 10 in every 10 s
    # Another destination of the same platform is not slowed by the busy ones.
    assert pacer.reserve(PLATFORM, "other", CHANNEL_PACE, max_wait=0) == 0.0
    # A wait longer than the caller takes is reported, not reserved.
    busy_wait = pacer.reserve(PLATFORM, "fresh", CHANNEL_PACE, max_wait=0)
    assert busy_wait > 0 and pacer.reserve(PLATFORM, "fresh", CHANNEL_PACE, max_wait=0) == busy_wait


def test_an_app_wide_pace_holds_every_conversation_together_and_each_to_its_own() -> None:
    """Teams: 50 sends a second over all conversations, beside each conversation's 7 a second."""
    monotonic = Monotonic()
    pacer = Pacer(monotonic=monotonic)
    times = [
        monotonic.now
        + pacer.reserve(PLATFORM, f"conv-{n % 200}", CONVERSATION_PACE, max_wait=1e9, app_pace=APP_PACE)
        for n in range(400)
    ]
    assert most_in_any(times, 1.0) <= 50  # a fan-out to 200 conversations keeps to the app's limit
    assert times[49] == monotonic.now and times[50] == monotonic.now + 1.0
    one = [t for n, t in enumerate(times) if n % 200 == 0]
    assert most_in_any(one, 1.0) <= 7
    # A send refused for its wait takes no slot in either lane.
    before = pacer.reserve(PLATFORM, "conv-new", CONVERSATION_PACE, max_wait=0, app_pace=APP_PACE)
    assert before > 0
    assert pacer.reserve(PLATFORM, "conv-new", CONVERSATION_PACE, max_wait=0, app_pace=APP_PACE) == before
    # The app-wide lane is no destination: a claim never leaves it out as a saturated channel.
    assert "all conversations" not in pacer.saturated(PLATFORM, CONVERSATION_PACE, beyond=0)


async def test_a_busy_channel_is_paced_and_what_waits_is_put_back_for_its_slot(
    bot: tuple[Runtime, httpx.AsyncClient, FrozenClock],
) -> None:
    runtime, http, clock = bot
    monotonic = Monotonic()
    channels = Channels(monotonic)
    worker = OutboxWorker(
        runtime, {PLATFORM: channels}, pacer=Pacer(monotonic=monotonic), max_pace_wait=0, paced=True
    )
    await open_cases(http, "Phone", 6)
    await open_cases(http, "Chat", 2)

    await worker.run_once()

    assert len(channels.to(BUSY)) == 4  # the burst a channel allows
    assert len(channels.to(QUIET)) == 2  # the other channel is not behind it
    waiting = [row for row in await outbox(runtime, BUSY) if row.status == "pending"]
    assert len(waiting) == 2
    assert {row.next_attempt_at for row in waiting} == {OPENED + timedelta(seconds=1)}
    assert {row.attempts for row in waiting} == {0}  # put back, not tried
    assert worker.due_again == monotonic.now + 1.0  # `serve` wakes for them then

    # While the channel has no slot, its new rows are not even claimed (no put-back churn).
    await open_cases(http, "Phone", 1, first=6)
    await worker.run_once()
    assert len(channels.to(BUSY)) == 4
    newest = (await outbox(runtime, BUSY))[-1]
    assert (newest.status, newest.attempts, newest.next_attempt_at) == ("pending", 0, OPENED)

    monotonic.now += 1.0
    clock.advance(seconds=1)
    await worker.run_once()

    busy = channels.to(BUSY)
    assert len(busy) == 7 and most_in_any([s.at for s in busy], 1.0) <= 4
    assert all(row.status == "sent" for row in await outbox(runtime, BUSY))


async def test_a_429_holds_only_its_channel_from_when_the_answer_arrived(
    bot: tuple[Runtime, httpx.AsyncClient, FrozenClock],
) -> None:
    runtime, http, clock = bot
    monotonic = Monotonic()
    channels = Channels(monotonic, pace=None)
    answered: list[datetime] = []

    async def limited(delivery: Delivery) -> None:
        if delivery.destination == BUSY:
            clock.advance(seconds=5)  # a slow answer: Retry-After counts from when it came
            answered.append(clock.now)
            raise TransientDeliveryError("rate limited", retry_after=30)

    channels.answer = limited
    worker = OutboxWorker(runtime, {PLATFORM: channels}, concurrency=1)
    await open_cases(http, "Phone", 3)
    await open_cases(http, "Chat", 3)

    await worker.run_once()

    assert channels.attempts.count(BUSY) == 1  # the rest of that channel was held, not hammered
    assert len(channels.to(QUIET)) == 3  # the other channel went on in the same run
    busy = await outbox(runtime, BUSY)
    assert [row.status for row in busy] == ["pending"] * 3
    assert {row.next_attempt_at for row in busy} == {answered[0] + timedelta(seconds=30)}
    assert [row.attempts for row in busy] == [1, 0, 0]

    # Ten seconds on: new work for the quiet channel goes at once, the busy one still waits.
    clock.advance(seconds=10)
    mara = actor_for(runtime.config, PLATFORM, MARA)
    quiet_case = channels.to(QUIET)[0].case
    taken = await run_text(runtime, f"take CX-{quiet_case}", actor=mara, where=Where(PLATFORM, QUIET))
    assert taken.ok, taken.text
    await worker.run_once()
    assert channels.attempts.count(BUSY) == 1
    assert len(channels.to(QUIET)) > 3

    channels.answer = None
    clock.advance(seconds=30)
    await worker.run_once()
    assert len(channels.to(BUSY)) == 3


async def test_rows_queued_after_a_429_wait_out_its_retry_after_too(
    bot: tuple[Runtime, httpx.AsyncClient, FrozenClock],
) -> None:
    """The database holds the rows queued when the 429 came; a case opened afterwards in the same
    channel (a row due at once) must not be posted before the time Slack gave either (bench/soak.py
    found such posts 0.3-2.8 s into a 1-3 s Retry-After)."""
    runtime, http, clock = bot
    channels = Channels(Monotonic(), pace=None)
    limit_once(channels, clock, BUSY, retry_after=30)
    worker = OutboxWorker(runtime, {PLATFORM: channels}, concurrency=1)
    await open_cases(http, "Phone", 1)
    await worker.run_once()
    assert channels.attempts == [BUSY]

    clock.advance(seconds=10)
    await open_cases(http, "Phone", 1, first=1)
    await open_cases(http, "Chat", 1)
    await worker.run_once()
    assert channels.attempts.count(BUSY) == 1  # not 10 s into a 30 s Retry-After
    assert len(channels.to(QUIET)) == 1  # the other channel is not held
    newest = (await outbox(runtime, BUSY))[-1]
    assert (newest.status, newest.attempts) == ("pending", 0)  # not even claimed

    clock.advance(seconds=20)
    await worker.run_once()
    assert len(channels.to(BUSY)) == 2


async def test_another_replica_holds_off_a_channel_that_got_a_429_too(
    bot: tuple[Runtime, httpx.AsyncClient, FrozenClock],
) -> None:
    """Two replicas, one database: the one that did not get the 429 knows of it from the hold in
    `outbox_holds`, so it neither claims that channel's new rows nor posts one it had already
    claimed (bench/soak.py found such posts 0.4-2.9 s into 1-3 s Retry-Afters)."""
    runtime, http, clock = bot
    limited = Channels(Monotonic(), pace=None)
    other = Channels(Monotonic(), pace=None)

    async def rate_limited(delivery: Delivery) -> None:
        raise TransientDeliveryError("rate limited", retry_after=30)

    limited.answer = rate_limited
    first = OutboxWorker(runtime, {PLATFORM: limited}, concurrency=1)
    second = OutboxWorker(runtime, {PLATFORM: other}, concurrency=1)
    await open_cases(http, "Phone", 1)
    await first.run_once()
    assert limited.attempts == [BUSY] and not limited.sent

    clock.advance(seconds=10)
    await open_cases(http, "Phone", 1, first=1)
    await open_cases(http, "Chat", 1)
    await second.run_once()
    assert other.attempts == [QUIET]  # the busy channel is held for the second replica as well
    held, queued_later = await outbox(runtime, BUSY)
    assert held.next_attempt_at == OPENED + timedelta(seconds=30)
    assert (queued_later.status, queued_later.attempts) == ("pending", 0)
    async with runtime.sessions() as session:
        holds = (await session.execute(select(OutboxHold.destination, OutboxHold.until))).all()
    assert holds == [(BUSY, OPENED + timedelta(seconds=30))]

    clock.advance(seconds=20)
    await second.run_once()
    assert len(other.to(BUSY)) == 2
    assert all(row.status == "sent" for row in await outbox(runtime, BUSY))


async def test_a_post_is_recorded_once_the_database_is_back_and_not_posted_again(
    bot: tuple[Runtime, httpx.AsyncClient, FrozenClock],
) -> None:
    """The database goes away between a post and its record (a PostgreSQL restart in bench/soak.py):
    the record is tried again, so the row is `sent`, not left `sending` to be posted a second time
    by whichever worker takes it once its lease runs out."""
    runtime, http, _ = bot
    channels = Channels(Monotonic(), pace=None)
    sessions = runtime.sessions
    away = 0

    def sessions_while_away() -> Any:
        nonlocal away
        if away:
            away -= 1
            lost = ConnectionError("terminating connection due to administrator command")
            raise DBAPIError("UPDATE outbox", {}, lost, connection_invalidated=True)
        return sessions()

    async def database_goes_away(_: Delivery) -> None:
        nonlocal away
        away = 2  # the post went out; the next two tries to record it fail

    channels.answer = database_goes_away
    await open_cases(http, "Chat", 1)
    runtime.sessions = sessions_while_away  # type: ignore[assignment]
    worker = OutboxWorker(runtime, {PLATFORM: channels}, record_retry_pauses=(0.0, 0.0, 0.0))

    stats = await worker.run_once()

    runtime.sessions = sessions
    assert stats.sent == 1 and len(channels.to(QUIET)) == 1
    [row] = await outbox(runtime, QUIET)
    assert (row.status, row.attempts) == ("sent", 1)


async def test_a_cards_posts_arrive_in_order_while_other_cards_post_concurrently(
    bot: tuple[Runtime, httpx.AsyncClient, FrozenClock],
) -> None:
    runtime, http, _ = bot
    monotonic = Monotonic()
    channels = Channels(monotonic, pace=None)
    in_flight = 0
    most = 0
    second = asyncio.Event()
    first = True

    async def uneven(delivery: Delivery) -> None:
        nonlocal in_flight, most, first
        in_flight += 1
        most = max(most, in_flight)
        if in_flight > 1:
            second.set()
        if first:  # the first post answers only once another is in flight beside it
            first = False
            await asyncio.wait_for(second.wait(), timeout=10)
        for _ in range(delivery.id % 5):  # posts answer in a different order from the one they left in
            await asyncio.sleep(0)
        in_flight -= 1

    channels.answer = uneven
    worker = OutboxWorker(runtime, {PLATFORM: channels}, concurrency=8)
    refs = await open_cases(http, "Phone", 4) + await open_cases(http, "Chat", 4)
    mara = actor_for(runtime.config, PLATFORM, MARA)
    for n in range(3):
        for ref in refs:
            noted = await run_text(runtime, f"note {ref} step {n}", actor=mara, where=Where(PLATFORM, BUSY))
            assert noted.ok, noted.text

    await worker.run_once()

    assert most > 1  # posts to different cards were in flight together
    for ref in refs:
        case = int(ref.removeprefix("CX-"))
        posts = [s for s in channels.sent if s.case == case]
        assert posts[0].kind == "case.card"  # the card before its thread
        lines = [s.text for s in posts if s.kind == "case.thread"]
        steps = [line.rsplit("step ", 1)[-1] for line in lines if "step " in line]
        assert steps == ["0", "1", "2"], lines
    async with runtime.sessions() as session:
        statuses = set((await session.execute(select(OutboxMessage.status))).scalars())
    assert statuses == {"sent"}


async def test_a_new_card_is_claimed_and_posted_while_a_slow_post_still_holds_its_lane(
    bot: tuple[Runtime, httpx.AsyncClient, FrozenClock],
) -> None:
    runtime, http, _ = bot
    channels = Channels(Monotonic(), pace=None)
    [slow] = await open_cases(http, "Phone", 1)
    [quick] = await open_cases(http, "Chat", 1)
    later: list[str] = []
    later_posted = asyncio.Event()

    async def answer(delivery: Delivery) -> None:
        assert delivery.case is not None
        if delivery.case.ref == slow:  # answers only once a card queued after the claim went out
            await asyncio.wait_for(later_posted.wait(), timeout=10)
        elif delivery.case.ref == quick:  # a new case arrives while the slow post is in flight
            later.extend(await open_cases(http, "Chat", 1, first=1))
        else:
            later_posted.set()

    channels.answer = answer
    worker = OutboxWorker(runtime, {PLATFORM: channels}, batch_size=3)

    stats = await worker.run_once()

    assert [s.case for s in channels.sent] == [int(ref.removeprefix("CX-")) for ref in (quick, *later, slow)]
    assert stats.sent == 3


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until `condition` holds (each pass hands the loop on; no time passes)."""
    while not condition():
        await asyncio.sleep(0)


async def test_a_second_call_to_a_channel_waits_for_the_first_answer_so_its_429_holds_it_too(
    bot: tuple[Runtime, httpx.AsyncClient, FrozenClock],
) -> None:
    """Two cases in one channel, two lanes: the second card is not sent while the first is in flight,
    so the 429 the first gets holds it too. Sent side by side, it reached Slack inside the Retry-After
    (bench/soak.py: 7-10 calls a run 0.00-0.03 s after the 429, once two calls 1.02 s after it)."""
    runtime, http, clock = bot
    monotonic = Monotonic()
    channels = Channels(monotonic, pace=None)
    pacer = Pacer(monotonic=monotonic)
    answered: list[datetime] = []

    async def first_is_limited(delivery: Delivery) -> None:
        if delivery.destination != BUSY or answered:
            return
        # Answer once the other card of the channel has either been sent too or waits for its turn.
        await asyncio.wait_for(
            until(lambda: channels.attempts.count(BUSY) > 1 or pacer.waiting(PLATFORM, BUSY) > 1), timeout=10
        )
        clock.advance(seconds=5)  # the answer takes a while; Retry-After counts from when it came
        answered.append(clock.now)
        raise TransientDeliveryError("rate limited", retry_after=30)

    channels.answer = first_is_limited
    worker = OutboxWorker(runtime, {PLATFORM: channels}, pacer=pacer, concurrency=8)
    await open_cases(http, "Phone", 2)
    await open_cases(http, "Chat", 1)

    await worker.run_once()

    assert channels.attempts.count(BUSY) == 1  # the second card waited, saw the hold, went back
    assert len(channels.to(QUIET)) == 1  # another channel is not held
    busy = await outbox(runtime, BUSY)
    assert [(row.status, row.attempts) for row in busy] == [("pending", 1), ("pending", 0)]
    assert {row.next_attempt_at for row in busy} == {answered[0] + timedelta(seconds=30)}
    assert pacer.waiting(PLATFORM, BUSY) == 0  # nothing kept for a channel with nothing in flight


async def test_a_429_on_a_rows_last_attempt_still_holds_its_channel(
    bot: tuple[Runtime, httpx.AsyncClient, FrozenClock],
) -> None:
    """The row gives up (too many attempts) but Slack's Retry-After is on the channel, not the row:
    the channel's other rows wait it out, in this worker and in any other."""
    runtime, http, clock = bot
    channels = Channels(Monotonic(), pace=None)
    limit_once(channels, clock, BUSY, retry_after=30)
    worker = OutboxWorker(runtime, {PLATFORM: channels}, concurrency=1, retry=RetryPolicy(max_attempts=1))
    await open_cases(http, "Phone", 2)

    await worker.run_once()

    first, second = await outbox(runtime, BUSY)
    assert first.status == "dead" and channels.attempts.count(BUSY) == 1  # (its report went to mara)
    assert (second.status, second.attempts) == ("pending", 0)
    clock.advance(seconds=29)
    assert (await OutboxWorker(runtime, {PLATFORM: channels}).run_once()).claimed == 0  # another replica
    assert (await worker.run_once()).claimed == 0
    clock.advance(seconds=1)
    await worker.run_once()
    assert [s.case for s in channels.to(BUSY)] == [second.case_id]
