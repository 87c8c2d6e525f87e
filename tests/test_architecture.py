"""The core stays platform-neutral: `cxbot/` never imports Slack, Teams or our platform handlers."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

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


# --------------------------------------------------------------------------- neutral words, no cycles

#: Chat markup the core must not write: a platform renders the core's tokens (cxbot/markup.py).
PLATFORM_MARKUP = re.compile(
    r"<[@#][A-Z]|<!(?:channel|here|everyone|subteam)|<https?://[^>]*\||:(?:warning|rotating_light|white_check_mark|x):"
)
#: Where the core may name a platform: the registry of chat platforms and their config keys.
PLATFORM_REGISTRY = {"cxbot/config.py"}


def string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module that is not a docstring, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def core_files() -> list[Path]:
    return sorted((ROOT / "cxbot").rglob("*.py"))


def test_the_markup_checker_sees_slack_markup() -> None:
    assert all(PLATFORM_MARKUP.search(text) for text in ("<@U1>", "<#C1>", "<!channel>", ":warning: x"))
    assert not any(PLATFORM_MARKUP.search(text) for text in ("(?<!\\w)", "<!DOCTYPE html>", "a: b"))


def test_the_core_writes_no_platform_markup() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path in core_files()
        for line, text in string_literals(path)
        if PLATFORM_MARKUP.search(text)
    ]
    assert found == []


def test_the_core_names_no_platform_outside_the_registry() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in core_files()
        if str(path.relative_to(ROOT)) not in PLATFORM_REGISTRY
        for line, text in string_literals(path)
        if text.lower() in ("slack", "msteams")  # "teams" are CX teams (a verb, a config key, a table)
    ]
    assert found == []


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports when it is imported (not under TYPE_CHECKING, not in a
    function). `from package import module` imports the module, not a cycle through the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
                found.update(submodules or {node.module})
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(node.orelse)

    visit(tree.body)
    return found & known


def import_cycles(paths: list[Path]) -> list[list[str]]:
    """Strongly connected groups of more than one module in the import graph (Tarjan)."""
    modules = {module_name(path): path for path in paths}
    graph = {name: runtime_imports(path, set(modules)) - {name} for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for name in graph:
        if name not in index:
            connect(name)
    return cycles


def test_no_import_cycles_in_the_core_or_the_platforms() -> None:
    paths = [*core_files(), *sorted((ROOT / "handlers").rglob("*.py"))]
    assert import_cycles(paths) == []


def test_the_cycle_checker_finds_a_cycle(tmp_path: Path, monkeypatch: Any) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("from pkg import a\nthing = 1\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert import_cycles(sorted(package.glob("*.py"))) == [["pkg.a", "pkg.b"]]
