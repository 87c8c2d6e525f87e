"""The Slack and Teams acknowledgement and ingest benches still run end to end, so their figures stay
reproducible."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_slack_ack_bench_runs_and_checks_the_database() -> None:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "slack_ack.py"), "--requests", "30", "--concurrency", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "30 requests: 10 take, 10 note, 10 ack" in finished.stdout
    assert "database checked: every take, acknowledgement and note is recorded" in finished.stdout
    assert "cxbot work done" in finished.stdout  # the work after the early answers is timed too


def test_latency_bench_quick_mode_reports_each_rate_and_the_capacity() -> None:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "latency.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    for rate in ("rate 4 commands/s + 5 feedback/s", "rate 8 commands/s + 10 feedback/s"):
        assert rate in finished.stdout and "0 dropped connections, 0 not 200" in finished.stdout
    for leg in ("  ack    p50", "  reply  p50", "  card   p50"):
        assert finished.stdout.count(leg) == 2, finished.stdout
    assert "capacity: " in finished.stdout


def test_teams_ack_bench_quick_mode_times_signed_invokes_and_checks_the_database() -> None:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "teams_ack.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "12 timed invokes: 4 take, 4 note, 4 ack" in finished.stdout
    for line in ("cxbot (writes)             rate 12/s", "bare handler (answers)     rate 12/s"):
        assert line in finished.stdout and "0 not answered as expected, 0 dropped" in finished.stdout
    assert "ratio cxbot/bare: p50 " in finished.stdout
    assert "database checked: every take, acknowledgement and note is recorded" in finished.stdout


def test_ingest_bench_runs_every_leg() -> None:
    finished = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "ingest.py"),
            "--items",
            "300",
            "--batch",
            "100",
            "--csv-batch",
            "128",
            "--webhooks",
            "40",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    for line in (
        "(a) HTTP POST /feedback:",
        "(b) CSV import:",
        "(c) raw executemany:",
        "http/baseline:",
        "csv/baseline:",
        "(d) signed webhooks:",
        "webhooks/feedback:",
    ):
        assert line in finished.stdout, finished.stdout


def test_ingest_bench_changed_pii_mode_stores_every_item() -> None:
    """`--changed-pii` (every item renames its stored customer) still creates every item on both legs."""
    finished = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "ingest.py"),
            *("--items", "300", "--batch", "100", "--csv-batch", "128", "--changed-pii"),
            *("--skip", "baseline", "--skip", "webhooks"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "changed PII on every item" in finished.stdout
    assert "(a) HTTP POST /feedback:" in finished.stdout and "(b) CSV import:" in finished.stdout
