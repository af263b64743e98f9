"""The core does no I/O: no module of chainwatch.core imports asyncio, websockets or sqlalchemy,
directly or through what it imports."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import chainwatch.core

FORBIDDEN = ("asyncio", "websockets", "sqlalchemy")
CORE = Path(chainwatch.core.__file__).parent
MODULES = sorted(f"chainwatch.core.{m.name}" for m in pkgutil.iter_modules([str(CORE)]))


def test_core_modules_do_not_import_io_libraries() -> None:
    assert len(MODULES) >= 10
    for path in sorted(CORE.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_importing_the_core_loads_no_io_library() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(n for n in {FORBIDDEN!r} if n in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
