"""``chainwatch watch``: one contract's decoded events at a terminal, with no config or store.

It subscribes to the contract's logs on one provider and prints each as it comes; when the
connection drops it says so on stderr, reconnects with backoff, and fills the gap with
``eth_getLogs`` from the last block it printed, so nothing is missed or printed twice.
"""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from chainwatch import render
from chainwatch.config import redact_url
from chainwatch.core.abi import load_abi_file
from chainwatch.core.backoff import backoff
from chainwatch.core.decoder import AbiDecoder
from chainwatch.core.model import JSON, Log, parse_log
from chainwatch.core.standards import standard_decoder
from chainwatch.errors import (
    AbiError,
    ChainwatchError,
    DecodeError,
    ProviderError,
    RemoteProtocolError,
)
from chainwatch.ingest.provider import ProviderConnection

# The printed logs remembered to drop duplicates (a gap fill re-reads the last block printed).
SEEN_LIMIT = 10_000
SEEN_BLOCKS = 64


@dataclass(frozen=True, slots=True)
class WatchOptions:
    address: str
    provider: str
    abi: Path | None
    standards: list[str]
    events: list[str]
    json_output: bool


def _decoder(options: WatchOptions) -> AbiDecoder:
    only = options.events or None
    if options.abi is not None:
        return AbiDecoder(load_abi_file(options.abi), only)
    decoder = standard_decoder(options.standards or ["erc20", "erc721", "erc1155"])
    if only is None:
        return decoder
    return AbiDecoder(decoder.events, only)


async def run_watch(options: WatchOptions, out: object = None) -> None:
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", options.address):
        raise ChainwatchError(f"{options.address}: not a 20-byte hex address")
    if not options.provider.startswith(("ws://", "wss://")):
        raise ChainwatchError(
            f"--provider: not a ws:// or wss:// URL: {redact_url(options.provider)}"
        )
    try:
        decoder = _decoder(options)
    except AbiError as exc:
        raise ChainwatchError(str(exc)) from None
    flt: dict[str, JSON] = {"address": options.address.lower()}
    if options.events and not decoder.has_anonymous:
        flt["topics"] = [sorted(decoder.topic0s)]
    seen: dict[tuple[str, int], int] = {}  # printed log -> its block, for the gap fill
    last_block: int | None = None
    delays = backoff()
    connected_once = False
    while True:
        try:
            async with ProviderConnection(options.provider) as conn:
                sub = await conn.subscribe(["logs", flt])
                if not connected_once:
                    print(
                        f"watching {options.address} on {conn.shown} (Ctrl-C to stop)",
                        file=sys.stderr,
                    )
                connected_once = True
                delays = backoff()
                if last_block is not None:
                    missed = await conn.request(
                        "eth_getLogs", [{**flt, "fromBlock": hex(last_block), "toBlock": "latest"}]
                    )
                    for raw in missed if isinstance(missed, list) else []:
                        last_block = _show(decoder, raw, options.json_output, seen, last_block)
                while True:
                    note = await conn.notification()
                    if note.subscription == sub:
                        last_block = _show(
                            decoder, note.result, options.json_output, seen, last_block
                        )
        except ProviderError as exc:
            if not connected_once:
                raise
            print(f"chainwatch: connection lost ({exc}); reconnecting", file=sys.stderr)
            await asyncio.sleep(next(delays))


def _show(
    decoder: AbiDecoder,
    raw: JSON,
    json_output: bool,
    seen: dict[tuple[str, int], int],
    last: int | None,
) -> int | None:
    try:
        entry: Log = parse_log(raw)
    except RemoteProtocolError as exc:
        print(f"chainwatch: skipped a malformed log: {exc}", file=sys.stderr)
        return last
    if not entry.removed:
        if entry.key in seen:
            return last
        seen[entry.key] = entry.block_number
        if len(seen) > SEEN_LIMIT:
            # A gap fill starts at the last block printed: older keys can go.
            floor = max(seen.values()) - SEEN_BLOCKS
            for key in [k for k, block in seen.items() if block < floor]:
                del seen[key]
    try:
        name, args = decoder.decode_log(entry)
        obj = render.log_json(entry, name, args, None)
    except DecodeError as exc:
        obj = render.log_json(entry, None, None, str(exc))
    print(render.json_line(obj) if json_output else render.event_line(obj), flush=True)
    return max(last or 0, entry.block_number)
