"""Limits of the downstream server: a token bucket (the per-connection request rate) and a
budget (the matching work the subscriptions of one address may cost).

Pure: the caller passes the clock reading (``time.monotonic()``, or any number in tests), so
the bucket is tested without sleeping. The bucket holds at most ``burst`` tokens, refills at
``rate`` tokens per second, and each request takes one; a request that finds the bucket empty
is refused (the server answers it with JSON-RPC error -32005, EIP-1474 "limit exceeded") and
takes nothing, so a client that keeps sending while refused is served again as soon as it
slows down to ``rate``.
"""

from __future__ import annotations

__all__ = ["Budget", "TokenBucket"]


class TokenBucket:
    """``rate`` requests per second on average, up to ``burst`` at once.

    >>> bucket = TokenBucket(rate=2.0, burst=2.0, now=0.0)
    >>> [bucket.take(0.0) for _ in range(3)]
    [True, True, False]
    >>> bucket.take(0.5)  # half a second later, one token is back
    True
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float | None = None, *, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be greater than zero")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        self.tokens = self.burst
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens at time ``now`` if there are enough; say whether it did.

        A clock that goes backwards (it should not: use a monotonic one) refills nothing.
        """
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class Budget:
    """A shared allowance of units: what the subscriptions of one address may cost.

    Sessions of the same address hold one budget; a subscription takes its cost when made and
    gives it back when it ends (unsubscribed, or its connection closed).

    >>> budget = Budget(10)
    >>> budget.take(6), budget.take(6), budget.used
    (True, False, 6)
    >>> budget.give(6)
    >>> budget.take(10)
    True
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.used = 0

    def take(self, cost: int) -> bool:
        """Take ``cost`` units if they are left; say whether it did."""
        if self.used + cost > self.limit:
            return False
        self.used += cost
        return True

    def give(self, cost: int) -> None:
        self.used = max(0, self.used - cost)
