"""`GET /r/<token>` and `POST /r/<token>`: the customer's re-survey page (design.md §5, §7).

Plain HTML, no JavaScript, no external assets but the brand's logo: a phone-sized page with one
question as a fieldset of large radio buttons, an optional comment and a submit button. It carries the
team's brand (`brand:` in cxbot.yaml, else the team's name) in its title, header and footer, so a
customer sees who is asking and does not take the link for phishing; the brand's accent colour is
adjusted where needed to keep AA contrast (cxbot.brand). Every answer about the link itself
(tampered, expired, already used) is a friendly page with a 400/410 status that changes nothing.
The token is in the URL, so pages are never cached and never leak it as a referrer.
"""

from __future__ import annotations

import html
import logging
from string import Template
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse

from cxbot.brand import palette
from cxbot.config import Brand
from cxbot.db import retrying, transaction
from cxbot.limits import MAX_RESURVEY_FIELDS
from cxbot.loop import resurvey as flows
from cxbot.settings import MissingSetting
from cxbot.web.common import HttpError, read_body, runtime_of

log = logging.getLogger(__name__)

#: The form holds one small number and a comment of at most 2000 characters (×9 when fully escaped).
MAX_FORM_BYTES = 32 * 1024
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

STYLE = Template("""
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:1rem;
 color:#1a1a1a;background:#fff;line-height:1.5;font-size:1.125rem}
main,header,footer{max-width:36rem;margin:0 auto}
header{display:flex;align-items:center;gap:.75rem;padding-bottom:.75rem;border-bottom:4px solid $accent}
header img{max-height:2.5rem;max-width:10rem;width:auto}
header .company{font-weight:700;font-size:1.125rem}
h1{font-size:1.5rem;line-height:1.25}
fieldset{border:0;padding:0;margin:0 0 1.5rem}
legend{font-weight:600;margin-bottom:.75rem;padding:0}
.scale{display:flex;flex-wrap:wrap;gap:.5rem}
.choice{position:relative}
.choice input{position:absolute;opacity:0;width:1px;height:1px;margin:0;pointer-events:none}
.choice label{display:flex;align-items:center;justify-content:center;min-width:3rem;min-height:3rem;
 border:2px solid #555;border-radius:.5rem;font-weight:600;cursor:pointer;padding:0 .5rem}
.choice input:checked+label{background:$fill;border-color:$text;color:$on_fill;box-shadow:0 0 0 2px $text}
.choice input:focus-visible+label{outline:3px solid #e8a200;outline-offset:2px}
.ends{display:flex;justify-content:space-between;font-size:.95rem;color:#444;margin-top:.5rem}
label.comment{display:block;font-weight:600;margin-bottom:.5rem}
textarea{width:100%;min-height:7rem;font:inherit;padding:.5rem;border:2px solid #555;border-radius:.5rem}
button{margin-top:1.5rem;min-height:3rem;width:100%;font:inherit;font-weight:600;color:$on_fill;
 background:$fill;border:2px solid $text;border-radius:.5rem;cursor:pointer}
button:focus-visible{outline:3px solid #e8a200;outline-offset:2px}
footer{margin-top:2rem;padding-top:.75rem;border-top:1px solid #ccc;font-size:.95rem;color:#444}
footer p{margin:.25rem 0}
a{color:$text}
a:focus-visible{outline:3px solid #e8a200;outline-offset:2px}
.error{color:#a50e0e;font-weight:600}
.hint{color:#444;font-size:.95rem}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
""")


def _csp(brand: Brand) -> str:
    """The page's policy, letting in the logo (its data URI or its one origin) and nothing else."""
    if not brand.logo:
        return CSP
    if brand.logo.startswith("data:"):
        return f"{CSP}; img-src data:"
    parts = urlsplit(brand.logo)
    return f"{CSP}; img-src {parts.scheme}://{parts.netloc}"


def _header(brand: Brand) -> str:
    e = html.escape
    if not brand.name and not brand.logo:
        return ""
    logo = ""
    if brand.logo:
        alt = brand.logo_alt or (f"{brand.name} logo" if brand.name else "Logo")
        logo = f'<img src="{e(brand.logo)}" alt="{e(alt)}" height="40">'
    name = f'<span class="company">{e(brand.name)}</span>' if brand.name else ""
    return f"<header>{logo}{name}</header>\n"


def _footer(brand: Brand) -> str:
    e = html.escape
    lines = []
    if brand.name:
        lines.append(f"<p>This page is from {e(brand.name)}, about feedback you gave us.</p>")
    if brand.support:
        lines.append(f'<p class="support">{e(brand.support)}</p>')
    if brand.privacy_url:
        lines.append(f'<p><a href="{e(brand.privacy_url)}">Privacy policy</a></p>')
    return f"<footer>\n{''.join(lines)}\n</footer>\n" if lines else ""


def _page(title: str, body: str, *, brand: Brand, status: int = 200) -> HTMLResponse:
    """A whole, self-contained document: language, title (with the brand), header, footer, viewport."""
    colours = palette(brand.accent_colour)
    style = STYLE.substitute(
        accent=colours.accent, fill=colours.fill, on_fill=colours.on_fill, text=colours.text
    )
    full_title = f"{title} · {brand.name}" if brand.name else title
    document = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        f"<title>{html.escape(full_title)}</title>\n<style>{style}</style>\n</head>\n"
        f"<body>\n{_header(brand)}<main>\n{body}\n</main>\n{_footer(brand)}</body>\n</html>\n"
    )
    headers = {**HEADERS, "Content-Security-Policy": _csp(brand)}
    return HTMLResponse(document, status_code=status, headers=headers)


def _notice(title: str, text: str, *, brand: Brand, status: int) -> HTMLResponse:
    body = f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(text)}</p>"
    return _page(title, body, brand=brand, status=status)


def _link_error(error: flows.LinkError, *, brand: Brand) -> HTMLResponse:
    advice = {
        flows.LinkUsed: "Your answer is already with us, so there is nothing more to do. Thank you!",
        flows.LinkExpired: "Re-survey links are open for a limited time. Thank you for wanting to answer; "
        "if you have more to tell us, reply to the message we sent you.",
    }.get(
        type(error),
        "Please open the link exactly as we sent it. If it still does not work, "
        "reply to the message we sent you.",
    )
    return _notice(
        error.title,
        f"Sorry: {error}. {advice}" if not isinstance(error, flows.LinkUsed) else advice,
        brand=brand,
        status=error.status,
    )


_REASONS = {flows.LinkExpired: "expired", flows.LinkUsed: "used"}


def _unavailable(brand: Brand) -> HTMLResponse:
    return _notice(
        "This page is not available right now",
        "Sorry, we cannot take answers at the moment. Please try again later.",
        brand=brand,
        status=503,
    )


def form_html(
    question: flows.Question,
    *,
    brand: Brand,
    error: str | None = None,
    chosen: int | None = None,
    comment: str = "",
) -> str:
    """The question as radio buttons in a fieldset, an optional labelled comment, a submit button."""
    e = html.escape
    choices = []
    for value in range(question.low, question.high + 1):
        words = question.labels.get(value)
        extra = f'<span class="sr-only"> ({e(words)})</span>' if words else ""
        checked = " checked" if chosen == value else ""
        choices.append(
            f'<div class="choice"><input type="radio" id="score-{value}" name="score" value="{value}"'
            f" required{checked}>"
            f'<label for="score-{value}">{value}{extra}</label></div>'
        )
    low_words = question.labels.get(question.low, "")
    high_words = question.labels.get(question.high, "")
    error_html = f'<p class="error" id="form-error" role="alert">{e(error)}</p>\n' if error else ""
    described = ' aria-describedby="form-error"' if error else ""
    return (
        "<h1>One question about your experience</h1>\n"
        f'<p class="hint">{e(brand.name or "We")} would like to know how things are now. It takes a '
        "few seconds, and your answer goes straight to the team that looked after you.</p>\n"
        f"{error_html}"
        f'<form method="post"{described}>\n'
        f'<fieldset>\n<legend id="question">{e(question.text)}</legend>\n'
        f'<div class="scale">{"".join(choices)}</div>\n'
        f'<div class="ends" aria-hidden="true"><span>{question.low} = {e(low_words)}</span>'
        f"<span>{question.high} = {e(high_words)}</span></div>\n"
        "</fieldset>\n"
        '<label class="comment" for="comment">Anything you would like to add? (optional)</label>\n'
        f'<textarea id="comment" name="comment" maxlength="{flows.MAX_COMMENT_CHARS}" rows="4">'
        f"{e(comment)}</textarea>\n"
        '<button type="submit">Send my answer</button>\n'
        "</form>"
    )


async def get_resurvey(request: Request) -> HTMLResponse:
    """Show the question for a valid link; a plain-words page for any other."""
    runtime = runtime_of(request)
    token = request.path_params["token"]
    try:
        async with runtime.sessions() as session:
            found = await flows.open_link(
                session, settings=runtime.settings, token=token, now=runtime.clock()
            )
            question = await flows.page_context(session, runtime=runtime, resurvey=found)
    except flows.LinkError as error:
        runtime.counters.inc(
            "cxbot_resurvey_links_refused_total", reason=_REASONS.get(type(error), "invalid")
        )
        return _link_error(error, brand=runtime.config.brand_for(None))
    except MissingSetting:
        log.error("re-survey page asked for, but CXBOT_SECRET_KEY is not set")
        return _unavailable(runtime.config.brand_for(None))
    brand = runtime.config.brand_for(question.team)
    return _page("One question about your experience", form_html(question, brand=brand), brand=brand)


async def post_resurvey(request: Request) -> HTMLResponse:
    """Store the answer once and thank the customer; a missing score shows the form again."""
    runtime = runtime_of(request)
    token = request.path_params["token"]
    try:
        raw = await read_body(request, limit=MAX_FORM_BYTES)
    except HttpError as error:
        return _notice(
            "That answer is too long",
            f"Sorry: {error.reason}.",
            brand=runtime.config.brand_for(None),
            status=error.status,
        )
    try:
        fields = parse_qs(
            raw.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=MAX_RESURVEY_FIELDS
        )
    except ValueError:  # more fields than the form has: not a browser sending this page's form
        return _notice(
            "That answer could not be read",
            "Sorry: the form sent too many fields.",
            brand=runtime.config.brand_for(None),
            status=400,
        )
    score_text = (fields.get("score") or [None])[0]
    comment = (fields.get("comment") or [""])[0]
    now = runtime.clock()
    try:
        async with runtime.sessions() as session:
            found = await flows.open_link(session, settings=runtime.settings, token=token, now=now)
            question = await flows.page_context(session, runtime=runtime, resurvey=found)
        try:
            score = flows.parse_score(found.metric, score_text)
            problem = flows.comment_problem(comment)
            if problem is not None:
                comment = comment.replace("\x00", "")
                raise ValueError(problem)
        except ValueError as error:
            brand = runtime.config.brand_for(question.team)
            body = form_html(
                question, brand=brand, error=str(error), comment=comment[: flows.MAX_COMMENT_CHARS]
            )
            return _page("One question about your experience", body, brand=brand, status=400)

        async def record() -> None:  # a token is answered once: a rerun after a lost commit finds it used
            async with transaction(runtime.sessions) as session:
                await flows.answer(
                    session, runtime=runtime, token=token, score=score, comment=comment, now=now
                )

        await retrying(record)
    except flows.LinkError as error:
        runtime.counters.inc(
            "cxbot_resurvey_links_refused_total", reason=_REASONS.get(type(error), "invalid")
        )
        return _link_error(error, brand=runtime.config.brand_for(None))
    except MissingSetting:
        log.error("re-survey answer posted, but CXBOT_SECRET_KEY is not set")
        return _unavailable(runtime.config.brand_for(None))
    runtime.counters.inc("cxbot_resurvey_answers_total")
    return _page(
        "Thank you",
        "<h1>Thank you!</h1>\n<p>We have your answer. It helps the team that looked after you "
        "get better. You can close this page now.</p>",
        brand=runtime.config.brand_for(question.team),
    )
