"""The html.parser accessibility checker used on the re-survey page (tests/support/a11y.py)."""

from __future__ import annotations

from tests.support.a11y import problems


def test_the_accessibility_checker_finds_what_it_claims_to() -> None:
    """The checker the page tests rely on must fail a page that breaks its rules."""
    bad = (
        "<html><head><title> </title><meta name=viewport content='width=device-width, user-scalable=no'>"
        "</head><body><form><input type=radio name=s id=a value=1><label>orphan</label>"
        "<fieldset><input type=radio name=t id=b value=2><label for=b>2</label></fieldset>"
        "<textarea name=c></textarea><label><input type=text name=ok></label>"
        "<button type=submit></button><a href='javascript:go()'>x</a><script>1</script></form>"
        "<img src='logo.png'><a href='/privacy'> </a><a href='/home'><img src='h.png' alt='Home'></a>"
        "</body></html>"
    )
    assert problems(bad) == [
        "<html> has no lang attribute",
        "the page has no <title> text",
        "viewport 'width=device-width, user-scalable=no' prevents zooming",
        "an image has no alt text: <img src='logo.png'>",
        "a link has no text",
        "<input type=radio name=s> has no label",
        "radio s=a is not inside a <fieldset>",
        "the <fieldset> around t has no <legend> text",
        "<textarea type=textarea name=c> has no label",
        "a button has no text",
        "the page uses JavaScript: <a href>, <script>",
    ]
