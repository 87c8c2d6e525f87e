"""`python bot.py import`: real survey exports in, scores and cases out, broken rows named by line.

The expected scores and case counts are computed here from the raw files with the csv module and the
thresholds read straight from `cxbot.example.yaml`, not through cxbot, so a mistake in the importer,
the router or the score maths cannot hide behind the same mistake in the test.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from cxbot.ingest.csv_import import FALLBACK_DATE_FORMATS, ImportOptions, ImportUsageError, import_csv
from cxbot.models import Case, CaseEvent, Customer, Feedback
from cxbot.runtime import Runtime
from cxbot.scores.queries import window_scores
from tests.conftest import FIXTURES, ROOT
from tests.support.clock import FrozenClock

DATA = FIXTURES / "data"
SUPPORT = DATA / "flipkart_csat_support_sample.csv"
SEATS = DATA / "skytrax_seat.csv"

SUPPORT_OPTIONS = ImportOptions(
    mapping={
        "external_id": "Unique id",
        "score": "CSAT Score",
        "comment": "Customer Remarks",
        "touchpoint": "category",
        "received_at": "Survey_response_Date",
    },
    constants={"metric": "csat"},
)
SEAT_OPTIONS = ImportOptions(
    mapping={"score": "overall_rating", "comment": "content", "customer_id": "author", "received_at": "date"},
    constants={"metric": "nps", "touchpoint": "seat"},
)
#: The one Skytrax seat review without an overall rating (checked against the file in a test below).
SEAT_BLANK_RATING_LINE = 844


# --------------------------------------------------------------------------- independent expectations


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


class Thresholds:
    """design.md §3 read straight from cxbot.example.yaml: touchpoint, then team, then global."""

    def __init__(self) -> None:
        config = yaml.safe_load((ROOT / "cxbot.example.yaml").read_text(encoding="utf-8"))
        self.default: dict[str, float] = config["thresholds"]
        self.teams = {t["key"]: t.get("thresholds", {}) for t in config["teams"]}
        self.touchpoints: dict[str, dict[str, Any]] = {}
        for tp in config["touchpoints"]:
            for name in (tp["key"], *tp.get("aliases", [])):
                self.touchpoints[name.lower()] = tp
        self.negative_below: float = config["sentiment"]["negative_below"]

    def limit(self, metric: str, touchpoint: str) -> float:
        tp = self.touchpoints[touchpoint.lower()]
        for layer in (tp.get("thresholds", {}), self.teams[tp["team"]], self.default):
            if metric in layer:
                return float(layer[metric])
        raise AssertionError(f"no {metric} threshold")


def _vader(text: str) -> float:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return float(SentimentIntensityAnalyzer().polarity_scores(text[:5000])["compound"])


def expected_cases(
    rows: list[tuple[str, float, str, str]], *, thresholds: Thresholds, positive_from: float
) -> tuple[int, int]:
    """(cases a score opens, cases negative text adds) for (metric, score, comment, touchpoint) rows.

    A score at or below the threshold is negative. Below `positive_from` (not a promoter / not
    satisfied) a clearly negative comment adds a case; text never overrides a good score.
    """
    by_score = by_text = 0
    for metric, score, comment, touchpoint in rows:
        if score <= thresholds.limit(metric, touchpoint):
            by_score += 1
        elif (
            score < positive_from and comment.strip() and _vader(comment.strip()) < thresholds.negative_below
        ):
            by_text += 1
    return by_score, by_text


async def case_counts(runtime: Runtime) -> tuple[int, int]:
    """(cases opened by a score, cases opened by negative text) as stored."""
    async with runtime.sessions() as session:
        reasons = (await session.execute(select(Case.routing_reason))).scalars().all()
    by_text = sum(1 for r in reasons if r.startswith("negative text"))
    return len(reasons) - by_text, by_text


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.sessions() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def table_counts(runtime: Runtime) -> dict[str, int]:
    return {m.__name__: await count(runtime, m) for m in (Feedback, Customer, Case, CaseEvent)}


# --------------------------------------------------------------------------- real data


async def test_support_csat_export_gives_the_csat_and_cases_computed_by_hand(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    report = await import_csv(runtime, SUPPORT, SUPPORT_OPTIONS)
    rows = _rows(SUPPORT)
    assert report.errors == []
    assert (report.rows, report.created, report.stored) == (len(rows), len(rows), len(rows))

    scores = [int(r["CSAT Score"]) for r in rows]
    satisfied = sum(1 for s in scores if s >= 4)
    clock.now = datetime(2023, 9, 1, tzinfo=UTC)  # the survey month is inside the last 90 days
    response = await client.get("/api/scores", params={"metric": "csat", "window": "90d"})
    csat = response.json()["scores"]["csat"]
    assert csat["n"] == len(rows)
    assert csat["score"] == pytest.approx(100 * satisfied / len(rows), abs=0.005)

    thresholds = Thresholds()
    assert thresholds.limit("csat", "Refund Related") == 3  # billing's own CSAT threshold applies
    expected = expected_cases(
        [("csat", float(r["CSAT Score"]), r["Customer Remarks"], r["category"]) for r in rows],
        thresholds=thresholds,
        positive_from=4,
    )
    assert await case_counts(runtime) == expected
    assert report.cases == sum(expected)
    # Billing's threshold of 3 really mattered: a CSAT 3 about a refund opened a case.
    async with runtime.sessions() as session:
        billing_threes = (
            await session.execute(
                select(func.count())
                .select_from(Case)
                .join(Feedback, Feedback.id == Case.feedback_id)
                .where(Feedback.score == 3, Case.team_key == "billing")
            )
        ).scalar_one()
    assert billing_threes == sum(
        1
        for r in rows
        if r["CSAT Score"] == "3" and thresholds.touchpoints[r["category"].lower()]["team"] == "billing"
    )


async def test_skytrax_seat_reviews_give_the_nps_computed_by_hand(runtime: Runtime) -> None:
    report = await import_csv(runtime, SEATS, SEAT_OPTIONS)
    rows = _rows(SEATS)
    rated = [r for r in rows if r["overall_rating"].strip()]
    assert len(rows) - len(rated) == 1
    assert report.errors == [(SEAT_BLANK_RATING_LINE, "score: required for metric 'nps'")]
    assert (report.rows, report.created) == (len(rows), len(rated))

    ratings = [float(r["overall_rating"]) for r in rated]
    promoters = sum(1 for s in ratings if s >= 9)
    detractors = sum(1 for s in ratings if s <= 6)
    async with runtime.sessions() as session:
        scores = await window_scores(
            session,
            since=datetime(1970, 1, 1, tzinfo=UTC),
            until=datetime(2100, 1, 1, tzinfo=UTC),
            metrics=("nps",),
        )
    assert scores["nps"].n == len(rated)
    assert scores["nps"].score == pytest.approx(100 * (promoters - detractors) / len(rated))

    expected = expected_cases(
        [("nps", float(r["overall_rating"]), r["content"], "seat") for r in rated],
        thresholds=Thresholds(),
        positive_from=9,
    )
    assert await case_counts(runtime) == expected
    assert await count(runtime, Customer) == len({r["author"].strip() for r in rated})


def test_the_blank_rating_really_is_on_line_844() -> None:
    # Physical lines, counted without the csv module (one review has a line break in its text).
    lines = SEATS.read_text(encoding="utf-8").split("\n")
    line = lines[SEAT_BLANK_RATING_LINE - 1]
    assert line.startswith('"philippine-airlines"') and '"J Sabaduquia"' in line
    header = next(csv.reader([lines[0]]))
    assert next(csv.reader([line]))[header.index("overall_rating")] == ""


async def test_importing_the_same_files_again_changes_nothing(runtime: Runtime) -> None:
    await import_csv(runtime, SEATS, SEAT_OPTIONS)
    await import_csv(runtime, SUPPORT, SUPPORT_OPTIONS)
    before = await table_counts(runtime)

    seats = await import_csv(runtime, SEATS, SEAT_OPTIONS)  # ids derived from the rows themselves
    support = await import_csv(runtime, SUPPORT, SUPPORT_OPTIONS)  # ids from the "Unique id" column

    assert (seats.created, seats.updated, seats.duplicate, seats.cases) == (0, 0, 1257, 0)
    assert seats.errors == [(SEAT_BLANK_RATING_LINE, "score: required for metric 'nps'")]
    assert (support.created, support.updated, support.duplicate, support.cases) == (0, 0, 161, 0)
    assert await table_counts(runtime) == before


# --------------------------------------------------------------------------- broken rows

BROKEN = (
    "\ufeffexternal_id,metric,score,comment,received_at,customer\r\n"  # 1 (with a byte-order mark)
    "a1,csat,5,Great,2026-10-01,c-good-1\r\n"  # 2
    "a2,csat,abc,Bad score,2026-10-01,c-bad-2\r\n"  # 3: score is not a number
    "a3,csat,9,Out of range,2026-10-01,c-bad-3\r\n"  # 4: CSAT is 1-5
    'a4,nps,7,"first line\r\n'  # 5: a comment over three physical lines...
    "second line\r\n"  # 6
    'third, with ""quotes""",2026-10-02T08:30:00Z,c-good-4\r\n'  # 7
    "a5,nps,3,Bad date,31/12/2026,c-bad-5\r\n"  # 8: ...before a broken row; day or month first?
    ",nps,3,Missing id,2026-10-03,c-bad-6\r\n"  # 9: no external id
    "\r\n"  # 10: a blank line is not a row
    "a6,nps,10,Fine,02-Oct-26,c-good-6\r\n"  # 11
    "a7,nps,10,Too few columns\r\n"  # 12
    'a8,ces,2,"Took\nforever",2026-10-05 09:15:00,c-good-8\r\n'  # 13-14 (a bare LF inside quotes)
    "a9,nps,,No score,2026-10-05,c-bad-9\r\n"  # 15: score missing
    "a10,csat,1,Awful,2026-10-06,c-good-10\r\n"  # 16
    'a11,csat,0,"Zero is\r\nnot on the scale",2026-10-07,c-bad-11\r\n'  # 17-18: named by its first line
)
BROKEN_LINES = {
    3: "score: 'abc' is not a number",
    4: "score: 9 is out of range 1-5 for csat",
    8: "received_at: '31/12/2026' is not an ISO 8601 date",
    9: "external_id: required",
    12: "expected 6 columns, found 4",
    15: "score: required for metric 'nps'",
    17: "score: 0 is out of range 1-5 for csat",
}
BROKEN_OPTIONS = ImportOptions(
    mapping={
        "external_id": "external_id",
        "metric": "metric",
        "score": "score",
        "comment": "comment",
        "received_at": "received_at",
        "customer_id": "customer",
    },
    batch_size=2,  # broken and good rows share batches
)


@pytest.fixture
def broken_csv(tmp_path: Path) -> Path:
    path = tmp_path / "broken.csv"
    path.write_bytes(BROKEN.encode("utf-8"))
    return path


async def test_broken_rows_are_reported_by_line_and_the_rest_land(runtime: Runtime, broken_csv: Path) -> None:
    report = await import_csv(runtime, broken_csv, BROKEN_OPTIONS)

    assert [line for line, _ in report.errors] == sorted(BROKEN_LINES)
    for line, reason in report.errors:
        assert reason.startswith(BROKEN_LINES[line]), (line, reason)
    assert (report.rows, report.created, report.stored) == (12, 5, 5)
    assert report.summary().startswith("12 rows read: 5 created, 0 updated, 0 duplicate, 7 errors; ")

    async with runtime.sessions() as session:
        stored = dict((await session.execute(select(Feedback.external_id, Feedback.comment))).all())
        customers = set((await session.execute(select(Customer.external_id))).scalars())
        opened = set(
            (
                await session.execute(
                    select(Feedback.external_id).join(Case, Case.feedback_id == Feedback.id)
                )
            ).scalars()
        )
        received = dict((await session.execute(select(Feedback.external_id, Feedback.received_at))).all())
    assert set(stored) == {"a1", "a4", "a6", "a8", "a10"}
    assert stored["a4"] == 'first line\r\nsecond line\r\nthird, with "quotes"'
    assert stored["a8"] == "Took\nforever"
    # Nothing of a broken row was written, not even its customer.
    assert customers == {"c-good-1", "c-good-4", "c-good-6", "c-good-8", "c-good-10"}
    assert opened == {"a8", "a10"}  # CES 2 and CSAT 1; the NPS 7 comment is not negative text
    assert received["a6"] == datetime(2026, 10, 2, tzinfo=UTC)  # 02-Oct-26: a month name, no guess
    assert received["a4"] == datetime(2026, 10, 2, 8, 30, tzinfo=UTC)


async def test_an_ambiguous_date_is_read_only_with_the_format_given(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "dates.csv"
    path.write_text("id,score,when\nd1,9,01/02/2026\nd2,9,2026-02-03\nd3,9,13/02/2026\n", encoding="utf-8")
    mapping = {"external_id": "id", "score": "score", "received_at": "when"}

    guessed = await import_csv(runtime, path, ImportOptions(mapping=mapping, constants={"metric": "nps"}))
    assert [line for line, _ in guessed.errors] == [2, 4]
    assert "--date-format" in guessed.errors[0][1]

    told = await import_csv(
        runtime, path, ImportOptions(mapping=mapping, constants={"metric": "nps"}, date_format="%d/%m/%Y")
    )
    assert told.errors == []
    async with runtime.sessions() as session:
        received = dict((await session.execute(select(Feedback.external_id, Feedback.received_at))).all())
    assert received == {
        "d1": datetime(2026, 2, 1, tzinfo=UTC),
        "d2": datetime(2026, 2, 3, tzinfo=UTC),
        "d3": datetime(2026, 2, 13, tzinfo=UTC),
    }
    assert "%m/%d/%Y" not in FALLBACK_DATE_FORMATS and "%d/%m/%Y" not in FALLBACK_DATE_FORMATS


async def test_tags_customer_details_and_source(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "export 2026.csv"
    path.write_text(
        "id,score,labels,who,name,mail,src\n"
        "t1,2,web; vip ,c-1,Ada Lovelace,ada@example.com,\n"
        "t2,9,ios,c-2,,,kiosk-survey\n",
        encoding="utf-8",
    )
    options = ImportOptions(
        mapping={
            "external_id": "id",
            "score": "score",
            "tags": "labels",
            "customer_id": "who",
            "customer_name": "name",
            "customer_email": "mail",
            "source": "src",
        },
        constants={"metric": "nps", "touchpoint": "Refund Related"},
    )
    report = await import_csv(runtime, path, options)
    assert (report.created, report.errors, report.cases) == (2, [], 1)
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(
                    Feedback.external_id, Feedback.source, Feedback.tags, Feedback.touchpoint_key
                ).order_by(Feedback.external_id)
            )
        ).all()
        ada = (await session.execute(select(Customer).where(Customer.external_id == "c-1"))).scalar_one()
    assert [tuple(r) for r in rows] == [
        ("t1", "csv:export 2026.csv", ["web", "vip"], "refunds"),
        ("t2", "kiosk-survey", ["ios"], "refunds"),
    ]
    assert (ada.name, ada.email) == ("Ada Lovelace", "ada@example.com")


async def test_a_row_without_an_id_column_keeps_its_id_when_other_rows_change(
    runtime: Runtime, tmp_path: Path
) -> None:
    first = tmp_path / "first.csv"
    first.write_text("score,comment\n9,Lovely\n3,Slow\n", encoding="utf-8")
    second = tmp_path / "second.csv"
    second.write_text("score,comment\n10,New one\n3,Slow\n9,Lovely\n", encoding="utf-8")
    options = ImportOptions(mapping={"score": "score", "comment": "comment"}, constants={"metric": "nps"})

    await import_csv(runtime, first, replace(options, source="survey"))
    again = await import_csv(runtime, second, replace(options, source="survey"))
    assert (again.created, again.duplicate) == (1, 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ImportOptions(mapping={"nosuchfield": "score"}, constants={"metric": "nps"}), "unknown field"),
        (ImportOptions(mapping={"score": "Score "}, constants={"metric": "nps"}), "no column 'Score '"),
        (
            ImportOptions(mapping={"score": "score"}, constants={"metric": "nps", "colour": "x"}),
            "unknown field",
        ),
        (ImportOptions(mapping={"score": "score"}), "metric: map a column"),
        (ImportOptions(mapping={"score": "score"}, constants={"metric": "stars"}), "expected one of"),
        (ImportOptions(mapping={"metric": "score"}, constants={"metric": "nps"}), "both mapped"),
        (ImportOptions(constants={"metric": "nps"}), "needs a score column"),
        (
            ImportOptions(mapping={"score": "score"}, constants={"metric": "nps", "external_id": "x"}),
            "cannot be --set",
        ),
        (
            ImportOptions(mapping={"score": "score"}, constants={"metric": "nps", "received_at": "1/2/26"}),
            "received_at",
        ),
        (ImportOptions(mapping={"score": "score"}, constants={"metric": "nps"}, batch_size=0), "batch size"),
    ],
)
async def test_unusable_options_are_refused_before_anything_is_written(
    runtime: Runtime, tmp_path: Path, options: ImportOptions, message: str
) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("id,score\nr1,9\n", encoding="utf-8")
    with pytest.raises(ImportUsageError, match=message):
        await import_csv(runtime, path, options)
    assert await count(runtime, Feedback) == 0


async def test_missing_and_empty_files_are_usage_errors(runtime: Runtime, tmp_path: Path) -> None:
    options = ImportOptions(mapping={"score": "score"}, constants={"metric": "nps"})
    with pytest.raises(ImportUsageError, match="no such file"):
        await import_csv(runtime, tmp_path / "absent.csv", options)
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(ImportUsageError, match="empty file"):
        await import_csv(runtime, tmp_path / "empty.csv", options)


async def test_progress_bar_goes_to_stderr(
    runtime: Runtime, broken_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await import_csv(runtime, broken_csv, replace(BROKEN_OPTIONS, progress=True))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "import" in captured.err and "100%" in captured.err


# --------------------------------------------------------------------------- the command line


def run_cli(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "CXBOT_CONFIG": "cxbot.example.yaml",
    }
    return subprocess.run(
        [sys.executable, "bot.py", "import", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stored_rows(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM feedback").fetchone()[0])


def test_cli_imports_a_file_and_names_each_broken_line(tmp_path: Path, broken_csv: Path) -> None:
    database = tmp_path / "cli.db"
    maps = [f"--map={field}={column}" for field, column in BROKEN_OPTIONS.mapping.items()]
    done = run_cli(str(broken_csv), *maps, database=database)
    assert done.returncode == 0, done.stderr
    errors = [
        line.removeprefix(f"{broken_csv}:").split(": ", 1)
        for line in done.stderr.splitlines()
        if line.startswith(f"{broken_csv}:")
    ]
    assert [int(number) for number, _ in errors] == sorted(BROKEN_LINES)
    for number, reason in errors:
        assert reason.startswith(BROKEN_LINES[int(number)]), (number, reason)
    assert "12 rows read: 5 created, 0 updated, 0 duplicate, 7 errors" in done.stderr
    assert stored_rows(database) == 5

    support = run_cli(
        str(SUPPORT),
        "--set",
        "metric=csat",
        *(f"--map={field}={column}" for field, column in SUPPORT_OPTIONS.mapping.items()),
        "--no-progress",
        database=database,
    )
    assert support.returncode == 0, support.stderr
    assert "161 rows read: 161 created" in support.stderr
    assert stored_rows(database) == 5 + 161


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--map", "nosuchfield=x", "--set", "metric=nps"], "--map: unknown field(s) 'nosuchfield'"),
        (
            ["--map", "score=Score", "--set", "metric=nps"],
            "--map score=Score: no column 'Score' in the header",
        ),
    ],
)
def test_cli_refuses_a_bad_mapping_with_exit_2(
    tmp_path: Path, broken_csv: Path, args: list[str], message: str
) -> None:
    database = tmp_path / "cli.db"
    done = run_cli(str(broken_csv), *args, database=database)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert stored_rows(database) == 0


async def test_a_file_that_stops_being_utf8_keeps_what_came_before(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "latin1-tail.csv"
    good = "".join(f"r{i},9,Fine\n" for i in range(2000))  # well past the first block the decoder reads
    path.write_bytes(b"id,score,comment\n" + good.encode() + "r-last,9,Très bien\n".encode("latin-1"))
    options = ImportOptions(
        mapping={"external_id": "id", "score": "score", "comment": "comment"},
        constants={"metric": "nps"},
        batch_size=100,
    )
    with pytest.raises(ImportUsageError, match="not UTF-8 text after line"):
        await import_csv(runtime, path, options)
    stored = await count(runtime, Feedback)
    assert 0 < stored < 2000
    assert stored % 100 == 0  # whole batches, nothing half-written


@pytest.mark.parametrize("bulk", [True, False], ids=["lean", "portable"])
async def test_the_edge_limits_hold_for_an_import_on_either_path(
    runtime: Runtime, tmp_path: Path, bulk: bool
) -> None:
    """cxbot.limits at the CSV edge too: a date far ahead of the clock and an over-long tag are
    errors naming the field, whether the lean check or the portable way reads the row."""
    ahead = (runtime.clock() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "limits.csv"
    path.write_text(
        "id,score,labels,at\n"
        "ok,9,web,2026-10-01T09:00:00Z\n"
        f"ahead,9,web,{ahead}\n"
        f"tag,9,{'x' * 101},2026-10-01T09:00:00Z\n",
        encoding="utf-8",
    )
    options = ImportOptions(
        mapping={"external_id": "id", "score": "score", "tags": "labels", "received_at": "at"},
        constants={"metric": "nps", "touchpoint": "Refund Related"},
        bulk=bulk,
    )
    report = await import_csv(runtime, path, options)
    assert report.created == 1
    assert [(line, reason.split(":")[0]) for line, reason in report.errors] == [
        (3, "received_at"),
        (4, "tags"),
    ]
    async with runtime.sessions() as session:
        assert list((await session.execute(select(Feedback.external_id))).scalars()) == ["ok"]
