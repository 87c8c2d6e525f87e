#!/usr/bin/env python3
"""Seeding the console demo: how long `python bot.py console --demo` makes a newcomer wait.

    python bench/demo_seed.py               # SQLite file in a temporary directory, three runs

`console --demo` builds the demo database once per version of the code and config and copies it on
later runs (cxbot.demo_cache); both are timed here. The build: each run migrates a fresh SQLite
file and seeds it (cxbot.demo.seed_demo: the history imported in one transaction, then 7 live days
hour by hour through the ingest, the case flows and the escalation tick). Printed per run: wall time
and this process's CPU time (every thread's), so a busy machine shows up as
wall ≫ CPU. The phases are timed by wrapping the three entry points the seeding calls, which leaves
the code under test as it is. The copy: the built database is stored as the snapshot, then restored
into a new file as `console --demo` does, timed the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxbot import demo
from cxbot.config import load_config
from cxbot.demo_cache import DemoSnapshots, build_demo_database, snapshot_key
from cxbot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def timed(phases: dict[str, float], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            phases[name] += time.perf_counter() - started

    return wrapper


async def one_run(directory: Path) -> tuple[float, float, dict[str, float], demo.SeedReport]:
    settings = Settings(_env_file=None, DATABASE_URL="sqlite://")  # type: ignore[call-arg]
    config = load_config(ROOT / "cxbot.example.yaml")
    phases: dict[str, float] = defaultdict(float)
    originals = (demo.ingest_items, demo._act, demo.escalation.tick)
    demo.ingest_items = timed(phases, "ingest", demo.ingest_items)
    demo._act = timed(phases, "case actions", demo._act)
    demo.escalation.tick = timed(phases, "escalation ticks", demo.escalation.tick)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        report = await build_demo_database(directory / "demo.db", settings=settings, config=config)
        return time.perf_counter() - wall, time.process_time() - cpu, dict(phases), report
    finally:
        demo.ingest_items, demo._act, demo.escalation.tick = originals


def copy_run(directory: Path, report: demo.SeedReport) -> tuple[float, float]:
    """Store the built database as the snapshot, then time restoring it as `console --demo` does."""
    snapshots = DemoSnapshots(directory / "cache")
    config = load_config(ROOT / "cxbot.example.yaml")
    snapshots.store(snapshot_key(config), directory / "demo.db", report)
    cpu, wall = time.process_time(), time.perf_counter()
    copied = snapshots.restore(snapshot_key(config), directory / "console.db")
    assert copied is not None and copied.cases == report.cases
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    walls, cpus, copies = [], [], []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as folder:
            wall, cpu, phases, report = asyncio.run(one_run(Path(folder)))
            copy_wall, copy_cpu = copy_run(Path(folder), report)
        walls.append(wall)
        cpus.append(cpu)
        copies.append(copy_wall)
        split = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(phases.items()))
        print(f"run {run}: build {wall:.2f} s wall, {cpu:.2f} s CPU ({split})")
        print(f"  copy of the built snapshot: {copy_wall:.3f} s wall, {copy_cpu:.3f} s CPU")
        print(f"  {report.summary()}, {report.actions} case actions")
    print(
        f"median of {args.runs}: build {statistics.median(walls):.2f} s wall, "
        f"{statistics.median(cpus):.2f} s CPU; copy {statistics.median(copies):.3f} s wall"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
