"""Block-range chunking for ``eth_getLogs`` that survives provider limits.

Providers refuse ranges that span too many blocks or return too many logs, each with its own
message. ``RangePolicy`` starts at ``max_range`` blocks; on a refusal it uses the range the
provider suggests where the message gives one (Alchemy- and Infura-style ``[0xA, 0xB]``),
otherwise a block limit the message names, otherwise it halves; after successes it grows back.
A single block that is still refused is to be fetched by ``blockHash``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Messages that mean "this range is too large", lowercased.
_LIMIT_MARKERS = (
    "more than",
    "too large",
    "too many",
    "too wide",
    "range exceeds",
    "exceed maximum block range",
    "exceeds the range",
    "response size exceeded",
    "response size should not greater",
    "limited to",
    "block range",
    "range limit",
    "query timeout",
    "max results",
)
# Messages that look like the above but are not about the range: rate limits (Infura sends them
# with -32005 too, EIP-1474's "limit exceeded") and a malformed range. Shrinking the range would
# not help; the caller raises them instead.
_NOT_RANGE_MARKERS = (
    "rate limit",
    "rate exceeded",
    "request rate",
    "request count",
    "too many requests",
    "per second",
    "invalid block range params",
)
_SUGGESTED = re.compile(r"\[\s*(0x[0-9a-f]+)\s*,\s*(0x[0-9a-f]+)\s*\]", re.IGNORECASE)
_BLOCK_LIMIT = re.compile(
    r"(?:up to|limited to|maximum(?: block range)?(?: of|:)?|max(?:imum)? range(?: of|:)?|"
    r"range of|range is|exceeds limit of)\s*(?:an?\s)?([0-9][0-9,]*)\s*(k\b)?",
    re.IGNORECASE,
)


def is_range_error(code: int | None, message: str) -> bool:
    """Does this JSON-RPC error mean the range (or its result) is too large?"""
    text = message.lower()
    if any(marker in text for marker in _NOT_RANGE_MARKERS):
        return False
    if code == -32005:
        return True
    return any(marker in text for marker in _LIMIT_MARKERS)


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a provider's refusal tells us: the largest span to try next (in blocks)."""

    span: int


def parse_refusal(message: str, from_block: int, to_block: int) -> Refusal:
    """The span to retry with after ``[from_block, to_block]`` was refused with ``message``."""
    span = to_block - from_block + 1
    match = _SUGGESTED.search(message)
    if match:
        start, end = int(match.group(1), 16), int(match.group(2), 16)
        if end >= start:
            suggested = end - start + 1
            if suggested < span:
                return Refusal(max(1, suggested))
    match = _BLOCK_LIMIT.search(message)
    if match:
        limit = int(match.group(1).replace(",", "")) * (1000 if match.group(2) else 1)
        if 0 < limit < span:
            return Refusal(limit)
    return Refusal(max(1, span // 2))


class RangePolicy:
    """Decides the span of the next ``eth_getLogs`` chunk."""

    def __init__(self, max_range: int) -> None:
        if max_range < 1:
            raise ValueError("max_range must be at least 1")
        self.max_range = max_range
        self.span = max_range
        self._successes = 0

    def next_range(self, from_block: int, to_block: int) -> tuple[int, int]:
        return from_block, min(to_block, from_block + self.span - 1)

    def succeeded(self) -> None:
        """Grow back towards ``max_range`` after a few successes in a row."""
        self._successes += 1
        if self._successes >= 4 and self.span < self.max_range:
            self.span = min(self.max_range, self.span * 2)
            self._successes = 0

    def refused(self, message: str, from_block: int, to_block: int) -> bool:
        """Shrink after a refusal. False when the range was a single block already: fetch that
        block by hash instead (the range cannot shrink, so retrying it would loop forever)."""
        self._successes = 0
        if to_block <= from_block:
            return False
        self.span = min(self.span, parse_refusal(message, from_block, to_block).span)
        return True
