"""The exception tree: every exception class of chainwatch is under ChainwatchError, and the
drawing in the docstring of chainwatch.errors is the tree the classes make."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import chainwatch
import chainwatch.errors
from chainwatch.errors import ChainwatchError

# Alembic's env.py runs a migration when imported: not a module to load here.
SKIPPED_PACKAGES = ("chainwatch.store.migrations",)
# Exception classes that are still outside the tree, by qualified name: each one is a gap.
OUTSIDE: set[str] = set()
DRAWN = re.compile(r"^(?P<indent>[ │]*)[├└]── (?P<name>\w+)(?: \((?P<builtin>\w+)\))?")


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of chainwatch, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(chainwatch.__path__, "chainwatch."):
        if module_info.name.startswith(SKIPPED_PACKAGES):
            continue
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def drawing() -> dict[str, tuple[str, str | None]]:
    """Each class of the docstring's drawing: (its parent in the drawing, its builtin mixin)."""
    doc = chainwatch.errors.__doc__ or ""
    parents = ["ChainwatchError"]
    drawn: dict[str, tuple[str, str | None]] = {}
    for line in doc.splitlines():
        match = DRAWN.match(line.removeprefix("    "))
        if match is None:
            continue
        depth = len(match["indent"]) // 4
        del parents[depth + 1 :]
        drawn[match["name"]] = (parents[depth], match["builtin"])
        parents.append(match["name"])
    return drawn


def test_every_exception_class_is_in_the_tree() -> None:
    classes = exception_classes()
    assert "chainwatch.core.filters.FilterError" not in classes  # defined once, in errors.py
    assert {"chainwatch.errors.FilterError", "chainwatch.core.rpc.InvalidRequest"} <= set(classes)
    outside = {name for name, cls in classes.items() if not issubclass(cls, ChainwatchError)}
    assert outside == OUTSIDE


def test_the_drawing_is_the_tree() -> None:
    public = {
        cls.__name__: cls
        for cls in exception_classes().values()
        if issubclass(cls, ChainwatchError) and not cls.__name__.startswith("_")
    }
    drawn = drawing()
    assert set(drawn) == set(public) - {"ChainwatchError"}
    for name, (parent, builtin) in drawn.items():
        cls = public[name]
        tree_bases = [b.__name__ for b in cls.__bases__ if issubclass(b, ChainwatchError)]
        other_bases = [b.__name__ for b in cls.__bases__ if not issubclass(b, ChainwatchError)]
        assert tree_bases == [parent], name
        assert other_bases == ([builtin] if builtin else []), name


def test_errors_keep_their_import_locations() -> None:
    from chainwatch.core.filters import FilterError
    from chainwatch.core.rpc import InvalidRequest

    assert FilterError is chainwatch.errors.FilterError
    assert issubclass(FilterError, ValueError)
    assert issubclass(InvalidRequest, chainwatch.errors.RemoteProtocolError)
    assert issubclass(InvalidRequest, ValueError)
