"""The Slack acknowledgement bench still runs end to end, so its figures stay reproducible."""

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
