"""In-process counters exposed at `GET /metrics` in the Prometheus text format."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Counters:
    """Monotonic counters keyed by name and a sorted tuple of labels."""

    HELP: ClassVar[dict[str, str]] = {
        "cxbot_feedback_items_total": "Feedback items received, by outcome.",
        "cxbot_http_requests_total": "HTTP requests answered, by route and status.",
        "cxbot_webhook_rejected_total": "Webhook deliveries rejected, by provider and reason.",
    }

    def __init__(self) -> None:
        self._values: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self._values[(name, tuple(sorted(labels.items())))] += amount

    def value(self, name: str, **labels: str) -> int:
        return self._values[(name, tuple(sorted(labels.items())))]

    def render(self, gauges: dict[str, tuple[str, list[tuple[dict[str, str], float]]]] | None = None) -> str:
        """The exposition text: counters first, then gauges read at scrape time."""
        lines: list[str] = []
        names = sorted({name for name, _ in self._values} | set(self.HELP))
        for name in names:
            lines.append(f"# HELP {name} {self.HELP.get(name, name)}")
            lines.append(f"# TYPE {name} counter")
            for (metric, labels), value in sorted(self._values.items()):
                if metric == name:
                    lines.append(f"{name}{_labels(dict(labels))} {value}")
        for name, (help_text, samples) in sorted((gauges or {}).items()):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            lines.extend(f"{name}{_labels(labels)} {value:g}" for labels, value in samples)
        return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"
