"""In-process counters and histograms exposed at `GET /metrics` in the Prometheus text format.

Kept in the core and dependency-free (the console runs without the `serve` extra); the web route
adds the gauges it reads at scrape time. The format is checked against prometheus-client's parser
in tests/test_metrics.py.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: Seconds, from a fast reply to a card that waited on a channel's pace or a Retry-After.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: Seconds a garbage collection stopped the process: most are well under a millisecond.
PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(slots=True)
class _Series:
    buckets: list[int]
    total: float = 0.0
    count: int = 0


@dataclass(slots=True)
class Histogram:
    """Observations counted into fixed buckets, per set of labels (a Prometheus histogram)."""

    help: str
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    _series: dict[Labels, _Series] = field(default_factory=dict)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series([0] * len(self.buckets))
        index = bisect_left(self.buckets, value)
        if index < len(series.buckets):
            series.buckets[index] += 1
        series.total += value
        series.count += 1

    def count(self, **labels: str) -> int:
        series = self._series.get(tuple(sorted(labels.items())))
        return series.count if series else 0

    def lines(self, name: str) -> list[str]:
        lines = [f"# HELP {name} {self.help}", f"# TYPE {name} histogram"]
        for key, series in sorted(self._series.items()):
            labels = dict(key)
            cumulative = 0
            for bound, hits in zip(self.buckets, series.buckets, strict=True):
                cumulative += hits
                lines.append(f"{name}_bucket{_labels({**labels, 'le': f'{bound:g}'})} {cumulative}")
            lines.append(f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {series.count}")
            lines.append(f"{name}_sum{_labels(labels)} {series.total:g}")
            lines.append(f"{name}_count{_labels(labels)} {series.count}")
        return lines


Gauges = Mapping[str, tuple[str, Iterable[tuple[dict[str, str], float]]]]


class Counters:
    """Monotonic counters keyed by name and a sorted tuple of labels, and named histograms."""

    HELP: ClassVar[dict[str, str]] = {
        "cxbot_feedback_items_total": "Feedback items received, by outcome.",
        "cxbot_http_requests_total": "HTTP requests answered, by route and status.",
        "cxbot_webhook_rejected_total": "Webhook deliveries rejected, by provider and reason.",
        "cxbot_outbox_delivered_total": "Outbox messages delivered, by platform and kind.",
        "cxbot_outbox_dead_total": "Outbox messages given up on (dead-lettered), by platform and kind.",
    }
    HISTOGRAM_HELP: ClassVar[dict[str, str]] = {
        "cxbot_outbox_delivery_seconds": "From an outbox message being queued to its delivery, by platform.",
        "cxbot_gc_pause_seconds": "Garbage collections (the whole process stopped), by generation.",
    }
    BUCKETS: ClassVar[dict[str, tuple[float, ...]]] = {"cxbot_gc_pause_seconds": PAUSE_BUCKETS}

    def __init__(self) -> None:
        self._values: Counter[tuple[str, Labels]] = Counter()
        self.histograms: dict[str, Histogram] = {}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self._values[(name, tuple(sorted(labels.items())))] += amount

    def value(self, name: str, **labels: str) -> int:
        return self._values[(name, tuple(sorted(labels.items())))]

    def observe(self, name: str, value: float, **labels: str) -> None:
        histogram = self.histograms.get(name)
        if histogram is None:
            histogram = self.histograms[name] = Histogram(
                self.HISTOGRAM_HELP.get(name, name), self.BUCKETS.get(name, LATENCY_BUCKETS)
            )
        histogram.observe(value, **labels)

    def render(
        self,
        gauges: Gauges | None = None,
        *,
        counters: Mapping[str, tuple[str, Iterable[tuple[dict[str, str], float]]]] | None = None,
        histograms: Mapping[str, Histogram] | None = None,
    ) -> str:
        """The exposition text: counters (ours, then others' such as the background work's), then
        histograms, then gauges read at scrape time."""
        lines: list[str] = []
        names = sorted({name for name, _ in self._values} | set(self.HELP))
        for name in names:
            lines.append(f"# HELP {name} {self.HELP.get(name, name)}")
            lines.append(f"# TYPE {name} counter")
            for (metric, labels), value in sorted(self._values.items()):
                if metric == name:
                    lines.append(f"{name}{_labels(dict(labels))} {value}")
        for name, (help_text, samples) in sorted((counters or {}).items()):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} counter")
            lines.extend(f"{name}{_labels(labels)} {value:g}" for labels, value in samples)
        for name, histogram in sorted({**self.histograms, **(histograms or {})}.items()):
            lines.extend(histogram.lines(name))
        for name, (help_text, samples) in sorted((gauges or {}).items()):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            lines.extend(f"{name}{_labels(labels)} {value:g}" for labels, value in samples)
        return "\n".join(lines) + "\n"


def watch_collections(counters: Counters) -> Callable[[], None]:
    """Time every garbage collection into `cxbot_gc_pause_seconds`; returns what stops it.

    A collection stops every request in the process, so a full one shows in the ack and reply
    tails: this is where /metrics says whether it was the collector."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            paused = time.perf_counter() - started.pop()
            counters.observe("cxbot_gc_pause_seconds", paused, generation=str(info.get("generation")))

    gc.callbacks.append(callback)
    return lambda: gc.callbacks.remove(callback)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"
