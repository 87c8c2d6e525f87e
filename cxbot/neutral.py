"""Neutral text (design.md §10): what the core stores and queues for every platform to render.

Its only markup is the mention token (`<@U123>` for a person, `<#C123>` for a channel), which each
platform renders its own way. Words that came from outside (a touchpoint a survey tool sent, a case
title built from it) are embedded in such text through :func:`literal`, so they can never form a
token, nor any platform's markup: their angle brackets become look-alike quotation marks.
"""

from __future__ import annotations

from cxbot.pii import mask_text

_BRACKETS = str.maketrans({"<": "‹", ">": "›"})


def literal(text: str) -> str:
    """Outside words for neutral text: `<!channel>` → `‹!channel›`, everything else as it was."""
    return text.translate(_BRACKETS)


def shown(text: str) -> str:
    """Outside words for neutral text that people will read: PII masked, then :func:`literal`."""
    return literal(mask_text(text))
