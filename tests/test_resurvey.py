"""Re-surveys: `/cx resurvey`, the signed one-time link, the page, the recovery outcome and suppression."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from cxbot.brand import INK, WHITE, Palette, contrast, palette
from cxbot.config import Brand, Config
from cxbot.loop.resurvey import read_token
from cxbot.models import Case, CaseEvent, Customer, Feedback, OutboxMessage, Resurvey
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.conftest import API_KEY
from tests.support.a11y import problems
from tests.support.clock import FrozenClock
from tests.support.resurvey import (
    ADA,
    AGENT,
    MANAGER,
    OUTSIDER,
    SECRET,
    link_tokens,
    negative_case,
    say,
    with_contact,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def config(example_config: Config) -> Config:
    return with_contact(example_config)


@pytest.fixture
async def runtime(settings: Settings, config: Config, clock: FrozenClock) -> AsyncIterator[Runtime]:
    built = Runtime.build(settings=settings, config=config, clock=clock)
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=database_url,
        CXBOT_API_KEY=API_KEY,
        CXBOT_SECRET_KEY=SECRET,
        CXBOT_PUBLIC_URL="https://cx.example.com",
    )


async def resurveyed(runtime: Runtime, client: httpx.AsyncClient, **case: object) -> tuple[int, str]:
    """A negative case with Ada as customer, acknowledged and re-surveyed; (case id, token)."""
    case_id = await negative_case(client, customer=ADA, **case)  # type: ignore[arg-type]
    assert (await say(runtime, f"ack CX-{case_id}", user=MANAGER)).ok
    reply = await say(runtime, f"resurvey CX-{case_id}")
    assert reply.ok, reply.text
    assert reply.text.startswith(f"Re-survey for CX-{case_id} queued to the customer by email")
    return case_id, (await link_tokens(runtime))[-1]


async def snapshot(runtime: Runtime) -> tuple[int, list[tuple[int, str, str | None]], int]:
    """What an invalid link must not change: feedback count, cases' states, answered re-surveys."""
    async with runtime.sessions() as session:
        feedback = await session.scalar(select(func.count()).select_from(Feedback))
        cases = (
            await session.execute(select(Case.id, Case.state, Case.recovery_outcome).order_by(Case.id))
        ).all()
        answered = await session.scalar(
            select(func.count()).select_from(Resurvey).where(Resurvey.answered_at.is_not(None))
        )
    return int(feedback or 0), [tuple(c) for c in cases], int(answered or 0)


async def test_the_link_asks_again_and_the_answer_closes_the_case_as_recovered(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    case_id, token = await resurveyed(runtime, client)
    async with runtime.sessions() as session:
        [row] = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "contact"))
        ).scalars()
    assert row.payload["to"] == ADA["email"] and row.payload["channel"] == "email"
    assert row.payload["body"].startswith("Hi Ada, thank you for your feedback about Phone support.")
    assert f"https://cx.example.com/r/{token}" in row.payload["body"]

    page = await client.get(f"/r/{token}")
    assert page.status_code == 200
    assert "How satisfied are you with your experience with Phone support?" in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert problems(page.text) == []
    assert [f'value="{n}"' in page.text for n in range(1, 6)] == [True] * 5 and 'value="6"' not in page.text

    clock.advance(hours=2)
    answered = await client.post(
        f"/r/{token}", content=urlencode({"score": "4", "comment": "Sorted, thanks"}), headers=FORM
    )
    assert answered.status_code == 200 and "Thank you" in answered.text

    async with runtime.sessions() as session:
        case = await session.get(Case, case_id)
        resurvey = (await session.execute(select(Resurvey))).scalar_one()
        new = await session.get(Feedback, resurvey.feedback_id)
        original = await session.get(Feedback, case.feedback_id)
        events = list(
            (await session.execute(select(CaseEvent.kind).where(CaseEvent.case_id == case_id))).scalars()
        )
        cases = await session.scalar(select(func.count()).select_from(Case))
    assert (case.state, case.closed_at, case.recovery_outcome) == ("closed", clock.now, "recovered")
    assert resurvey.answered_at == clock.now
    assert (new.source, new.external_id, new.metric, new.score, new.comment) == (
        "resurvey",
        f"resurvey-{resurvey.id}",
        "csat",
        4.0,
        "Sorted, thanks",
    )
    assert (new.customer_id, new.touchpoint_key) == (original.customer_id, original.touchpoint_key)
    assert cases == 1  # the answer is feedback, never a case of its own
    assert events[-2:] == ["resurvey_sent", "resurvey_answered"]

    # Reused: a friendly page, and nothing changes.
    before = await snapshot(runtime)
    again = await client.post(f"/r/{token}", content="score=1", headers=FORM)
    assert again.status_code == 410 and "already answered" in again.text.lower()
    assert (await client.get(f"/r/{token}")).status_code == 410
    assert await snapshot(runtime) == before


@pytest.mark.parametrize(
    ("metric", "before", "after", "outcome", "scale"),
    [
        ("nps", 3, 7, "recovered", range(0, 11)),
        ("nps", 6, 5, "unchanged", range(0, 11)),
        ("ces", 3, 1, "unchanged", range(1, 8)),
        ("ces", 3, 4, "recovered", range(1, 8)),
    ],
)
async def test_each_metric_asks_its_own_scale_and_judges_by_category(
    runtime: Runtime,
    client: httpx.AsyncClient,
    metric: str,
    before: int,
    after: int,
    outcome: str,
    scale: range,
) -> None:
    case_id, token = await resurveyed(runtime, client, metric=metric, score=before)
    page = await client.get(f"/r/{token}")
    assert problems(page.text) == []
    assert page.text.count('type="radio"') == len(scale)
    assert f'value="{scale.start}"' in page.text and f'value="{scale.stop - 1}"' in page.text
    await client.post(f"/r/{token}", content=f"score={after}", headers=FORM)
    async with runtime.sessions() as session:
        case = await session.get(Case, case_id)
    assert (case.state, case.recovery_outcome) == ("closed", outcome)


async def test_a_worse_answer_is_recorded_as_worse(runtime: Runtime, client: httpx.AsyncClient) -> None:
    case_id, token = await resurveyed(
        runtime, client, metric="nps", score=8, comment="Terrible, awful, horrible service. I hate it."
    )
    # NPS 8 is passive, not negative: the case was opened by the comment's sentiment.
    await client.post(f"/r/{token}", content="score=2", headers=FORM)
    async with runtime.sessions() as session:
        assert (await session.get(Case, case_id)).recovery_outcome == "worse"


async def test_tampered_and_expired_links_get_a_friendly_page_and_change_nothing(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    _, token = await resurveyed(runtime, client)
    before = await snapshot(runtime)
    ident, expiry, nonce = read_token(SECRET.encode(), token)
    signature = token.rsplit(".", 1)[1]
    forged = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # signature changed
        f"{ident + 1}.{expiry}.{nonce}.{signature}",  # another re-survey's id
        f"{ident}.{expiry + 86400 * 30}.{nonce}.{signature}",  # a longer life
        "not-a-token",
        token.split(".", 1)[1],
    ]
    for bad in forged:
        shown = await client.get(f"/r/{bad}")
        posted = await client.post(f"/r/{bad}", content="score=5", headers=FORM)
        assert (shown.status_code, posted.status_code) == (400, 400), bad
        assert "This link does not work" in posted.text and "Traceback" not in posted.text
        assert problems(posted.text) == []
    # A missing score re-shows the form with the reason, and stores nothing.
    empty = await client.post(f"/r/{token}", content="comment=hello", headers=FORM)
    assert empty.status_code == 400 and "Please pick a score" in empty.text and "hello" in empty.text
    assert problems(empty.text) == []
    huge = await client.post(f"/r/{token}", content="score=5&comment=" + "x" * 40_000, headers=FORM)
    assert huge.status_code == 413
    assert await snapshot(runtime) == before

    clock.advance(days=7, seconds=1)
    expired = await client.post(f"/r/{token}", content="score=5", headers=FORM)
    assert expired.status_code == 410 and "This link has expired" in expired.text
    assert (await client.get(f"/r/{token}")).status_code == 410
    assert await snapshot(runtime) == before
    refused = "cxbot_resurvey_links_refused_total"
    assert runtime.counters.value(refused, reason="invalid") == 2 * len(forged)
    assert runtime.counters.value(refused, reason="expired") == 2


async def test_one_resurvey_per_customer_per_window(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await resurveyed(runtime, client)
    second = await negative_case(client, external_id="neg-2", customer=ADA)
    await say(runtime, f"ack CX-{second}", user=MANAGER)
    clock.advance(days=29)
    refused = await say(runtime, f"resurvey CX-{second}")
    assert not refused.ok
    assert refused.text == (
        "not sent: this customer was already re-surveyed on 2026-11-02 (CX-1); "
        "at most one re-survey per customer every 30d"
    )
    assert len(await link_tokens(runtime)) == 1
    clock.advance(days=1, seconds=1)
    assert (await say(runtime, f"resurvey CX-{second}")).ok
    assert len(await link_tokens(runtime)) == 2


async def test_who_and_what_can_be_resurveyed(runtime: Runtime, client: httpx.AsyncClient) -> None:
    anonymous = await negative_case(client, external_id="anon")
    no_address = await negative_case(client, external_id="noaddr", customer={"id": "cust-bare"})
    ada = await negative_case(client, external_id="ada", customer=ADA)
    for case_id in (anonymous, no_address, ada):
        await say(runtime, f"ack CX-{case_id}", user=MANAGER)
    assert (
        await say(runtime, f"resurvey CX-{anonymous}")
    ).text == f"CX-{anonymous} has no customer to re-survey"
    assert (await say(runtime, f"resurvey CX-{no_address}")).text == (
        f"CX-{no_address}'s customer has no email address or phone number to send a re-survey to"
    )
    denied = await say(runtime, f"resurvey CX-{ada}", user=OUTSIDER)
    assert denied.text.startswith("Not allowed: only members of support can re-survey its customers")
    bad = await say(runtime, "resurvey")
    assert not bad.ok and "resurvey CX-42" in bad.text
    assert await link_tokens(runtime) == []


async def test_without_the_secret_the_command_names_the_variable(
    runtime: Runtime, client: httpx.AsyncClient, settings: Settings
) -> None:
    case_id = await negative_case(client, customer=ADA)
    await say(runtime, f"ack CX-{case_id}", user=MANAGER)
    runtime.settings = settings.model_copy(update={"secret_key": None})
    reply = await say(runtime, f"resurvey CX-{case_id}")
    assert not reply.ok
    assert reply.text.startswith("CXBOT_SECRET_KEY is not set: re-survey links are signed with it")
    assert await link_tokens(runtime) == []
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Resurvey)) == 0
    page = await client.get("/r/1.2.abc.def")
    assert page.status_code == 503 and "Traceback" not in page.text


@pytest.fixture
async def auto_runtime(runtime: Runtime, config: Config) -> AsyncIterator[Runtime]:
    """The support team re-surveys automatically when a case is resolved; the others do not."""
    teams = [
        t.model_copy(update={"resurvey": config.resurvey.model_copy(update={"enabled_on_resolve": True})})
        if t.key == "support"
        else t
        for t in config.teams
    ]
    runtime.config = config.model_copy(update={"teams": teams})
    yield runtime


async def test_resolving_resurveys_automatically_when_the_team_wants_it(
    auto_runtime: Runtime, client: httpx.AsyncClient
) -> None:
    runtime = auto_runtime
    ada = await negative_case(client, external_id="ada", customer=ADA)
    bare = await negative_case(client, external_id="bare", customer={"id": "cust-bare"})
    other = await negative_case(client, external_id="del", customer=ADA, touchpoint="delivery")
    for case_id, user in ((ada, AGENT), (bare, AGENT), (other, "U0LOGAGT1")):
        await say(runtime, f"take CX-{case_id}", user=user)
        if case_id == bare:
            outcome = "could-not-contact no address on file"
        else:
            outcome = "recovered"
            assert (await say(runtime, f"contact CX-{case_id} email", user=user)).ok
        reply = await say(runtime, f"resolve CX-{case_id} {outcome}", user=user)
        assert reply.ok, reply.text
        if case_id == ada:
            assert reply.text == f"CX-{ada} resolved as recovered. Re-survey sent to the customer by email."
        elif case_id == bare:
            assert reply.text == (
                f"CX-{bare} resolved as could-not-contact. No re-survey sent: "
                f"CX-{bare}'s customer has no email address or phone number to send a re-survey to"
            )
        else:  # logistics has no automatic re-survey
            assert reply.text == f"CX-{other} resolved as recovered"
    assert len(await link_tokens(runtime)) == 1
    async with runtime.sessions() as session:
        states = dict((await session.execute(select(Case.id, Case.state))).all())
    assert states == {ada: "resolved", bare: "resolved", other: "resolved"}


async def test_customer_pii_never_reaches_the_page(runtime: Runtime, client: httpx.AsyncClient) -> None:
    _, token = await resurveyed(runtime, client)
    page = (await client.get(f"/r/{token}")).text
    assert ADA["email"] not in page and ADA["name"] not in page and "Lovelace" not in page
    async with runtime.sessions() as session:
        assert (await session.execute(select(Customer))).scalar_one().email == ADA["email"]


async def test_two_answers_at_once_store_one(
    runtime: Runtime, client: httpx.AsyncClient, settings: Settings
) -> None:
    import asyncio

    case_id, token = await resurveyed(runtime, client)
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://cxbot.test") as other:
        first, second = await asyncio.gather(
            client.post(f"/r/{token}", content="score=5", headers=FORM),
            other.post(f"/r/{token}", content="score=1", headers=FORM),
        )
    assert sorted([first.status_code, second.status_code]) == [200, 410]
    async with runtime.sessions() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(Feedback).where(Feedback.source == "resurvey")
            )
            == 1
        )
        assert (await session.get(Case, case_id)).state == "closed"


async def test_the_page_and_the_message_carry_the_teams_brand(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    """cxbot.example.yaml's brand: Northwind Outfitters, with an orange too light for white text."""
    _, token = await resurveyed(runtime, client)
    async with runtime.sessions() as session:
        [row] = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "contact"))
        ).scalars()
    assert "Would you tell Northwind Outfitters how we did now?" in row.payload["body"]
    assert row.payload["subject"].startswith("Northwind Outfitters: how did we do? (CX-")

    page = await client.get(f"/r/{token}")
    assert problems(page.text) == []
    assert "<title>One question about your experience · Northwind Outfitters</title>" in page.text
    assert '<span class="company">Northwind Outfitters</span>' in page.text
    assert 'alt="Northwind Outfitters logo"' in page.text and 'src="data:image/svg+xml;base64,' in page.text
    assert "Questions? Call 0800 123 4567" in page.text
    assert '<a href="https://www.northwind.example.com/privacy">Privacy policy</a>' in page.text
    # The logo's data URI is let in, and nothing else.
    assert page.headers["content-security-policy"].endswith("; img-src data:")
    colours = palette("#f28c28")
    assert colours.on_fill == INK  # white on this orange is 2.5:1; near-black reads at 7.6:1
    assert f"background:{colours.fill}" in page.text and f"color:{colours.on_fill}" in page.text
    assert f"a{{color:{colours.text}}}" in page.text and contrast(colours.text, WHITE) >= 4.5


async def test_without_a_brand_the_page_names_the_team_and_a_team_brand_overrides(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    _, token = await resurveyed(runtime, client)
    bare = runtime.config.model_copy(update={"brand": Brand()})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(replace(runtime, config=bare))), base_url="http://t"
    ) as plain:
        page = await plain.get(f"/r/{token}")
    assert problems(page.text) == []
    assert "<title>One question about your experience · Customer Support</title>" in page.text
    assert '<span class="company">Customer Support</span>' in page.text
    assert "<img" not in page.text and "Privacy policy" not in page.text
    assert "img-src" not in page.headers["content-security-policy"]

    travel = runtime.config.brand_for("travel")
    assert (travel.name, travel.accent_colour) == ("Northwind Travel", "#00796b")
    assert travel.logo == runtime.config.brand.logo and travel.support == runtime.config.brand.support
    assert bare.brand_for("logistics").name == bare.team("logistics").name
    assert bare.brand_for("travel").name == "Northwind Travel" and bare.brand_for(None).name is None


def test_any_accent_colour_gives_a_page_at_aa_contrast() -> None:
    assert round(contrast("#000000", WHITE), 1) == 21.0 and contrast("#777777", "#777777") == 1.0
    assert palette(None) == Palette("#0b57d0", "#0b57d0", WHITE, "#0b57d0")  # already AA on white
    for accent in ("#ffeb3b", "#f28c28", "#00bcd4", "#808080", "#ff0000", "#0b57d0", "#fff", "#000"):
        colours = palette(accent)
        assert contrast(colours.fill, colours.on_fill) >= 4.5, accent
        assert contrast(colours.text, WHITE) >= 4.5, accent
    # A mid grey fails under both white and near-black text: it is darkened until white reads.
    grey = palette("#808080")
    assert grey.fill != "#808080" and grey.on_fill == WHITE
