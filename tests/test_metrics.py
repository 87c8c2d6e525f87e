"""`GET /metrics` through the real ASGI app (issue #15): the queue, reply latency and the outbox's lag.

The example configuration's teams post to Slack channels; the outbox delivers through an in-memory
notifier for that platform, on the frozen clock. The text is parsed with prometheus-client's own
parser, so what a Prometheus server would read is what is asserted.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cxbot.observability import watch_collections
from cxbot.outbox.contract import CHAT_KINDS, Delivery, PermanentDeliveryError
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from tests.support.clock import FrozenClock

PLATFORM = "slack"


class Channels:
    """Delivers into a list; the card of `broken_case` is refused for good."""

    platform = PLATFORM
    kinds = CHAT_KINDS
    pace = None

    def __init__(self, broken_case: int) -> None:
        self.broken_case = broken_case
        self.delivered: list[Delivery] = []

    async def deliver(self, delivery: Delivery) -> dict[str, Any]:
        if delivery.case is not None and delivery.case.id == self.broken_case:
            raise PermanentDeliveryError("invalid_blocks")
        self.delivered.append(delivery)
        return {"message_ref": f"ts-{delivery.id}"} if delivery.case else {}


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def open_cases(client: httpx.AsyncClient, count: int) -> list[int]:
    items = [
        {"external_id": f"neg-{n}", "source": "t", "metric": "csat", "score": 1, "touchpoint": "Inbound"}
        for n in range(count)
    ]
    results = (await client.post("/feedback", json=items)).json()["results"]
    return [int(r["case"].removeprefix("CX-")) for r in results]


async def test_outbox_lag_and_counts_per_platform(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    _, second = await open_cases(client, 2)
    clock.advance(seconds=30)

    before = await scrape(client)

    assert before[("cxbot_outbox_due", (("platform", PLATFORM),))] == 2
    assert before[("cxbot_outbox_lag_seconds", (("platform", PLATFORM),))] == 30

    await OutboxWorker(runtime, {PLATFORM: Channels(broken_case=second)}).run_once()
    after = await scrape(client)

    card = (("kind", "case.card"), ("platform", PLATFORM))
    assert after[("cxbot_outbox_delivered_total", card)] == 1
    assert after[("cxbot_outbox_dead_total", card)] == 1
    assert ("cxbot_outbox_lag_seconds", (("platform", PLATFORM),)) not in after  # nothing is due now
    delivered = (("platform", PLATFORM),)
    # The card waited the 30 s; the dead card's report, queued then, went at once.
    assert after[("cxbot_outbox_delivery_seconds_count", delivered)] == 2
    assert after[("cxbot_outbox_delivery_seconds_bucket", (("le", "10"), *delivered))] == 1
    assert after[("cxbot_outbox_delivery_seconds_bucket", (("le", "30"), *delivered))] == 2
    assert after[("cxbot_outbox_delivery_seconds_sum", delivered)] == 30


async def test_background_queue_depth_and_reply_latency(client: httpx.AsyncClient, runtime: Runtime) -> None:
    work = runtime.background
    backlog, running = asyncio.Event(), asyncio.Event()

    async def holds_a_slot() -> None:
        running.set()
        await backlog.wait()

    for _ in range(8):  # every slot taken
        running.clear()
        assert work.start(holds_a_slot(), name="test-command")
        await running.wait()
    assert work.start(backlog.wait(), name="test-command")  # and one waiting

    busy = await scrape(client)

    assert busy[("cxbot_background_running", ())] == 8
    assert busy[("cxbot_background_queued", ())] == 1

    backlog.set()
    await work.drain()
    idle = await scrape(client)

    assert (idle[("cxbot_background_running", ())], idle[("cxbot_background_queued", ())]) == (0, 0)
    assert idle[("cxbot_reply_seconds_count", (("work", "test-command"),))] == 9
    assert idle[("cxbot_background_wait_seconds_count", (("work", "test-command"),))] == 9
    assert idle[("cxbot_reply_seconds_bucket", (("le", "+Inf"), ("work", "test-command")))] == 9


async def test_garbage_collections_are_timed_by_generation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    stop = watch_collections(runtime.counters)
    try:
        gc.collect()  # a full collection, as the ones that stopped bench/soak.py's replicas
        gc.collect(0)
    finally:
        stop()
    gc.collect()  # not timed any more
    metrics = await scrape(client)
    count = {
        labels[0][1]: value
        for (name, labels), value in metrics.items()
        if name == "cxbot_gc_pause_seconds_count"
    }
    assert count["2"] >= 1 and count["0"] >= 1
    assert metrics[("cxbot_gc_pause_seconds_sum", (("generation", "2"),))] > 0
    assert all(callback.__module__ != "cxbot.observability" for callback in gc.callbacks)
