"""Contacting the customer about a case (design.md §7): providers, templates, flows and the notifier.

`cxbot.config` imports `cxbot.loop.contact.options` and the flows import the config, so this package
loads its flows lazily: `from cxbot.loop.contact import queue_contact` works without an import cycle.
"""

from __future__ import annotations

from typing import Any

__all__ = ["contact_notifier", "queue_contact"]


def __getattr__(name: str) -> Any:
    if name == "queue_contact":
        from cxbot.loop.contact.flows import queue_contact

        return queue_contact
    if name == "contact_notifier":
        from cxbot.loop.contact.notifier import contact_notifier

        return contact_notifier
    raise AttributeError(name)
