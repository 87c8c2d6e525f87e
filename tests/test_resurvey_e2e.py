"""End to end on real data: the Flipkart support CSAT sample imported, its negative rows opened as
cases, a few customers contacted and re-surveyed by email through a fake SendGrid on loopback, their
answers given on the page, and the recovery rate of `GET /api/scores` checked against a count made
here from the answers and the thresholds in the example configuration."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from cxbot.config import Config
from cxbot.ingest.csv_import import ImportOptions, import_csv
from cxbot.loop.contact.notifier import ContactNotifier
from cxbot.models import Case, Customer, Feedback
from cxbot.outbox.worker import OutboxWorker
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from cxbot.web import create_app
from tests.conftest import API_KEY, FIXTURES, ROOT
from tests.support.clock import FrozenClock
from tests.support.fake_providers import FakeProviders
from tests.support.resurvey import LINK, SECRET, say, with_contact

SAMPLE = FIXTURES / "data" / "flipkart_csat_support_sample.csv"
RESURVEYED = 8
#: The answers the re-surveyed customers give, in order; the last one never answers.
ANSWERS = [5, 4, 3, 2, 1, 4, 3, None]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def providers() -> Iterator[FakeProviders]:
    with FakeProviders.running() as fake:
        yield fake


def sent_mails(providers: FakeProviders) -> list[tuple[str, str, str | None]]:
    """(recipient, text, idempotency key) of every message the fake SendGrid received."""
    mails = []
    for request in providers.requests("/v3/mail/send"):
        body = request.json()
        to, text = body["personalizations"][0]["to"][0]["email"], body["content"][0]["value"]
        mails.append((to, text, request.idempotency_key))
    return mails


@pytest.fixture
async def runtime(
    database_url: str, example_config: Config, clock: FrozenClock, providers: FakeProviders
) -> AsyncIterator[Runtime]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=database_url,
        CXBOT_API_KEY=API_KEY,
        CXBOT_SECRET_KEY=SECRET,
        CXBOT_PUBLIC_URL="https://cx.example.com",
    )
    built = Runtime.build(
        settings=settings, config=with_contact(example_config, email_url=providers.base), clock=clock
    )
    await built.sync_directory()
    try:
        yield built
    finally:
        await built.close()


def sample_with_customers(target: Path) -> list[str]:
    """A copy of the sample where the first negative rows name a (synthetic) customer with an email."""
    with SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    tagged: list[str] = []
    for row in rows:
        row["customer_id"] = row["customer_email"] = row["customer_name"] = ""
        if len(tagged) < RESURVEYED and row["CSAT Score"] in ("1", "2"):
            n = len(tagged) + 1
            row.update(
                customer_id=f"fk-{n}", customer_email=f"shopper{n}@example.net", customer_name=f"Shopper {n}"
            )
            tagged.append(row["Unique id"])
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return tagged


def independent_threshold(team: str) -> int:
    """CSAT at or below this is negative for the team, read straight from the example YAML."""
    raw = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    spec = next(t for t in raw["teams"] if t["key"] == team)
    return int((spec.get("thresholds") or {}).get("csat", raw["thresholds"]["csat"]))


def someone_in(config: Config, team: str) -> str:
    spec = config.team(team)
    return (spec.members or spec.managers)[0]


async def test_recovery_rate_of_real_support_data_matches_an_independent_count(
    runtime: Runtime, providers: FakeProviders, clock: FrozenClock, tmp_path: Path
) -> None:
    path = tmp_path / "support.csv"
    tagged = sample_with_customers(path)
    options = ImportOptions(
        mapping={
            "external_id": "Unique id",
            "score": "CSAT Score",
            "comment": "Customer Remarks",
            "touchpoint": "category",
            "received_at": "Survey_response_Date",
            "customer_id": "customer_id",
            "customer_email": "customer_email",
            "customer_name": "customer_name",
        },
        constants={"metric": "csat"},
    )
    report = await import_csv(runtime, path, options)
    assert report.stored == 161

    async with runtime.sessions() as session:
        found = await session.execute(
            select(Case.id, Case.team_key, Feedback.score, Customer.email)
            .join(Feedback, Feedback.id == Case.feedback_id)
            .join(Customer, Customer.id == Case.customer_id)
            .where(Feedback.external_id.in_(tagged))
            .order_by(Case.id)
        )
        cases = found.all()
    assert len(cases) == RESURVEYED  # every tagged row was negative and opened a case with its customer

    for n, (case_id, team, _score, _email) in enumerate(cases):
        user = someone_in(runtime.config, team)
        assert (await say(runtime, f"take CX-{case_id}", user=user)).ok
        assert (await say(runtime, f"contact CX-{case_id} email", user=user)).ok
        if n % 2:
            assert (await say(runtime, f"resolve CX-{case_id} recovered", user=user)).ok
        sent = await say(runtime, f"resurvey CX-{case_id}", user=user)
        assert sent.ok, sent.text

    worker = OutboxWorker(
        runtime, {"contact": ContactNotifier(runtime.config, env={"SENDGRID_API_KEY": "SG.x"})}
    )
    await worker.run_once(now=clock.now)
    mails = sent_mails(providers)
    assert len(mails) == 2 * RESURVEYED
    assert len({key for _, _, key in mails}) == 2 * RESURVEYED
    links = {to: LINK.search(text) for to, text, _ in mails if "/r/" in text}
    assert sorted(links) == sorted(email for *_, email in cases)

    clock.advance(hours=3)
    expected_recovered = 0
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://cxbot.test", headers={"Authorization": f"Bearer {API_KEY}"}
    ) as http:
        for (_case, team, score, email), answer in zip(cases, ANSWERS, strict=True):
            if answer is None:
                continue
            match = links[email]
            assert match is not None
            response = await http.post(f"/r/{match.group(1)}", content=f"score={answer}", headers=FORM)
            assert response.status_code == 200, response.text
            limit = independent_threshold(team)
            assert score <= limit  # it was negative
            # Up a category: out of "negative" (above the team's threshold) counts as recovered.
            expected_recovered += answer > limit

        clock.advance(minutes=1)  # windows are [from, to): the answers are in the past now
        scores = (await http.get("/api/scores", params={"window": "7d"})).json()
        per_team = {
            team: (await http.get("/api/scores", params={"window": "7d", "team": team})).json()["recovery"]
            for team in {team for _, team, *_ in cases}
        }

    answered = sum(1 for a in ANSWERS if a is not None)
    recovery = scores["recovery"]
    assert (recovery["n"], recovery["recovered"]) == (answered, expected_recovered)
    assert recovery["rate"] == round(100 * expected_recovered / answered, 2)
    assert recovery["recovered"] + recovery["unchanged"] + recovery["worse"] == answered
    assert sum(r["n"] for r in per_team.values()) == answered
    async with runtime.sessions() as session:
        states = [(await session.get(Case, case_id)).state for case_id, *_ in cases]
    assert states[:-1] == ["closed"] * (RESURVEYED - 1) and states[-1] in ("contacted", "resolved")
