"""Contacting the customer about a case (design.md §7): options, templates, providers, flows, notifier."""
