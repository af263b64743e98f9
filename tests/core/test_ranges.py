"""eth_getLogs chunking against the refusals real providers send."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainwatch.core.ranges import RangePolicy, Refusal, is_range_error, parse_refusal

ALCHEMY_SIZE = (
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range "
    "and no limit on the response size, or you can request any block range with a cap of 10K "
    "logs in the response. Based on your parameters, this block range should work: "
    "[0x0, 0x1d9f]"
)
ALCHEMY_FREE_TIER = (
    "Under the Free tier plan, you can make eth_getLogs requests with up to a 10 block range. "
    "Based on your parameters, this block range should work: [0x1312d00, 0x1312d09]. Upgrade to "
    "PAY AS YOU GO, or Enterprise for larger block range requests."
)
INFURA = "query returned more than 10000 results. Try with this block range [0x1, 0x8ff]."

# (provider, code, message, requested from, requested to, span of the next request)
REFUSALS = [
    # A suggested range smaller than the request is taken as is.
    ("alchemy", -32602, ALCHEMY_SIZE, 0x0, 9_999, 0x1D9F + 1),
    ("alchemy free tier", -32600, ALCHEMY_FREE_TIER, 0x1312D00, 0x1312D00 + 1_999, 10),
    ("infura", -32005, INFURA, 0x1, 0x1000, 0x8FF),
    ("infura, one block left", -32005, INFURA, 0x1, 0x1, 1),
    # A suggestion no smaller than the request: the block limit the message names.
    ("alchemy, suggestion too big", -32602, ALCHEMY_SIZE, 0x0, 0x1D9F, 2_000),
    ("quicknode", -32602, "eth_getLogs is limited to a 10,000 range", 0, 19_999, 10_000),
    ("publicnode", -32000, "exceed maximum block range: 2000", 0, 4_999, 2_000),
    ("bsc", -32000, "exceed maximum block range: 5000", 100, 50_099, 5_000),
    ("erigon", -32602, "block range exceeds limit of 1000", 0, 4_999, 1_000),
    (
        "blastapi",
        -32000,
        "eth_getLogs and eth_newFilter are limited to a 10,000 blocks range",
        0,
        49_999,
        10_000,
    ),
    # A named limit no smaller than the request does not apply: halve.
    ("erigon, limit above request", -32602, "block range exceeds limit of 1000", 0, 499, 250),
    (
        "quicknode, limit above request",
        -32602,
        "eth_getLogs is limited to a 10,000 range",
        0,
        99,
        50,
    ),
    # Nothing to go by: halve.
    ("geth", -32000, "query returned more than 10000 results", 0, 999, 500),
    ("geth, odd span", -32005, "query returned more than 10000 results", 0, 998, 499),
    ("nethermind", -32000, "block range too large", 100, 2_099, 1_000),
    ("generic", -32602, "range exceeds limit", 0, 1_999, 1_000),
    ("ankr", -32600, "block range is too wide", 0, 2_999, 1_500),
    ("alchemy, short", -32602, "Log response size exceeded", 0, 1_999, 1_000),
    ("cloudflare", -32000, "query timeout exceeded", 0, 1_999, 1_000),
    ("two blocks", -32000, "block range too large", 7, 8, 1),
]


@pytest.mark.parametrize(
    ("code", "message", "first", "last", "span"),
    [row[1:] for row in REFUSALS],
    ids=[row[0] for row in REFUSALS],
)
def test_provider_refusal(code: int, message: str, first: int, last: int, span: int) -> None:
    assert is_range_error(code, message)
    assert parse_refusal(message, first, last) == Refusal(span)
    policy = RangePolicy(max_range=last - first + 1)
    assert policy.next_range(first, last) == (first, last)
    assert policy.refused(message, first, last) is (last > first)
    assert policy.next_range(first, last) == (first, first + span - 1)


# Errors that say nothing about the range: shrinking it would not help, so they are raised.
NOT_RANGE_ERRORS = [
    ("geth", -32000, "header not found"),
    ("geth", -32601, "the method eth_getLogs does not exist/is not available"),
    ("generic", -32601, "method not found"),
    ("geth", -32000, "execution reverted"),
    ("geth", -32602, "invalid argument 0: hex string without 0x prefix"),
    ("geth, fromBlock after toBlock", -32000, "invalid block range params"),
    ("geth", -32000, "unknown block"),
    ("infura rate limit", -32005, "project ID request rate exceeded"),
    ("infura daily cap", -32005, "daily request count exceeded, request rate limited"),
    (
        "alchemy rate limit",
        429,
        "Your app has exceeded its compute units per second capacity. If you have retries "
        "enabled, you can safely ignore this message.",
    ),
    (
        "quicknode rate limit",
        -32007,
        "15/second request limit reached - reduce calls per second or upgrade your account",
    ),
    ("generic rate limit", -32029, "Too many requests, please slow down"),
    ("no code", None, "internal error"),
]


@pytest.mark.parametrize(
    ("code", "message"),
    [row[1:] for row in NOT_RANGE_ERRORS],
    ids=[row[0] for row in NOT_RANGE_ERRORS],
)
def test_not_a_range_error(code: int | None, message: str) -> None:
    assert not is_range_error(code, message)


def test_range_error_markers_ignore_case() -> None:
    assert is_range_error(-32000, "BLOCK RANGE TOO LARGE")
    assert parse_refusal("Try With This Block Range [0X10, 0X1F]", 0x10, 0x100) == Refusal(16)


@pytest.mark.parametrize(
    ("message", "first", "last", "span"),
    [
        ("limited to 2k blocks", 0, 9_999, 2_000),
        ("maximum block range of 3000", 0, 9_999, 3_000),
        ("max range: 500", 0, 9_999, 500),
        # A suggestion that runs backwards means nothing: halve.
        ("block range too large, try [0x20, 0x10]", 0, 99, 50),
        # The limit is zero: halve rather than ask for nothing.
        ("limited to 0 blocks", 0, 99, 50),
    ],
)
def test_parse_refusal_forms(message: str, first: int, last: int, span: int) -> None:
    assert parse_refusal(message, first, last) == Refusal(span)


# --- the policy ------------------------------------------------------------------------------


def test_policy_starts_at_max_and_clips_to_the_end() -> None:
    policy = RangePolicy(2_000)
    assert policy.next_range(10, 1_000_000) == (10, 2_009)
    assert policy.next_range(10, 20) == (10, 20)


def test_policy_rejects_a_max_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RangePolicy(0)


def test_single_block_refused_asks_for_a_fetch_by_hash() -> None:
    policy = RangePolicy(100)
    assert policy.refused("block range too large", 5, 5) is False
    assert policy.next_range(5, 500) == (5, 104)


def test_policy_grows_back_after_successes() -> None:
    policy = RangePolicy(2_000)
    assert policy.refused("block range too large", 0, 1_999)
    assert policy.next_range(0, 10**9) == (0, 999)
    for _ in range(3):
        policy.succeeded()
    assert policy.next_range(0, 10**9) == (0, 999)
    policy.succeeded()
    assert policy.next_range(0, 10**9) == (0, 1_999)


def test_a_refusal_resets_the_success_count() -> None:
    policy = RangePolicy(2_000)
    policy.refused("block range too large", 0, 1_999)
    for _ in range(3):
        policy.succeeded()
    assert policy.refused("block range too large", 0, 1_999)  # halves to 1000: unchanged
    for _ in range(3):
        policy.succeeded()
    assert policy.next_range(0, 10**9) == (0, 999)


messages = st.sampled_from([row[2] for row in REFUSALS]) | st.text(max_size=60)
blocks = st.integers(min_value=0, max_value=10**8)


@given(
    max_range=st.integers(min_value=1, max_value=100_000),
    steps=st.lists(
        st.tuples(st.booleans(), messages, st.integers(min_value=1, max_value=200_000)),
        max_size=40,
    ),
    start=blocks,
)
def test_policy_always_progresses_within_max(
    max_range: int, steps: list[tuple[bool, str, int]], start: int
) -> None:
    policy = RangePolicy(max_range)
    for refused, message, width in steps:
        last = start + width - 1
        lo, hi = policy.next_range(start, last)
        assert lo == start
        assert start <= hi <= last
        assert hi - lo + 1 <= max_range
        if refused:
            shrinks = policy.refused(message, lo, hi)
            assert shrinks is (hi > lo)
            if shrinks:
                again = policy.next_range(lo, hi)
                assert again[0] == lo
                assert again[1] < hi
        else:
            policy.succeeded()
    # After enough successes in a row the span is back to max_range, and no further.
    for _ in range(4 * (math.ceil(math.log2(max_range)) + 1)):
        policy.succeeded()
    assert policy.next_range(start, start + 10**9) == (start, start + max_range - 1)
