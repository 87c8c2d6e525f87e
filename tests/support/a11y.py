"""A small accessibility checker for our own HTML pages (labels, form controls, document basics).

Built on the standard library's html.parser so it needs nothing installed. It checks what a screen
reader or a phone user depends on in a form page; it does not replace a full audit:

- `<html lang>`, a non-empty `<title>`, a viewport meta tag that allows zooming;
- every form control (input other than hidden/submit/button, select, textarea) has a label: a
  `<label for=id>` naming it, a wrapping `<label>`, or aria-label / aria-labelledby; ids are unique;
- radio buttons of one name sit in a `<fieldset>` that has a `<legend>` with text;
- buttons and links have text, images have an `alt` text; no JavaScript (`<script>`, `on*=`
  handlers, `javascript:` URLs).

Colour contrast needs the browser's computed styles: tests/test_resurvey_browser.py measures it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

CONTROLS = {"input", "select", "textarea"}
NOT_LABELLED_INPUTS = {"hidden", "submit", "button", "reset", "image"}


@dataclass
class _Control:
    tag: str
    type: str
    id: str | None
    name: str | None
    in_label: bool
    aria: bool
    fieldset: int | None


@dataclass
class _Fieldset:
    legend_text: str = ""
    has_legend: bool = False


@dataclass
class _State:
    lang: str | None = None
    title: str = ""
    viewport: str | None = None
    controls: list[_Control] = field(default_factory=list)
    label_for: set[str] = field(default_factory=set)
    ids: list[str] = field(default_factory=list)
    fieldsets: list[_Fieldset] = field(default_factory=list)
    buttons: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    images_without_alt: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.state = _State()
        self._label_depth = 0
        self._fieldset_stack: list[int] = []
        self._in: list[str] = []
        self._button_text: list[str] | None = None
        self._link_text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        s = self.state
        for name, value in a.items():
            if name.startswith("on") or value.strip().lower().startswith("javascript:"):
                s.scripts.append(f"<{tag} {name}>")
        if "id" in a:
            s.ids.append(a["id"])
        if tag == "html":
            s.lang = a.get("lang") or None
        elif tag == "meta" and a.get("name", "").lower() == "viewport":
            s.viewport = a.get("content", "")
        elif tag == "script":
            s.scripts.append("<script>")
        elif tag == "label":
            self._label_depth += 1
            if a.get("for"):
                s.label_for.add(a["for"])
        elif tag == "fieldset":
            s.fieldsets.append(_Fieldset())
            self._fieldset_stack.append(len(s.fieldsets) - 1)
        elif tag == "legend" and self._fieldset_stack:
            s.fieldsets[self._fieldset_stack[-1]].has_legend = True
        elif tag == "button":
            self._button_text = [a.get("aria-label", "")]
        elif tag == "a":
            self._link_text = [a.get("aria-label", "")]
        elif tag == "img":
            if not a.get("alt", "").strip() and a.get("aria-hidden") != "true":
                s.images_without_alt.append(a.get("src", "")[:40])
            if self._link_text is not None:
                self._link_text.append(a.get("alt", ""))
        if tag in CONTROLS:
            kind = a.get("type", "text").lower() if tag == "input" else tag
            if kind in NOT_LABELLED_INPUTS:
                if kind in ("submit", "button", "reset"):
                    s.buttons.append(a.get("value", "") or a.get("aria-label", ""))
            else:
                s.controls.append(
                    _Control(
                        tag=tag,
                        type=kind,
                        id=a.get("id"),
                        name=a.get("name"),
                        in_label=self._label_depth > 0,
                        aria=bool(a.get("aria-label", "").strip() or a.get("aria-labelledby", "").strip()),
                        fieldset=self._fieldset_stack[-1] if self._fieldset_stack else None,
                    )
                )
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth = max(0, self._label_depth - 1)
        elif tag == "fieldset" and self._fieldset_stack:
            self._fieldset_stack.pop()
        elif tag == "button" and self._button_text is not None:
            self.state.buttons.append("".join(self._button_text).strip())
            self._button_text = None
        elif tag == "a" and self._link_text is not None:
            self.state.links.append("".join(self._link_text).strip())
            self._link_text = None
        if tag in self._in:
            while self._in and self._in.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "title":
            self.state.title += data
        if "legend" in self._in and self._fieldset_stack:
            self.state.fieldsets[self._fieldset_stack[-1]].legend_text += data
        if self._button_text is not None:
            self._button_text.append(data)
        if self._link_text is not None:
            self._link_text.append(data)


def problems(document: str) -> list[str]:
    """Every accessibility problem found in the document, each in plain words; [] when none."""
    parser = _Parser()
    parser.feed(document)
    parser.close()
    s = parser.state
    found: list[str] = []
    if not s.lang:
        found.append("<html> has no lang attribute")
    if not s.title.strip():
        found.append("the page has no <title> text")
    if s.viewport is None:
        found.append("no <meta name=viewport>")
    elif "width=device-width" not in s.viewport.replace(" ", ""):
        found.append(f"viewport {s.viewport!r} does not use width=device-width")
    elif "user-scalable=no" in s.viewport.replace(" ", "") or "maximum-scale=1" in s.viewport.replace(
        " ", ""
    ):
        found.append(f"viewport {s.viewport!r} prevents zooming")
    found += [f"an image has no alt text: <img src={src!r}>" for src in s.images_without_alt]
    found += ["a link has no text" for text in s.links if not text]
    duplicates = {i for i in s.ids if s.ids.count(i) > 1}
    if duplicates:
        found.append(f"duplicate ids: {', '.join(sorted(duplicates))}")
    if not s.controls:
        return found + (
            ["a JavaScript-free page has no script, but found: " + ", ".join(s.scripts)] if s.scripts else []
        )
    for control in s.controls:
        labelled = control.in_label or control.aria or (control.id is not None and control.id in s.label_for)
        if not labelled:
            found.append(f"<{control.tag} type={control.type} name={control.name}> has no label")
        if control.type in ("radio", "checkbox"):
            if control.fieldset is None:
                found.append(f"{control.type} {control.name}={control.id} is not inside a <fieldset>")
            else:
                group = s.fieldsets[control.fieldset]
                if not group.has_legend or not group.legend_text.strip():
                    found.append(f"the <fieldset> around {control.name} has no <legend> text")
    for text in s.buttons:
        if not text.strip():
            found.append("a button has no text")
    if s.scripts:
        found.append("the page uses JavaScript: " + ", ".join(s.scripts))
    return found
