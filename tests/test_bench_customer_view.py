"""The customer view bench still runs end to end (tiny sizes), so its figures stay reproducible."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_customer_view_bench_runs_and_reaches_the_later_page() -> None:
    finished = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "customer_view.py"),
            *("--rows", "2000", "--customers", "100", "--items", "60", "--page", "3", "--repeat", "3"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "items 1-15 of 60;" in finished.stdout
    assert "page 3" in finished.stdout and "items 31-45 of 60;" in finished.stdout
