"""The token bucket, with a clock we move by hand."""

from __future__ import annotations

import pytest

from chainwatch.core.ratelimit import TokenBucket


def test_burst_then_refused() -> None:
    bucket = TokenBucket(rate=5, now=0.0)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]


def test_refills_at_rate() -> None:
    bucket = TokenBucket(rate=10, now=0.0)
    for _ in range(10):
        assert bucket.take(0.0)
    assert not bucket.take(0.05)  # half a token back
    assert bucket.take(0.1)  # one token: 0.05 s more
    assert not bucket.take(0.1)


def test_never_more_than_burst() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    # An hour idle gives back three tokens, not 7200.
    assert [bucket.take(3600.0) for _ in range(4)] == [True, True, True, False]


def test_refused_requests_cost_nothing() -> None:
    bucket = TokenBucket(rate=1, now=0.0)
    assert bucket.take(0.0)
    for _ in range(100):
        assert not bucket.take(0.5)
    assert bucket.take(1.0)


def test_sustained_rate_is_the_configured_rate() -> None:
    bucket = TokenBucket(rate=50, now=0.0)
    granted = sum(bucket.take(i / 1000) for i in range(10_000))  # 1000 requests/s for 10 s
    assert 50 * 10 <= granted <= 50 * 10 + 50  # the rate, plus the initial burst


def test_clock_going_back_refills_nothing() -> None:
    bucket = TokenBucket(rate=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, None), (-1, None), (1, 0.5)])
def test_invalid(rate: float, burst: float | None) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_fractional_rate() -> None:
    bucket = TokenBucket(rate=0.5, now=0.0)
    assert bucket.burst == 1.0
    assert bucket.take(0.0)
    assert not bucket.take(1.9)
    assert bucket.take(2.0)
