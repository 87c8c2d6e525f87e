"""The core's neutral markup: only the core makes tokens, and each platform renders them its own way."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from cxbot import markup
from handlers.slack.markup import SlackMarkup, to_mrkdwn, to_plain

# Outside text at its worst: Slack control sequences, the token characters themselves, anything.
pieces = st.sampled_from(["<", ">", "&", "!", "@", "#", "|", "U1", "channel", "http://x", " ", "\n"])
pieces |= st.sampled_from([markup.OPEN, markup.SEP, markup.CLOSE, "person", "alert"]) | st.characters()
hostile = st.lists(pieces, max_size=60).map("".join)
LIVE_SLACK = re.compile(r"<[!@#]|<https?:")


@given(hostile)
def test_outside_text_can_never_become_a_token(text: str) -> None:
    composed = f"Note by {markup.person('U0SUPMGR1')}: {markup.plain(text)}"
    pieces = list(markup.segments(composed))
    assert [p for p in pieces if isinstance(p, markup.Token)] == [markup.Token("person", "U0SUPMGR1")]
    assert "".join(p for p in pieces if isinstance(p, str)) == f"Note by : {markup.plain(text)}"


@given(hostile)
def test_slack_renders_only_the_cores_mentions_live(text: str) -> None:
    rendered = to_mrkdwn(f"{markup.alert('urgent')} {markup.person('U0SUPMGR1')}: {markup.plain(text)}")
    assert rendered.startswith(":rotating_light: <@U0SUPMGR1>: ")
    assert not LIVE_SLACK.search(rendered.removeprefix(":rotating_light: <@U0SUPMGR1>: "))
    unescaped = rendered.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert unescaped.endswith(markup.plain(text))


@given(hostile)
def test_every_token_value_is_escaped_too(text: str) -> None:
    for token in (markup.person(text), markup.channel(text), markup.emphasis(text), markup.quote(text)):
        assert not LIVE_SLACK.search(re.sub(r"^<[@#][UWCG][A-Z0-9]{2,}>$", "", to_mrkdwn(token)))


def test_each_mark_on_slack_and_as_plain_text() -> None:
    text = (
        f"{markup.alert('warning')} {markup.emphasis('CX-42')} for {markup.person('U0SUPMGR1')} in "
        f"{markup.channel('C0CXESCAL1')}: run {markup.command('/cx ack CX-42')}\n{markup.quote('late & <b>')}"
    )
    assert to_mrkdwn(text) == (
        ":warning: *CX-42* for <@U0SUPMGR1> in <#C0CXESCAL1>: run `/cx ack CX-42`\n> late &amp; &lt;b&gt;"
    )
    assert to_plain(text) == "⚠ CX-42 for @U0SUPMGR1 in #C0CXESCAL1: run `/cx ack CX-42`\n“late & <b>”"
    assert markup.person(None) == "nobody"


def test_a_person_is_mentioned_by_their_slack_id_or_named() -> None:
    people = {"ada": "U0ADA0001", "grace": None}
    renderer = SlackMarkup(slack_id=people.get)
    assert to_mrkdwn(markup.person("ada"), renderer) == "<@U0ADA0001>"
    assert to_mrkdwn(markup.person("grace"), renderer) == "@grace"  # no Slack id: named, not pinged
    assert to_mrkdwn(markup.person("U1>|<!channel")) == "@U1&gt;|&lt;!channel"


def test_a_malformed_or_unknown_token_is_plain_text() -> None:
    forged = f"{markup.OPEN}link{markup.SEP}http://evil.example{markup.CLOSE} and {markup.OPEN}person"
    assert to_mrkdwn(forged) == "http://evil.example and person"
