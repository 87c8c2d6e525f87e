"""Fuzz of the edge (issue #11): hostile strings through every verb, every API parameter, every
webhook, `/feedback` and the re-survey page, against the real ASGI app, on every backend.

Hostile means long runs, Unicode digits and spaces, NUL, chat markup, huge numbers and deep JSON,
plus seeded random mixes of them. Whatever comes in: never a 5xx, never a traceback (or any error)
in the log, and a refused request writes nothing. One app per backend serves the whole module so
it stays quick.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cxbot.commands.grammar import VERBS, CommandError, check_limits, parse
from cxbot.config import parse_config
from cxbot.db import upgrade_sync
from cxbot.ingest.providers import PROVIDERS
from cxbot.models import AuditEvent, Case, CaseEvent, Customer, Feedback, OutboxMessage
from cxbot.runtime import Runtime
from cxbot.settings import Settings
from handlers.slack.commands import FAILED
from tests.conftest import API_KEY, BACKENDS, ROOT
from tests.support.clock import FrozenClock
from tests.support.databases import create_postgres_database, drop_postgres_database, fresh_sqlite
from tests.support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, SlackSender, slack_sender
from tests.support.resurvey import SECRET
from tests.test_webhooks_http import PAYLOADS, SECRETS, SIGNERS, WEBHOOKS, raw

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

MANAGER = "U0SUPMGR1"
FIXED = [
    "",
    " ",
    "a" * 5_000,
    "9" * 400,
    "-1",
    "0",
    str(2**63),
    "1e309",
    "NaN",
    "١٢٣",
    "１２３",
    "²",
    "CX-１",
    "CX-" + "9" * 30,
    "\u00a0\u2003\u3000\u200b",
    "\x00",
    "a\x00b",
    "<!channel> <@U0SUPMGR1> <http://evil.example|Reset your password>",
    "*bold* _it_ `code` ~s~ &amp; &lt;",
    "feedback:²",
    "before:" + "9" * 50,
    "touchpoint:" + "t" * 300,
    "template:",
    "'\"\\",
    "x@y.z " * 300,
    "+44 20 7946 0000 " * 50,
    "🙂" * 200,
    "%00%ff%c0",
    "\n\t\r\x0b\x1f\x7f",
    "{}" * 1_000,
]
FRAGMENTS = ["9" * 40, "١", "\x00", "<!here>", "@", " ", "\u2028", "CX-", "e999", "\\", '"', "é" * 10]


def _mixes(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12))) for _ in range(count)]


HOSTILE = FIXED + _mixes(10)
HUGE_NUMBER = "1" + "0" * 5_000
DEEP_JSON = "[" * 10_000 + "]" * 10_000


@dataclass
class Edge:
    runtime: Runtime
    slack: SlackSender
    fake: FakeSlack


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_database(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database of its own per backend, for the module's one app."""
    if request.param == "sqlite":
        yield fresh_sqlite(sqlite_template, tmp_path_factory.mktemp("fuzz"))
        return
    url = create_postgres_database()
    try:
        upgrade_sync(url)
        yield url
    finally:
        drop_postgres_database(url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edge(fuzz_database: str) -> AsyncIterator[Edge]:
    """One app per backend: Slack routes, webhooks with secrets, re-survey links, a case CX-1."""
    url = fuzz_database
    document = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
    document["webhooks"] = {**WEBHOOKS, "qualtrics": {"metric": "nps", "score_qid": "QID1"}}
    secrets = {**SECRETS, **FORM_SECRETS}
    saved = {name: os.environ.get(name) for name in secrets}
    os.environ.update(secrets)
    try:
        with FakeSlack.running() as fake:
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                DATABASE_URL=url,
                CXBOT_API_KEY=API_KEY,
                CXBOT_SECRET_KEY=SECRET,
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                SLACK_API_URL=fake.api_url,
            )
            runtime = Runtime.build(settings=settings, config=parse_config(document), clock=FrozenClock())
            await runtime.sync_directory()
            try:
                async with slack_sender(runtime, fake, API_KEY) as sender:
                    item = {
                        "external_id": "neg-1",
                        "source": "t",
                        "metric": "csat",
                        "score": 1,
                        "touchpoint": "Inbound",
                        "customer": {"id": "c-1", "email": "ada@example.com"},
                    }
                    assert (await sender.http.post("/feedback", json=item)).status_code == 200
                    yield Edge(runtime, sender, fake)
            finally:
                await runtime.close()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def snapshot(runtime: Runtime) -> tuple[Any, ...]:
    """Row counts of what a request can write, and case 1 as stored: a refusal leaves all of it."""
    async with runtime.sessions() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Feedback, Customer, Case, CaseEvent, OutboxMessage, AuditEvent)
        ]
        case = (await session.execute(select(Case).where(Case.id == 1))).scalar_one()
        fields = (case.state, case.assignee, case.team_key, case.escalation_level, case.snooze_reason)
    return (*counts, *fields)


def quiet(caplog: pytest.LogCaptureFixture) -> None:
    """No traceback and no error in the log, whatever was sent."""
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert [f"{r.name}: {r.getMessage()[:200]}" for r in bad] == []


WORDS = st.one_of(
    st.sampled_from(HOSTILE), st.text(max_size=30), st.sampled_from(["CX-1", "feedback:", "#1"])
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([name for verb in VERBS for name in (verb.name, *verb.aliases)]),
    st.lists(WORDS, max_size=4),
)
def test_the_grammar_raises_only_usage_errors_on_hostile_words(verb: str, words: list[str]) -> None:
    """Every verb with any words: a Command within the limits, or a CommandError with a usage line."""
    text = " ".join([verb, *words])
    try:
        check_limits(parse(text))
    except CommandError as error:
        assert error.usage


@pytest.mark.parametrize("verb", [verb.name for verb in VERBS])
def test_every_hostile_string_after_every_verb_parses_or_is_a_usage_error(verb: str) -> None:
    for hostile in HOSTILE:
        for text in (f"{verb} {hostile}", f"{verb} CX-1 {hostile}", f"{verb} support {hostile}"):
            try:
                check_limits(parse(text))
            except CommandError as error:
                assert error.usage


def _refused(reply: str) -> bool:
    return ". Usage:" in reply or reply.startswith(("Not allowed", "unknown command", "No verb"))


@MODULE_LOOP
async def test_every_verb_with_hostile_arguments_answers_without_failing(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    names = [verb.name for verb in VERBS]
    before = await snapshot(edge.runtime)
    for index, name in enumerate(names):
        # Each verb gets a rotating share of the strings, so every string meets a couple of verbs.
        strings = [HOSTILE[(index * 3 + k) % len(HOSTILE)] for k in range(3)]
        for hostile in strings:
            for text in (f"{name} {hostile}", f"{name} CX-1 {hostile}"):
                sent = len(edge.fake.responses())
                response = await edge.slack.command(text, user=MANAGER)
                assert response.status_code == 200, text
                replies = [reply.get("text") or "" for reply in edge.fake.responses()[sent:]]
                assert FAILED not in replies, text[:80]
                after = await snapshot(edge.runtime)
                # A refused command (a usage line, a denial, an unknown case) writes nothing.
                if any(_refused(reply) for reply in replies):
                    assert after == before, text[:80]
                before = after
    quiet(caplog)
    async with edge.runtime.sessions() as session:
        details = (await session.execute(select(CaseEvent.detail))).scalars()
        assert not any("\x00" in (detail or "") for detail in details)


@MODULE_LOOP
async def test_every_api_parameter_with_hostile_values_is_200_or_400(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    http = edge.slack.http
    for path, names in (
        ("/api/scores", ("team", "touchpoint", "metric", "window")),
        ("/api/cases", ("team", "state", "limit", "before")),
    ):
        for name in names:
            for hostile in HOSTILE:
                response = await http.get(path, params={name: hostile})
                assert response.status_code in (200, 400), (path, name, hostile[:40], response.text[:200])
                assert "error" in response.json() or response.status_code == 200
    quiet(caplog)


def _mutations(payload: Any, strings: list[str]) -> list[Any]:
    """The payload with one leaf at a time replaced by a hostile value (strings, numbers, nesting)."""
    leaves: list[list[Any]] = []

    def walk(node: Any, path: list[Any]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, [*path, key])
        elif isinstance(node, list):
            for n, value in enumerate(node):
                walk(value, [*path, n])
        else:
            leaves.append(path)

    walk(payload, [])
    out = []
    for n, path in enumerate(leaves):
        copy = json.loads(json.dumps(payload))
        node = copy
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = [strings[n % len(strings)], 10**30, -1e308, {"a": [[[]]]}, None][n % 5]
        out.append(copy)
    return out


#: Providers whose webhook is not JSON get their secret too, so their checks run (not the 503).
FORM_SECRETS = {"QUALTRICS_SHARED_KEY": "qualtrics-fuzz-key", "QUALTRICS_API_TOKEN": "qualtrics-fuzz-token"}


@MODULE_LOOP
async def test_every_webhook_with_hostile_bodies_and_headers_is_never_a_5xx(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    http = edge.slack.http
    clock = edge.runtime.clock
    for provider in PROVIDERS:  # every provider, signed or not, answers hostile bytes with a 4xx
        unsigned = [HUGE_NUMBER, DEEP_JSON, *HOSTILE[:12]]
        for body in unsigned:
            before = await snapshot(edge.runtime)
            response = await http.post(
                f"/webhooks/{provider}",
                content=body.encode(),
                headers={
                    "Content-Type": "application/json",
                    "webhook-timestamp": "9" * 400,
                    "webhook-id": body[:50].encode(),
                    "webhook-signature": "v1,AAAA",
                    "Typeform-Signature": "sha256=x",
                    "X-Delighted-Webhook-Signature": "0",
                },
            )
            assert 400 <= response.status_code < 500, (provider, body[:40])
            assert await snapshot(edge.runtime) == before
        if provider not in PAYLOADS:  # Qualtrics posts a form, not JSON: its hostile forms are above
            continue
        payload = json.loads(raw(PAYLOADS[provider]))
        signed = [
            HUGE_NUMBER.encode(),
            DEEP_JSON.encode(),
            b"\xff\xfe",
            *[json.dumps(m).encode() for m in _mutations(payload, HOSTILE)],
        ]
        for body in signed:
            before = await snapshot(edge.runtime)
            headers = {**SIGNERS[provider](body, at=clock()), "Content-Type": "application/json"}
            response = await http.post(f"/webhooks/{provider}", content=body, headers=headers)
            assert response.status_code < 500, (provider, body[:80], response.text[:200])
            if response.status_code >= 400:
                assert await snapshot(edge.runtime) == before, (provider, body[:80])
    quiet(caplog)


@MODULE_LOOP
async def test_feedback_items_with_hostile_fields_are_results_or_4xx(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    http = edge.slack.http
    base = {
        "external_id": "f-0",
        "source": "fuzz",
        "metric": "nps",
        "score": 9,
        "comment": "fine",
        "touchpoint": "checkout",
        "customer": {"id": "c-9"},
        "received_at": "2026-01-01T00:00:00Z",
        "tags": ["a"],
    }
    bodies: list[bytes] = [HUGE_NUMBER.encode(), DEEP_JSON.encode(), b"\xff", b"[]", b"null", b'"x"']
    for i, field in enumerate(base):
        for n, hostile in enumerate(HOSTILE[i % 6 :: 6]):
            bodies.append(json.dumps([{**base, "external_id": f"f-{i}-{n}", field: hostile}]).encode())
    for field in base:
        for value in (10**30, -1e308, [[[["x"]]]], {"id": {"id": {}}}, True, [HOSTILE[2]] * 60):
            bodies.append(json.dumps({**base, "external_id": f"g-{field}", field: value}).encode())
    for body in bodies:
        before = await snapshot(edge.runtime)
        response = await http.post("/feedback", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code in (200, 413, 422), (body[:80], response.text[:200])
        results = response.json().get("results") or []
        if response.status_code != 200 or all(r["status"] == "error" for r in results):
            assert await snapshot(edge.runtime) == before, body[:80]
    quiet(caplog)


@MODULE_LOOP
async def test_the_re_survey_page_with_hostile_tokens_and_forms_is_never_a_5xx(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    http = edge.slack.http
    before = await snapshot(edge.runtime)
    for hostile in HOSTILE:
        token = quote(hostile or "-", safe="")[:3000]
        assert (await http.get(f"/r/{token}")).status_code in (400, 404, 410)
        form = f"score={quote(hostile)}&comment={quote(hostile)}".encode()
        response = await http.post(
            f"/r/{token}", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code in (400, 404, 410, 413), (hostile[:40], response.status_code)
    assert await snapshot(edge.runtime) == before
    quiet(caplog)
