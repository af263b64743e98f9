"""Reconnection delays: exponential backoff with jitter, the one policy of every reconnecting loop.

Pure: :func:`backoff` yields delays and the caller sleeps them, so the policy is tested without
an event loop and swapped without touching the loops. Its users: the ingest's provider
sessions, ``chainwatch watch``, and ``chainwatch tail`` (as the ``reconnect_delays`` of
websockets' ``connect``).

The ``n``-th delay (from 0) is drawn uniformly from ``[d/2, d]`` where
``d = min(maximum, initial * factor**n)`` ("equal jitter"): clients that lost the same peer
spread their retries over half the delay, and none retries sooner than half of it. A loop whose
connection held for a while starts again from a fresh generator.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator

__all__ = ["INITIAL_DELAY", "MAX_DELAY", "backoff"]

INITIAL_DELAY = 0.5
MAX_DELAY = 30.0


def backoff(
    initial: float = INITIAL_DELAY,
    maximum: float = MAX_DELAY,
    *,
    factor: float = 2.0,
    draw: Callable[[], float] = random.random,
) -> Generator[float]:
    """Delays in seconds, endless: about 0.5, 1, 2, 4 ... then about 30 each time.

    ``draw`` gives the jitter, a number in ``[0, 1]`` (``random.random`` by default; a test
    passes its own): 0 gives the lower end ``d/2``, 1 the nominal delay ``d``.

    >>> from itertools import islice
    >>> list(islice(backoff(1.0, 5.0, draw=lambda: 1.0), 5))
    [1.0, 2.0, 4.0, 5.0, 5.0]

    Raises ValueError unless ``0 < initial <= maximum`` and ``factor >= 1``.
    """
    if not 0 < initial <= maximum:
        raise ValueError(f"backoff: need 0 < initial <= maximum, got {initial} and {maximum}")
    if factor < 1:
        raise ValueError(f"backoff: factor must be at least 1, got {factor}")
    return _delays(initial, maximum, factor, draw)


def _delays(
    delay: float, maximum: float, factor: float, draw: Callable[[], float]
) -> Generator[float]:
    while True:
        yield delay * (1 + draw()) / 2
        delay = min(maximum, delay * factor)
