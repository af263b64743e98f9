"""The baseline: the pipeline a user would write with web3.py, SQLAlchemy and websockets.

``AsyncWeb3(WebSocketProvider(url))``, one ``eth_subscribe("logs", {address: [...]})``, each
notification decoded with ``contract.events.<Event>().process_log(log)``, inserted into SQLite
with one insert and one commit, then ``websockets.broadcast`` to the downstream clients. It is
deliberately the obvious code, not a strawman: one engine, one prepared table, no per-log
reconnects.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import websockets
from eth_utils.abi import event_abi_to_log_topic
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, create_engine, insert
from web3 import AsyncWeb3, WebSocketProvider
from websockets.asyncio.server import serve

from benchmarks.replay_provider import ABI_DIR, CONTRACTS, WatchedContract

metadata = MetaData()
events_table = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("block_number", Integer, nullable=False),
    Column("block_hash", String(66), nullable=False),
    Column("transaction_hash", String(66), nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("address", String(42), nullable=False),
    Column("event", String(100), nullable=False),
    Column("args", Text, nullable=False),
)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


async def run_naive(
    provider_url: str,
    database_url: str,
    downstream_port: int,
    *,
    contracts: Sequence[WatchedContract] = CONTRACTS,
    abi_dir: Path = ABI_DIR,
    ready: asyncio.Event | None = None,
) -> None:
    """Run until cancelled; ``ready`` is set once subscribed and serving downstream."""
    engine = create_engine(database_url)
    metadata.create_all(engine)
    async with (
        serve(lambda ws: ws.wait_closed(), "127.0.0.1", downstream_port) as server,
        AsyncWeb3(WebSocketProvider(provider_url)) as w3,
    ):
        # address -> topic0 -> the contract event that decodes it
        decoders: dict[str, dict[bytes, Any]] = {}
        for watched in contracts:
            abi = json.loads((abi_dir / watched.abi).read_text())
            abi = abi["abi"] if isinstance(abi, dict) else abi
            contract = w3.eth.contract(address=watched.address, abi=abi)
            decoders[watched.address] = {
                event_abi_to_log_topic(entry): contract.events[entry["name"]]()
                for entry in abi
                if entry.get("type") == "event" and not entry.get("anonymous")
            }
        await w3.eth.subscribe("logs", {"address": [c.address for c in contracts]})
        if ready is not None:
            ready.set()
        with engine.connect() as db:
            async for message in w3.socket.process_subscriptions():
                log = message["result"]
                event = decoders[log["address"]][bytes(log["topics"][0])]
                decoded = event.process_log(log)
                row = {
                    "block_number": decoded["blockNumber"],
                    "block_hash": decoded["blockHash"].to_0x_hex(),
                    "transaction_hash": decoded["transactionHash"].to_0x_hex(),
                    "log_index": decoded["logIndex"],
                    "address": decoded["address"],
                    "event": decoded["event"],
                    "args": json.dumps({k: _json_value(v) for k, v in decoded["args"].items()}),
                }
                db.execute(insert(events_table), row)
                db.commit()
                websockets.broadcast(server.connections, json.dumps(row))
