"""Token metadata: ERC-20 ``symbol()`` and ``decimals()`` read by ``eth_call`` and kept in the
store, once per token, the first time one of its ``Transfer`` events is stored."""

from __future__ import annotations

from collections.abc import Sequence

from chainwatch.core.model import DecodedEvent
from chainwatch.core.standards import TRANSFER_TOPIC0
from chainwatch.errors import ProviderError, RequestTimeout, RpcErrorResponse
from chainwatch.ingest.provider import ProviderConnection
from chainwatch.ingest.writer import StoreThread
from chainwatch.store import Store

# Seconds to wait for a token's symbol() or decimals(); a contract that loops is no token.
TOKEN_CALL_TIMEOUT = 5.0


class TokenCatalog:
    """The tokens of one chain whose metadata is stored (or was asked for)."""

    def __init__(self, chain_id: int, store: Store, db: StoreThread) -> None:
        self.chain_id = chain_id
        self.store = store
        self.db = db
        self.known: set[str] = set()

    async def remember(self, conn: ProviderConnection, events: Sequence[DecodedEvent]) -> None:
        """Read and store the metadata of the tokens of ``events``' transfers not known yet."""
        for event in events:
            entry = event.log
            if entry.address in self.known or len(entry.topics) != 3:
                continue
            if entry.topics[0] != TRANSFER_TOPIC0 or event.error is not None:
                continue
            if await self.db.run(self.store.token, self.chain_id, entry.address) is None:
                try:
                    symbol, decimals = await token_metadata(conn, entry.address)
                except ProviderError:
                    continue  # the provider went away: the events are written, ask next time
                await self.db.run(
                    self.store.save_token, self.chain_id, entry.address, symbol, decimals
                )
            self.known.add(entry.address)


async def token_metadata(conn: ProviderConnection, address: str) -> tuple[str | None, int | None]:
    """ERC-20 ``symbol()`` and ``decimals()`` by ``eth_call``; None where a token lacks one."""
    symbol = await _call_string(conn, address, "0x95d89b41")
    decimals_raw = await _call(conn, address, "0x313ce567")
    decimals = None
    if decimals_raw is not None and len(decimals_raw) == 32:
        value = int.from_bytes(decimals_raw, "big")
        decimals = value if value <= 255 else None
    return symbol, decimals


async def _call(conn: ProviderConnection, address: str, selector: str) -> bytes | None:
    try:
        result = await conn.request(
            "eth_call",
            [{"to": address, "data": selector}, "latest"],
            answer_within=TOKEN_CALL_TIMEOUT,
        )
    except (RpcErrorResponse, RequestTimeout):
        # Reverted, or a contract that runs until the node gives up: not a token we can read.
        return None
    if not isinstance(result, str) or not result.startswith("0x"):
        return None
    try:
        return bytes.fromhex(result[2:])
    except ValueError:
        return None


async def _call_string(conn: ProviderConnection, address: str, selector: str) -> str | None:
    raw = await _call(conn, address, selector)
    if raw is None:
        return None
    if len(raw) == 32:  # some old tokens return bytes32
        return raw.rstrip(b"\0").decode("utf-8", "replace") or None
    if len(raw) >= 64:
        length = int.from_bytes(raw[32:64], "big")
        if 64 + length <= len(raw):
            return raw[64 : 64 + length].decode("utf-8", "replace")
    return None
