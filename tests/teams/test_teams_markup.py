"""The core's neutral text as Teams markdown: tokens rendered, every outside character inert."""

from __future__ import annotations

import re

from cxbot import markup
from handlers.teams.markup import escape, message, to_markdown

OBJECT_ID = "6b703ce3-6d14-4fe6-b90c-dc5f03657ae4"


def test_outside_text_cannot_format_link_mention_or_inject_html() -> None:
    hostile = '**bold** _it_ `code` [link](https://evil.example) <at>Everyone</at> <img src=x> & # | ~ "q"'
    shown = escape(hostile)
    for live in ("<at>", "<img", " & "):
        assert live not in shown
    # Every Markdown special is backslash-escaped, so none is left live.
    assert re.search(r"(?<!\\)[*_`\[\]#|~]", shown) is None
    assert "&lt;at&gt;" in shown and "\\[link\\]" in shown and "&amp;" in shown and "&quot;q&quot;" in shown


def test_tokens_become_teams_markup() -> None:
    text = (
        f"{markup.alert('urgent')} {markup.emphasis('CX-7')} for {markup.person(OBJECT_ID)}: "
        f"{markup.quote('slow <b>delivery</b>')} try {markup.command('/cx ack CX-7')}"
    )
    rendered = to_markdown(text)
    assert rendered.startswith("🚨 **CX-7** for <at>")
    assert "> slow &lt;b&gt;delivery&lt;/b&gt;" in rendered and "`/cx ack CX-7`" in rendered


def test_a_mention_of_an_entra_id_carries_its_entity_and_others_stay_text() -> None:
    activity = message(f"ping {markup.person(OBJECT_ID)} and {markup.person('U0SLACK01')}")
    assert activity["entities"] == [
        {
            "type": "mention",
            "text": f"<at>{OBJECT_ID}</at>",
            "mentioned": {"id": OBJECT_ID, "name": OBJECT_ID},
        }
    ]
    assert "@U0SLACK01" in activity["text"]


def test_forged_tokens_in_outside_text_stay_plain() -> None:
    forged = f"{markup.OPEN}person{markup.SEP}{OBJECT_ID}{markup.CLOSE}"
    assert "<at>" not in to_markdown(markup.plain(forged))
