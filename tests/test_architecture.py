"""The core stays platform-neutral: `cxbot/` never imports Slack, Teams or our platform handlers."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

FORBIDDEN_IN_CORE = ("slack_bolt", "slack_sdk", "botbuilder", "botframework", "microsoft_agents", "handlers")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_never_imports_a_platform() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] in FORBIDDEN_IN_CORE
        )
        for path in sorted((ROOT / "cxbot").rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import slack_bolt\nfrom handlers.slack import x\nfrom . import local\n")
    assert imported_modules(sample) == {"slack_bolt", "handlers.slack"}
