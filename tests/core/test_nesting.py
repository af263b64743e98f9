"""The one JSON nesting guard (:func:`chainwatch.core.rpc.nesting`), held to a plain reference:
parse with the json module, then measure the tree."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainwatch.core import rpc
from chainwatch.core.protocol import MAX_CONTAINERS, MAX_DEPTH

UNLIMITED = 10**9


def reference(value: Any) -> tuple[int, int]:
    """(depth, number of arrays and objects) of a parsed JSON value, by recursion."""
    if isinstance(value, list):
        children = [reference(v) for v in value]
    elif isinstance(value, dict):
        children = [reference(v) for v in value.values()]
    else:
        return 0, 0
    return 1 + max((d for d, _ in children), default=0), 1 + sum(c for _, c in children)


# Strings full of what confuses a scanner: quotes, backslashes, brackets, control characters.
tricky_text = st.text(alphabet=st.sampled_from('[]{}"\\/ ab\n\t\x00é😀'), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=40,
)
dump_options = st.sampled_from(
    [{}, {"indent": 1}, {"ensure_ascii": False}, {"separators": (",", ":")}]
)


@given(json_values, dump_options)
def test_exact_on_json_text(value: Any, options: dict[str, Any]) -> None:
    text = json.dumps(value, **options)
    assert rpc.nesting(text, UNLIMITED) == reference(json.loads(text))


# Text that is mostly not JSON, and sometimes is.
almost_json = st.text(alphabet=st.sampled_from('[]{}"\\,:1 a'), max_size=80)


@given(almost_json)
def test_exact_whenever_the_parser_accepts(text: str) -> None:
    depth, containers = rpc.nesting(text, UNLIMITED)
    try:
        value = json.loads(text)
    except ValueError:
        return
    assert (depth, containers) == reference(value)


@given(almost_json, st.integers(0, 6))
def test_error_when_and_only_when_over_the_limit(text: str, limit: int) -> None:
    error = rpc.nesting_error(text, limit)
    try:
        value = json.loads(text)
    except ValueError:
        return
    assert (error is not None) == (reference(value)[0] > limit)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[" * 33 + "]" * 33, "nested deeper than 32"),
        ("[" * 32 + "]" * 32, None),
        ("[" * 65_536, "nested deeper than 32"),
        # The message of the hostile-load report: a string that never closes, after brackets.
        ("[" * 33 + '"' + '\\"' * 32_700, "nested deeper than 32"),
        ("[" * 32 + '"' + '\\"' * 32_700, None),  # not JSON: the parser says so, quickly
        ('["' + '\\"' * 32_700 + '"' + "[" * 40, "nested deeper than 32"),
        ('"[' * 40, None),  # brackets inside strings
        ("[]" * 4097, "more than 4096 arrays and objects"),
        ("]" + "[" * 100, None),  # the parser stops at the first bracket
        ('{"a":' * 33 + "1" + "}" * 33, "nested deeper than 32"),
    ],
)
def test_client_limits(text: str, error: str | None) -> None:
    found = rpc.nesting_error(text, MAX_DEPTH, MAX_CONTAINERS)
    if error is None:
        assert found is None
    else:
        assert found is not None and error in found
