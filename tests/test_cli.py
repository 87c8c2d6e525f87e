"""The command line as an operator uses it: real processes, exit codes and messages (design.md §11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cxbot.cli import EXTRA_OF, main
from tests.conftest import ROOT
from tests.support.databases import fresh_sqlite
from tests.support.server import ServerProcess


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CXBOT_", "DATABASE_URL", "SLACK_"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_config_accepts_the_example() -> None:
    result = run("check-config", "cxbot.example.yaml")
    assert result.returncode == 0, result.stderr
    assert "cxbot.example.yaml: OK (5 teams, 16 touchpoints, 3 routing rules)" in result.stdout


def test_check_config_lists_every_error_and_exits_2(tmp_path: Path) -> None:
    text = (ROOT / "cxbot.example.yaml").read_text()
    text = text.replace("timezone: Europe/Berlin", "timezone: Europe/Lodnon").replace(
        "fallback_team: support", "fallback_team: nobody"
    )
    bad = tmp_path / "cxbot.yaml"
    bad.write_text(text)
    result = run("check-config", str(bad))
    assert result.returncode == 2
    assert "teams[2].timezone: 'Europe/Lodnon' is not a time zone" in result.stderr
    assert "routing.fallback_team: 'nobody' is not a team" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_path_comes_from_the_environment(tmp_path: Path) -> None:
    result = run("check-config", env={"CXBOT_CONFIG": str(tmp_path / "missing.yaml")})
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr and "file not found" in result.stderr


def test_bad_usage_and_bad_environment_exit_2() -> None:
    unknown = run("frobnicate")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
    bad_port = run("check-config", "cxbot.example.yaml", env={"PORT": "eighty"})
    assert bad_port.returncode == 2
    assert "PORT='eighty'" in bad_port.stderr and "Traceback" not in bad_port.stderr


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    database = tmp_path / "cx.db"
    result = run("db", "upgrade", env={"DATABASE_URL": f"sqlite:///{database}"})
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stderr
    again = run("db", "upgrade", env={"DATABASE_URL": f"sqlite:///{database}"})
    assert again.returncode == 0


def test_unsupported_database_is_one_clear_line(tmp_path: Path) -> None:
    result = run("db", "upgrade", env={"DATABASE_URL": "mysql://localhost/cx"})
    assert result.returncode == 1
    assert "DATABASE_URL: unsupported database 'mysql'" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_starts_with_the_example_config_on_sqlite_without_credentials(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "CXBOT_CONFIG": str(ROOT / "cxbot.example.yaml"),
    }
    with ServerProcess(env) as server:
        health = httpx.get(f"{server.url}/healthz")
        assert health.json() == {"status": "ok"}
        refused = httpx.post(f"{server.url}/feedback", json={})
        assert refused.status_code == 503
        assert refused.json() == {"error": "CXBOT_API_KEY is not set on the server, so the API is disabled"}
    assert any("CXBOT_API_KEY is not set" in line for line in server.log)
    assert (tmp_path / "serve.db").exists()


#: Run bot.py as if no extra were installed: importing any module of an extra fails as it would.
#: The blocker is in place before anything of cxbot is imported (an import of cxbot would pull in
#: what it imports first); the extras' modules come in CXBOT_TEST_EXTRA_MODULES.
WITHOUT_EXTRAS = """
import importlib.abc, os, runpy, sys
EXTRA_MODULES = set(os.environ["CXBOT_TEST_EXTRA_MODULES"].split(","))

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in EXTRA_MODULES:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
import cxbot.demo, cxbot.demo_cache  # the demo's seeding and its snapshot, without the extras too
sys.argv = ["bot.py", *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_the_console_runs_without_the_serve_and_postgres_extras(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pip install -e .` (the README's first command) installs no extra; the console must not need one."""
    url = fresh_sqlite(sqlite_template, tmp_path)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CXBOT_", "DATABASE_URL", "SLACK_"))}
    env = {**clean, "DATABASE_URL": url, "CXBOT_CONFIG": str(ROOT / "cxbot.example.yaml"), "COLUMNS": "80"}
    env["CXBOT_TEST_EXTRA_MODULES"] = ",".join(EXTRA_OF)

    def bot(*args: str, typed: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT_EXTRAS, *args],
            cwd=ROOT,
            env=env,
            input=typed,
            capture_output=True,
            text=True,
            timeout=60,
        )

    console = bot("console", typed="help\nlist new\n:digest support\n:quit\n")
    assert console.returncode == 0, console.stderr
    assert "/cx ack CX-42\n    acknowledge" in console.stdout and "New cases: none." in console.stdout
    # What needs an extra says which one, in process: a module set to None in sys.modules cannot be
    # imported, as when it is not installed.
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    monkeypatch.setenv("CXBOT_CONFIG", str(ROOT / "cxbot.example.yaml"))
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["serve"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "serve needs the 'serve' extra (uvicorn is not installed): "
            "pip install -e '.[serve]' (or pip install 'cxbot[serve]')"
        )
    )
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    monkeypatch.setenv("DATABASE_URL", "postgresql://cxbot@127.0.0.1:9/cxbot")
    assert main(["db", "upgrade"]) == 2
    assert "db needs the 'postgres' extra (asyncpg is not installed)" in capsys.readouterr().err
