"""The 28-day trend chart of a team digest: each metric's daily score with its 95% CI band (PNG).

Optional: it needs the `charts` extra (matplotlib), imported lazily; the Figure object API renders
with Agg and never touches a display or pyplot's global state. Without matplotlib
:func:`trend_chart_png` logs one line and returns None; the digest itself never depends on the
chart. Days under the floor are drawn as hollow points, so a low-sample day is visibly not part of
the trend.
"""

from __future__ import annotations

import io
import logging

from cxbot.digest.model import TeamDigest

log = logging.getLogger(__name__)
_warned = False


def _figure_class() -> type | None:
    """matplotlib's Figure (the object API: no pyplot state, safe off the main thread), or None,
    said once in the log, when matplotlib is not installed."""
    global _warned
    try:
        from matplotlib.figure import Figure
    except ImportError:
        if not _warned:
            log.info("charts are on but matplotlib is not installed (pip install 'cxbot[charts]'): no chart")
            _warned = True
        return None
    return Figure


def trend_chart_png(digest: TeamDigest) -> bytes | None:
    """The chart as PNG bytes; None without matplotlib or without any score in the 28 days."""
    metrics = [m for m in digest.metrics if any(p.score is not None for p in m.daily)]
    if not metrics:
        return None
    figure_class = _figure_class()
    if figure_class is None:
        return None
    figure = figure_class(figsize=(8, 2.4 * len(metrics)))
    axes = figure.subplots(len(metrics), 1, sharex=True, squeeze=False)
    for axis, item in zip((row[0] for row in axes), metrics, strict=True):
        days = [p.local_date for p in item.daily]
        scores = [p.score for p in item.daily]
        low = [p.ci_low if p.ci_low is not None else p.score for p in item.daily]
        high = [p.ci_high if p.ci_high is not None else p.score for p in item.daily]
        band = [i for i, s in enumerate(scores) if s is not None]
        axis.fill_between(
            [days[i] for i in band],
            [low[i] for i in band],
            [high[i] for i in band],
            alpha=0.2,
            color="tab:blue",
            label="95% CI",
        )
        axis.plot([days[i] for i in band], [scores[i] for i in band], color="tab:blue", linewidth=1.5)
        full = [i for i in band if not item.daily[i].low_sample]
        thin = [i for i in band if item.daily[i].low_sample]
        axis.scatter([days[i] for i in full], [scores[i] for i in full], color="tab:blue", s=14, zorder=3)
        if thin:
            axis.scatter(
                [days[i] for i in thin],
                [scores[i] for i in thin],
                facecolors="white",
                edgecolors="grey",
                s=14,
                zorder=3,
                label=f"n < {digest.min_n}",
            )
        axis.set_ylabel(item.metric.upper())
        axis.grid(alpha=0.3)
    axes[0][0].set_title(f"{digest.team_name}: 28 days to {digest.report_date:%d %b %Y} (95% CI band)")
    axes[0][0].legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()
