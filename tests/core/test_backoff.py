"""The reconnection delays, without a loop: a table of sequences and a property for the bounds."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainwatch.core.backoff import INITIAL_DELAY, MAX_DELAY, backoff


def draws(values: list[float]) -> Iterator[float]:
    yield from values


# (case, arguments, what draw returns each time, the first delays)
CASES = [
    ("defaults, no jitter", {}, [1.0] * 8, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
    ("defaults, most jitter", {}, [0.0] * 8, [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]),
    ("jitter in between", {}, [0.5, 0.25, 0.0, 1.0], [0.375, 0.625, 1.0, 4.0]),
    ("capped at once", {"initial": 5.0, "maximum": 5.0}, [1.0, 0.0, 1.0], [5.0, 2.5, 5.0]),
    ("docstring example", {"initial": 1.0, "maximum": 5.0}, [1.0] * 5, [1.0, 2.0, 4.0, 5.0, 5.0]),
    (
        "slower growth",
        {"initial": 1.0, "maximum": 10.0, "factor": 1.5},
        [1.0] * 4,
        [1.0, 1.5, 2.25, 3.375],
    ),
    ("constant", {"initial": 2.0, "factor": 1.0}, [1.0, 0.0, 1.0], [2.0, 1.0, 2.0]),
]


@pytest.mark.parametrize(("case", "kwargs", "drawn", "expected"), CASES, ids=[c[0] for c in CASES])
def test_delays(
    case: str, kwargs: dict[str, float], drawn: list[float], expected: list[float]
) -> None:
    source = draws(drawn)
    delays = backoff(**kwargs, draw=lambda: next(source))
    assert list(islice(delays, len(expected))) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"initial": 0.0}, "0 < initial"),
        ({"initial": -1.0}, "0 < initial"),
        ({"initial": 40.0, "maximum": 30.0}, "initial <= maximum"),
        ({"factor": 0.5}, "factor"),
    ],
)
def test_nonsense_is_refused_at_once(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        backoff(**kwargs)  # raises on the call, not on the first next()


@given(
    initial=st.floats(min_value=1e-3, max_value=60.0),
    extra=st.floats(min_value=0.0, max_value=600.0),
    factor=st.floats(min_value=1.0, max_value=4.0),
    drawn=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=40),
)
def test_delays_stay_between_half_and_the_whole_of_the_nominal_delay(
    initial: float, extra: float, factor: float, drawn: list[float]
) -> None:
    maximum = initial + extra
    source = draws(drawn)
    delays = list(
        islice(backoff(initial, maximum, factor=factor, draw=lambda: next(source)), len(drawn))
    )
    nominal = initial
    for n, (delay, r) in enumerate(zip(delays, drawn, strict=True)):
        assert nominal / 2 <= delay <= nominal * (1 + 1e-12), n
        assert delay <= maximum * (1 + 1e-12)
        assert delay == pytest.approx(nominal * (1 + r) / 2)
        nominal = min(maximum, nominal * factor)


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=20, max_size=20))
def test_the_defaults_reach_the_cap_and_stay_there(drawn: list[float]) -> None:
    source = draws(drawn)
    delays = list(islice(backoff(draw=lambda: next(source)), 20))
    assert INITIAL_DELAY / 2 <= delays[0] <= INITIAL_DELAY
    assert all(MAX_DELAY / 2 <= delay <= MAX_DELAY for delay in delays[7:])


def test_the_default_jitter_is_random() -> None:
    first = [next(backoff()) for _ in range(20)]
    assert all(INITIAL_DELAY / 2 <= delay <= INITIAL_DELAY for delay in first)
    assert len(set(first)) > 1
