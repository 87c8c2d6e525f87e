"""Masking of customer contact details in anything posted to a channel (design.md §7).

Pure functions, no configuration: a case card or a thread line shows that an email or phone number
was there without showing it. Revealing the real value is a separate, audited action.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"[^\s@<>()\[\],;:\"]+@(?:[\w-]+\.)+[\w-]+")
# A run of digits with the separators people type in phone numbers; checked further in _mask_phone.
PHONE_CANDIDATE = re.compile(r"(?<![\w+(])(?:\+|00|\()?\d[\d ().-]{5,}\d(?![\w])")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 7, 15
KEEP_LAST_DIGITS = 2


def mask_email(email: str) -> str:
    """`ada.lovelace@example.co.uk` → `a***@e***.uk`: enough to recognise, not to contact."""
    local, _, domain = email.strip().rpartition("@")
    if not local or not domain:
        return "***"
    top = domain.rsplit(".", 1)[-1] if "." in domain else ""
    return f"{local[0]}***@{domain[0]}***" + (f".{top}" if top else "")


def mask_phone(phone: str) -> str:
    """`+44 20 7946 0000` → `•••00`: only the last two digits stay."""
    digits = re.sub(r"\D", "", phone)
    if not digits:
        return "•••"
    return "•••" + digits[-KEEP_LAST_DIGITS:]


def mask_name(name: str) -> str:
    """`Ada Lovelace` → `A. L.`"""
    parts = [p for p in re.split(r"\s+", name.strip()) if p]
    return " ".join(f"{p[0]}." for p in parts) if parts else "***"


def _mask_phone_match(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = re.sub(r"\D", "", candidate)
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS or ISO_DATE.match(candidate):
        return candidate
    return mask_phone(candidate)


def mask_text(text: str) -> str:
    """Mask every email address and phone number in free text (comments, notes)."""
    masked = EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return PHONE_CANDIDATE.sub(_mask_phone_match, masked)


def mask_identifier(ident: str) -> str:
    """A customer id as a channel may see it: an id that is or holds an email or phone is masked like
    one (the webhook providers fall back to the email as id), any other id is shown as it is."""
    return mask_text(ident)


def looks_like_address(text: str) -> bool:
    """True when `text` holds an email or phone number that masking would hide."""
    return mask_text(text) != text
