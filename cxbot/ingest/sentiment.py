"""Offline text sentiment (VADER's lexicon, shipped inside its package; no network, no model download).

Sentiment only ever *adds* a case (design.md §3): it is consulted for passive scores and comment-only
responses, never to overrule a score, so it is computed only where it can change the outcome.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol


class _Analyzer(Protocol):
    def polarity_scores(self, text: str) -> dict[str, float]: ...


@lru_cache(maxsize=1)
def _analyzer() -> _Analyzer:
    # Loading the lexicon takes ~100 ms, so it happens on first use rather than at import.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def compound(text: str) -> float:
    """VADER's compound score in [-1, 1]; below about -0.5 the text is clearly negative."""
    return float(_analyzer().polarity_scores(text[:5000])["compound"])
