"""Masking of customer contact details in anything posted to a channel (design.md §7).

Pure functions, no configuration: a case card or a thread line shows that an email or phone number
was there without showing it. Revealing the real value is a separate, audited action.

Masking runs over every comment and note a card shows, so it must stay linear in the text's length
(issue #11): emails are found from each `@` followed by a domain rather than by a pattern tried at every
position, and the phone pattern's run of separators is bounded.
"""

from __future__ import annotations

import re

#: Characters that end an email's local part (the run before `@`), besides any whitespace.
LOCAL_STOPS = frozenset('@<>()[],;:"')
# An `@` followed by a domain (labels and dots): a lookahead, so an `@` inside one domain is still
# tried on its own. Labels and dots are disjoint, so each try is linear in the run it reads.
AT_DOMAIN = re.compile(r"@(?=((?:[\w-]+\.)+[\w-]+))")
# A run of digits with the separators people type in phone numbers; checked further in _mask_phone.
# The run is bounded (15 digits and their separators fit well within it) so a match attempt is short.
PHONE_CANDIDATE = re.compile(r"(?<![\w+(])(?:\+|00|\()?\d[\d ().-]{5,40}\d(?![\w])")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
NOT_DIGITS = re.compile(r"\D")
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
    digits = NOT_DIGITS.sub("", phone)
    if not digits:
        return "•••"
    return "•••" + digits[-KEEP_LAST_DIGITS:]


def mask_name(name: str) -> str:
    """`Ada Lovelace` → `A. L.`"""
    parts = [p for p in re.split(r"\s+", name.strip()) if p]
    return " ".join(f"{p[0]}." for p in parts) if parts else "***"


def _mask_phone_match(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = NOT_DIGITS.sub("", candidate)
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS or ISO_DATE.match(candidate):
        return candidate
    return mask_phone(candidate)


def _ends_local(char: str) -> bool:
    return char in LOCAL_STOPS or char.isspace()


def _mask_emails(text: str) -> str:
    """Replace every `local@domain.tld` by its mask, scanning once from each `@`.

    The local part is the longest run of non-stop characters before the `@` (never reaching back
    past the previous `@`, a stop, or the previous address), so every character is looked at a
    bounded number of times.
    """
    out: list[str] = []
    done = 0  # text[:done] is already in `out`
    for at in AT_DOMAIN.finditer(text):
        start = at.start()
        while start > done and not _ends_local(text[start - 1]):
            start -= 1
        if start == at.start():  # nothing before the `@` (or it belongs to the previous address)
            continue
        end = at.end(1)
        out.append(text[done:start])
        out.append(mask_email(text[start:end]))
        done = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def mask_text(text: str) -> str:
    """Mask every email address and phone number in free text (comments, notes), in linear time."""
    return PHONE_CANDIDATE.sub(_mask_phone_match, _mask_emails(text))


def mask_identifier(ident: str) -> str:
    """A customer id as a channel may see it: an id that is or holds an email or phone is masked like
    one (the webhook providers fall back to the email as id), any other id is shown as it is."""
    return mask_text(ident)


def looks_like_address(text: str) -> bool:
    """True when `text` holds an email or phone number that masking would hide."""
    return mask_text(text) != text
