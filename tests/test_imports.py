"""The package's import graph and exports: no cycles between modules, every export resolves."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import chainwatch

PACKAGE = Path(chainwatch.__file__).parent
# Alembic's scripts are loaded by alembic, not imported by chainwatch.
SKIPPED = ("chainwatch.store.migrations",)


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if not name.startswith(SKIPPED):
            files[name] = path
    return files


def import_graph() -> dict[str, set[str]]:
    """Module -> the chainwatch modules it imports, at the top or inside a function (an import
    deferred into a function still makes a cycle, only a later one). ``from package import
    submodule`` counts as importing the submodule; a package's ``__init__`` importing its own
    submodules is how packages are made, not a cycle."""
    files = module_files()
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                submodules = [f"{node.module}.{a.name}" for a in node.names]
                submodules = [s for s in submodules if s in files]
                targets = submodules or [node.module]
            for target in targets:
                if target in files and target != name and not target.startswith(name + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_deferred_imports() -> None:
    graph = import_graph()
    assert "chainwatch.watchcmd" in graph["chainwatch.cli"]  # imported inside `watch`
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_each_command_module_imports_first_in_a_fresh_interpreter() -> None:
    for name in ("chainwatch.cli", "chainwatch.watchcmd", "chainwatch.tail", "chainwatch.devnet"):
        subprocess.run([sys.executable, "-c", f"import {name}"], check=True, timeout=60)


def test_every_export_resolves() -> None:
    exported = 0
    for name in module_files():
        module = importlib.import_module(name)
        for export in getattr(module, "__all__", ()):
            assert hasattr(module, export), f"{name}.__all__ names {export}, which is not there"
            exported += 1
    assert exported > 30
