"""The metadata of ERC-20 tokens as consumers of the change log read it: a cache of
:meth:`Store.token <chainwatch.store.Store.token>`, shared by whatever builds alerts (see
:mod:`chainwatch.core.alert`).

The ingest saves a token's metadata when it first sees the token, which may be after the first
transfers reach a consumer: a token the store does not have yet is taken as unknown for
``miss_ttl`` seconds, then read again. Known metadata does not change and is kept; the cache
holds at most ``size`` tokens (the oldest entry goes first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from chainwatch.core.alert import TokenInfo, tokens_needed
from chainwatch.core.model import Change
from chainwatch.errors import StoreError
from chainwatch.store.store import Store

__all__ = ["TokenCache"]

log = logging.getLogger("chainwatch.store")

#: How long token metadata that the store does not have yet is taken as unknown.
TOKEN_MISS_TTL = 30.0
TOKEN_CACHE_SIZE = 10_000


class TokenCache:
    """Token metadata by (chain id, address): :meth:`ensure` reads what a batch needs (in a
    thread), then :meth:`get` answers without I/O - the ``token_of`` of the pure code."""

    def __init__(
        self, store: Store, *, miss_ttl: float = TOKEN_MISS_TTL, size: int = TOKEN_CACHE_SIZE
    ) -> None:
        self.store = store
        self.miss_ttl = miss_ttl
        self.size = size
        self._tokens: dict[tuple[int, str], tuple[TokenInfo | None, float]] = {}

    def get(self, chain_id: int, address: str) -> TokenInfo | None:
        """The metadata of a token as last read, None when unknown (or not read yet)."""
        entry = self._tokens.get((chain_id, address))
        return entry[0] if entry is not None else None

    async def ensure(self, changes: Iterable[Change]) -> None:
        """Read the metadata of the ERC-20 tokens in ``changes`` that the cache lacks. A store
        that cannot answer is logged and its tokens taken as unknown (for ``miss_ttl``)."""
        now = time.monotonic()
        missing: list[tuple[int, str]] = []
        for change in changes:
            event = change.event
            if event is None:
                continue
            for address in tokens_needed((event,)):
                key = (event.chain_id, address)
                entry = self._tokens.get(key)
                if (entry is None or (entry[0] is None and entry[1] < now)) and (
                    key not in missing
                ):
                    missing.append(key)
        if not missing:
            return

        def read() -> dict[tuple[int, str], TokenInfo | None]:
            return {key: self.store.token(*key) for key in missing}

        try:
            found = await asyncio.to_thread(read)
        except StoreError as exc:
            log.warning("cannot read token metadata: %s", exc)
            found = dict.fromkeys(missing)
        for key, info in found.items():
            if len(self._tokens) >= self.size:
                del self._tokens[next(iter(self._tokens))]
            self._tokens[key] = (info, now + self.miss_ttl)
