"""History backfill: ``eth_getLogs`` of 100,000 logs from anvil into SQLite, logs per second.

The logs come from a tiny contract written here in raw EVM bytecode: each call emits
``calldata[0:32]`` ERC-20-shaped ``Transfer(caller, i, i)`` events (LOG3) in a loop, so 50
transactions make 100,000 logs.

- chainwatch: the daemon (no server) watching the contract as an ERC-20 with ``from_block = 0``,
  timed from start until its checkpoint reaches the head (it has loaded, decoded and committed
  every log in chunks of ``getlogs_max_range`` = 5 blocks, 10,000 logs).
- baseline: web3.py as a user would write it: ``w3.eth.get_logs`` per chunk of blocks,
  ``contract.events.Transfer().process_log`` per log, one SQLAlchemy insert per log and one commit
  per chunk, into SQLite. It loads the first 20,000 logs only (it is slow); rates are compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert
from web3 import Web3

from benchmarks.common import free_port, quiet_logs, row, write_config
from benchmarks.naive_pipeline import _json_value, events_table, metadata
from benchmarks.replay_provider import ABI_DIR, WatchedContract

LOGS = 100_000
PER_CALL = 2_000
BASELINE_LOGS = 20_000
# Blocks per eth_getLogs, both sides: one block holds PER_CALL logs, and anvil drops the
# connection rather than send all 100,000 logs in one WebSocket message.
GETLOGS_BLOCKS = 5
TRANSFER_TOPIC0 = Web3.keccak(text="Transfer(address,address,uint256)")


def spammer_initcode() -> str:
    """Deploys a runtime that emits ``n = calldata[0:32]`` Transfer(caller, i, i) events and
    reverts on any other calldata (an ``eth_call`` of ``symbol()`` must not loop)."""
    guard = bytes.fromhex("36602014600b57600080fd5b")
    # if calldatasize != 32: revert(0, 0)   (pc 0x0b: the jump target)
    loop = len(guard) + 5
    end = loop + 58
    runtime = (
        guard
        + bytes.fromhex("6000356000")  # n = calldataload(0); i = 0   stack: i n
        + bytes.fromhex("5b8181101560")  # loop: if !(i < n) goto end
        + bytes([end])
        + bytes.fromhex("57")
        + bytes.fromhex("80600052")  # mstore(0, i): the value
        + bytes.fromhex("80337f")  # topic2 = i, topic1 = caller, topic0 = Transfer
        + TRANSFER_TOPIC0
        + bytes.fromhex("60206000a3")  # log3(0, 32, topic0, caller, i)
        + bytes.fromhex("60010160")  # i += 1; goto loop
        + bytes([loop])
        + bytes.fromhex("56")
        + bytes.fromhex("5b00")  # end: stop
    )
    assert runtime[0x0B] == runtime[loop] == runtime[end] == 0x5B
    # codecopy(0, len(init), len(runtime)); return(0, len(runtime))
    init = bytes.fromhex("60") + bytes([len(runtime)]) + bytes.fromhex("80600b6000396000f3")
    assert len(init) == 0x0B
    return "0x" + (init + runtime).hex()


def fill(w3: Web3, sender: str) -> str:
    """Deploy the spammer and emit LOGS events; its address."""
    tx = w3.eth.send_transaction({"from": sender, "data": spammer_initcode(), "gas": 300_000})
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    calldata = "0x" + PER_CALL.to_bytes(32, "big").hex()
    hashes = [
        w3.eth.send_transaction(
            {"from": sender, "to": address, "data": calldata, "gas": PER_CALL * 2_500 + 60_000}
        )
        for _ in range(LOGS // PER_CALL)
    ]
    for tx_hash in hashes:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1 or len(receipt["logs"]) != PER_CALL:
            raise RuntimeError("the spammer did not emit its events")
    return str(address)


async def chainwatch_rate(ws_url: str, chain_id: int, address: str, folder: Path) -> float:
    from chainwatch.config import load_settings
    from chainwatch.daemon import Daemon

    contract = WatchedContract("Spammer", address, "ERC20.json")
    settings = load_settings(
        write_config(
            folder,
            provider_url=ws_url,
            storage_url=f"sqlite:///{folder / 'chainwatch.db'}",
            server_port=free_port(),
            contracts=[contract],
            chain_id=chain_id,
            from_block=0,
            getlogs_max_range=GETLOGS_BLOCKS,
        )
    )
    started = time.monotonic()
    daemon = Daemon(settings, serve=False)
    task = asyncio.create_task(daemon.run())
    try:
        waiter = asyncio.create_task(daemon.started.wait())
        await asyncio.wait([waiter, task], timeout=300, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        if not waiter.done():
            raise RuntimeError("chainwatch did not catch up within 300 s")
        took = time.monotonic() - started
        stored = daemon.ingests[0].stats["events"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if stored != LOGS:
        raise RuntimeError(f"chainwatch stored {stored} of {LOGS} events")
    return LOGS / took


def baseline_rate(w3: Web3, address: str, folder: Path) -> float:
    abi = json.loads((ABI_DIR / "ERC20.json").read_text())
    abi = abi["abi"] if isinstance(abi, dict) else abi
    contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)
    transfer = contract.events.Transfer()
    engine = create_engine(f"sqlite:///{folder / 'naive.db'}")
    metadata.create_all(engine)
    last = w3.eth.block_number
    loaded = 0
    started = time.monotonic()
    with engine.connect() as db:
        for lo in range(0, last + 1, GETLOGS_BLOCKS):
            if loaded >= BASELINE_LOGS:
                break
            span = {"fromBlock": lo, "toBlock": min(last, lo + GETLOGS_BLOCKS - 1)}
            logs = w3.eth.get_logs({**span, "address": contract.address})
            for log in logs:
                if loaded >= BASELINE_LOGS:
                    break
                decoded = transfer.process_log(log)
                db.execute(
                    insert(events_table),
                    {
                        "block_number": decoded["blockNumber"],
                        "block_hash": decoded["blockHash"].to_0x_hex(),
                        "transaction_hash": decoded["transactionHash"].to_0x_hex(),
                        "log_index": decoded["logIndex"],
                        "address": decoded["address"],
                        "event": decoded["event"],
                        "args": json.dumps({k: _json_value(v) for k, v in decoded["args"].items()}),
                    },
                )
                loaded += 1
            db.commit()
    return loaded / (time.monotonic() - started)


def run() -> list[dict[str, Any]]:
    from chainwatch.devnet import Anvil

    quiet_logs()
    with (
        tempfile.TemporaryDirectory() as folder,
        Anvil(extra_args=["--disable-block-gas-limit"]) as node,
    ):
        address = fill(node.w3, node.accounts[0])
        ours = asyncio.run(chainwatch_rate(node.ws_url, node.chain_id, address, Path(folder)))
        theirs = baseline_rate(node.w3, address, Path(folder))
    return [row("history backfill, 100k logs, SQLite", ours, theirs, "logs/s")]
