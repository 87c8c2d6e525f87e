"""A brand's accent colour made safe to read: WCAG 2.x contrast, computed (issue #16).

A company's colour is often a light one (a yellow, a sky blue) that fails AA as a button background
under white text or as link text on white. The page keeps the colour where it can: the button text is
whichever of white or near-black reads at 4.5:1 on it, and when neither does, or for text drawn in the
accent on the white page, the accent is darkened in small steps until it does. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

WHITE = "#ffffff"
INK = "#1a1a1a"  # the page's body text
DEFAULT_ACCENT = "#0b57d0"
#: WCAG 2.x AA for normal-size text; 3:1 is enough for large text and UI parts, 4.5 covers both.
AA_TEXT = 4.5


def _rgb(colour: str) -> tuple[int, int, int]:
    digits = colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def luminance(colour: str) -> float:
    """Relative luminance (WCAG 2.x): 0 for black, 1 for white."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """The contrast ratio of two colours, 1 to 21."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def darken_until(colour: str, against: str, ratio: float = AA_TEXT) -> str:
    """`colour`, mixed towards black in 5% steps until it reaches `ratio` against `against`."""
    r, g, b = _rgb(colour)
    for step in range(21):
        keep = 1 - step / 20
        candidate = _hex((r * keep, g * keep, b * keep))
        if contrast(candidate, against) >= ratio:
            return candidate
    return "#000000"


@dataclass(frozen=True, slots=True)
class Palette:
    """The colours the page draws with: `fill` behind `on_fill` text, `text` for links on white."""

    accent: str
    fill: str
    on_fill: str
    text: str


def palette(accent: str | None) -> Palette:
    """The page's colours from a brand accent, every text pair at AA contrast or better."""
    accent = (accent or DEFAULT_ACCENT).lower()
    if contrast(accent, WHITE) >= AA_TEXT:
        fill, on_fill = accent, WHITE
    elif contrast(accent, INK) >= AA_TEXT:
        fill, on_fill = accent, INK
    else:
        fill, on_fill = darken_until(accent, WHITE), WHITE
    return Palette(accent=accent, fill=fill, on_fill=on_fill, text=darken_until(accent, WHITE))
