"""The reorg and gap bookkeeping, without an event loop: a table of cases, and a property that
drives the tracker the way the ingest does, against a node whose canonical chain reorganises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainwatch.core.heads import (
    PENDING_HORIZON,
    Advance,
    CheckReorg,
    FetchGap,
    HeadTracker,
    Hold,
    Ignore,
    Reason,
    Reorg,
    StoreLate,
)
from chainwatch.core.model import Head, Log


def block_hash(fork: str, number: int, shared: int = 0) -> str:
    """Blocks below ``shared`` belong to every fork."""
    return f"0x{'s' if number < shared else fork}{number:04x}"


def head(number: int, fork: str = "a", shared: int = 0) -> Head:
    parent = block_hash(fork, number - 1, shared) if number > 0 else "0x" + "0" * 64
    return Head(number, block_hash(fork, number, shared), parent, timestamp=12 * number)


def log_of(block: Head, index: int, *, removed: bool = False) -> Log:
    return Log(
        address="0x" + "11" * 20,
        topics=(),
        data="0x",
        block_number=block.number,
        block_hash=block.hash,
        transaction_hash="0x" + "22" * 32,
        transaction_index=0,
        log_index=index,
        removed=removed,
    )


def stored_chain(length: int = 10, source: int = 0) -> HeadTracker:
    """Blocks 1..length of fork "a" stored from provider ``source``, as the ingest would."""
    tracker = HeadTracker()
    for number in range(1, length + 1):
        action = tracker.on_head(head(number), source)
        assert isinstance(action, Advance)
        tracker.advanced(action.head)
        tracker.released(action.head)
    return tracker


Step = tuple[Callable[[HeadTracker], Any], Any]
A10, A11, A13 = head(10), head(11), head(13)
B10, B11, B12 = head(10, "b"), head(11, "b"), head(12, "b")
ORPHAN_9 = Head(9, "0xdead", head(8).hash)
LOG_A11 = (log_of(A11, 0), log_of(A11, 1))
LOG_FAR = log_of(head(20, "c"), 0)

# (case, steps on blocks 1..10 stored from provider 0: each a call and what it returns)
CASES: list[tuple[str, list[Step]]] = [
    ("extend", [(lambda t: t.on_head(A11, 0), Advance(A11, ()))]),
    ("extend from another provider", [(lambda t: t.on_head(A11, 1), Advance(A11, ()))]),
    ("duplicate from the tip's provider", [(lambda t: t.on_head(A10, 0), Ignore(Reason.STORED))]),
    ("duplicate from another provider", [(lambda t: t.on_head(A10, 1), Ignore(Reason.NOT_FIRST))]),
    ("lagging provider's old head", [(lambda t: t.on_head(head(8), 1), Ignore(Reason.NOT_FIRST))]),
    (
        "lagging provider without our tip",
        [
            (lambda t: t.on_head(A13, 1), CheckReorg(A13, A10)),
            (lambda t: t.on_tip_block(CheckReorg(A13, A10), None), Ignore(Reason.LAGGING)),
        ],
    ),
    (
        "competing head at our height from another provider",
        [(lambda t: t.on_head(B10, 1), Ignore(Reason.NOT_FIRST))],
    ),
    (
        "competing head at our height from the tip's provider",
        [
            (lambda t: t.on_head(B10, 0), CheckReorg(B10, A10)),
            (lambda t: t.on_tip_block(CheckReorg(B10, A10), B10.hash), Reorg(9, B10)),
        ],
    ),
    (
        "gap",
        [
            (lambda t: t.on_head(A13, 0), CheckReorg(A13, A10)),
            (lambda t: t.on_tip_block(CheckReorg(A13, A10), A10.hash), FetchGap(11, 13, A13)),
        ],
    ),
    (
        "a reconnect's latest head is fetched, not advanced to",
        [
            (lambda t: t.on_head(A11, 0, live=False), CheckReorg(A11, A10)),
            (lambda t: t.on_tip_block(CheckReorg(A11, A10), A10.hash), FetchGap(11, 11, A11)),
        ],
    ),
    (
        "a head queued while we loaded past it",
        [
            (lambda t: t.on_head(ORPHAN_9, 0), CheckReorg(ORPHAN_9, A10)),
            (lambda t: t.on_tip_block(CheckReorg(ORPHAN_9, A10), A10.hash), Ignore(Reason.BEHIND)),
        ],
    ),
    (
        "reorg",
        [
            (lambda t: t.on_head(B12, 0), CheckReorg(B12, A10)),
            (lambda t: t.on_tip_block(CheckReorg(B12, A10), B10.hash), Reorg(10, B12)),
            (lambda t: t.rewound(8, head(8)), None),
            (
                lambda t: (t.tip, t.is_stored(9, head(9).hash), t.is_stored(8, head(8).hash)),
                (head(8), False, True),
            ),
        ],
    ),
    (
        "late log of a stored block",
        [(lambda t: t.on_log(log_of(head(9), 3)), StoreLate(log_of(head(9), 3)))],
    ),
    (
        "removed log",
        [(lambda t: t.on_log(log_of(head(9), 3, removed=True)), Ignore(Reason.REMOVED))],
    ),
    (
        "held logs released by their head, in log order",
        [
            (lambda t: t.on_log(LOG_A11[1]), Hold(LOG_A11[1])),
            (lambda t: t.on_log(LOG_A11[0]), Hold(LOG_A11[0])),
            (lambda t: t.on_head(A11, 1), Advance(A11, LOG_A11)),
            (lambda t: t.pending, {}),
        ],
    ),
    (
        "a held log forgotten PENDING_HORIZON blocks behind a released head",
        [
            (lambda t: t.on_log(LOG_FAR), Hold(LOG_FAR)),
            (lambda t: t.released(head(20 + PENDING_HORIZON)), None),
            (lambda t: list(t.pending), [LOG_FAR.block_hash]),
            (lambda t: t.released(head(21 + PENDING_HORIZON)), None),
            (lambda t: t.pending, {}),
        ],
    ),
]


@pytest.mark.parametrize(("case", "steps"), CASES, ids=[c for c, _ in CASES])
def test_heads_and_logs(case: str, steps: list[Step]) -> None:
    tracker = stored_chain()
    for call, expected in steps:
        assert call(tracker) == expected, case


def test_first_head_without_a_tip_advances() -> None:
    tracker = HeadTracker()
    assert tracker.on_head(head(7, "x"), 3) == Advance(head(7, "x"), ())
    assert tracker.tip_source == 3 and tracker.tip is None  # the tip moves once it is stored


def test_block_time_is_observed_from_consecutive_heads() -> None:
    tracker = stored_chain(3)
    assert tracker.block_time == 12.0
    tracker.on_head(Head(4, "0x4", head(3).hash, timestamp=head(3).timestamp + 22), 0)
    assert tracker.block_time == pytest.approx(13.0)


def test_recent_blocks_are_pruned() -> None:
    tracker = stored_chain(1000)
    assert 256 <= len(tracker.recent) <= 512
    assert tracker.is_stored(1000, head(1000).hash) and not tracker.is_stored(1, head(1).hash)


deliveries = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 1)), max_size=30)


@given(
    shared=st.integers(1, 6),
    extra_a=st.integers(0, 8),
    extra_b=st.integers(1, 8),
    before=deliveries,
    after=deliveries,
)
def test_the_store_follows_the_canonical_chain(
    shared: int, extra_a: int, extra_b: int, before: list[tuple[int, int]], after: list[Any]
) -> None:
    """Heads of chain "a" from two providers, in any order, dropped or repeated; then the node
    reorganises to the longer chain "b" (forked at ``shared``) and sends some of its heads. The
    ingest does what the tracker asks against that node. However the heads came, the tip never
    goes down but by a reorg, a reorg is asked only when the tip left the canonical chain, and
    once the last head of "b" came, the store holds exactly chain "b"."""
    len_a = shared + extra_a
    len_b = len_a + extra_b
    chains = {fork: [head(n, fork, shared) for n in range(length)]
              for fork, length in (("a", len_a), ("b", len_b))}  # fmt: skip
    stored: dict[int, str] = {}
    tracker = HeadTracker()

    def load(first: int, end: Head, canonical: list[Head]) -> None:
        for number in range(first, end.number + 1):
            stored[number] = canonical[number].hash
        tracker.remember(end)
        tracker.reached(end)

    load(0, chains["a"][0], chains["a"])  # the catch-up
    tracker.follow(0)

    def deliver(received: Head, source: int, canonical: list[Head]) -> None:
        tip = tracker.tip
        assert tip is not None
        action = tracker.on_head(received, source)
        if isinstance(action, Advance):
            stored[received.number] = received.hash
            tracker.advanced(received)
            tracker.released(received)
        elif isinstance(action, CheckReorg):
            there = canonical[tip.number].hash if tip.number < len(canonical) else None
            then = tracker.on_tip_block(action, there)
            if isinstance(then, FetchGap):
                load(then.first, then.head, canonical)
                tracker.released(then.head)
            elif isinstance(then, Reorg):
                assert canonical[tip.number].hash != tip.hash
                fork = max(n for n in stored if n <= then.from_number
                           and stored[n] == canonical[n].hash)  # fmt: skip
                for number in [n for n in stored if n > fork]:
                    del stored[number]
                tracker.rewound(fork, canonical[fork])
                load(fork + 1, then.head, canonical)
                tracker.released(then.head)
        new_tip = tracker.tip
        assert new_tip is not None
        if not isinstance(action, CheckReorg) or not isinstance(then, Reorg):
            assert new_tip.number >= tip.number
        assert stored[new_tip.number] == new_tip.hash
        assert sorted(stored) == list(range(new_tip.number + 1))

    for fork, heads in (("a", before), ("b", after)):
        canonical = chains[fork]
        for number, source in heads:
            if number < len(canonical):
                deliver(canonical[number], source, canonical)
    last = chains["b"][-1]
    deliver(last, tracker.tip_source or 0, chains["b"])
    assert tracker.tip == last
    assert stored == {h.number: h.hash for h in chains["b"]}
