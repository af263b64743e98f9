"""A local node provider that replays a generated chain of logs over WebSocket.

It speaks enough JSON-RPC 2.0 for chainwatch and web3.py: ``eth_chainId`` (0x7a69),
``eth_blockNumber``, ``eth_getBlockByNumber``, ``eth_getLogs``, ``eth_call`` (reverts),
``eth_subscribe`` (``newHeads`` and ``logs``) and ``eth_unsubscribe``. Nothing happens on a
subscription until someone calls the control method ``replay_play``: then every block of the
stream goes out to every subscribed connection as ``eth_subscription`` notifications, the block's
logs first (each to the ``logs`` subscriptions whose filter matches it, with ``eth_subscribe``
filter semantics) and its ``newHeads`` last, as a node does when it imports a block.

``replay_play`` answers when the last notification is written, with the wall-clock time of the
first and last send. Without ``rate`` the stream goes as fast as the clients read (``send``
waits for the socket's buffer to drain); with ``rate`` (logs per second) each block leaves at its
scheduled time, and the send time of every log is kept for ``replay_send_times``.

Blocks before the stream exist too (``latest`` is the block before it until it plays), with
no logs, so a client that loads history from its start finds nothing to load.

Run it in its own process so that the pipeline under test has its core to itself::

    python -m benchmarks.replay_provider --blocks 400 --logs-per-block 50

prints ``ws://127.0.0.1:PORT`` on one line, then serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import random
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from websockets.asyncio.server import ServerConnection, serve

CHAIN_ID = 31337
FIRST_BLOCK = 1_000_001  # the stream's first block; 1_000_000 is `latest` before it plays
BLOCK_TIME = 12
GENESIS_TIME = 1_700_000_000
ABI_DIR = Path(__file__).resolve().parent.parent / "contracts" / "abi"


def topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


TRANSFER = topic0("Transfer(address,address,uint256)")
TRANSFER_SINGLE = topic0("TransferSingle(address,address,address,uint256,uint256)")
SWAP = topic0("Swap(address,uint256,uint256,uint256,uint256,address)")
SYNC = topic0("Sync(uint112,uint112)")


def _address(label: str) -> str:
    return to_checksum_address(keccak(text=label)[-20:])


@dataclass(frozen=True, slots=True)
class WatchedContract:
    """A contract of the stream, and the ABI a config watches it with."""

    name: str
    address: str  # EIP-55
    abi: str  # file name in contracts/abi


# The contracts the stream's logs come from; a config that watches these sees every log.
CONTRACTS = (
    WatchedContract("USDC", _address("replay USDC"), "ERC20.json"),
    WatchedContract("WETH", _address("replay WETH"), "WETH9.json"),
    WatchedContract("PUNKS", _address("replay PUNKS"), "ERC721.json"),
    WatchedContract("ITEMS", _address("replay ITEMS"), "ERC1155.json"),
    WatchedContract("USDC-WETH", _address("replay USDC-WETH"), "UniswapV2Pair.json"),
)
_BY_NAME = {c.name: c for c in CONTRACTS}
# The accounts that send and receive in the stream (a subscriber can filter on one of them).
HOLDERS = tuple(_address(f"replay holder {i}") for i in range(500))


def block_hash(number: int) -> str:
    return "0x" + hashlib.sha256(b"replay block %d" % number).hexdigest()


def header(number: int) -> dict[str, Any]:
    """A node-format block header, consistent with its neighbours (parentHash, timestamp)."""
    return {
        "number": hex(number),
        "hash": block_hash(number),
        "parentHash": block_hash(number - 1) if number > 0 else "0x" + "00" * 32,
        "timestamp": hex(GENESIS_TIME + BLOCK_TIME * number),
        "miner": "0x" + "00" * 20,
        "difficulty": "0x0",
        "gasLimit": hex(30_000_000),
        "gasUsed": hex(15_000_000),
        "baseFeePerGas": hex(7 * 10**9),
        "extraData": "0x",
        "logsBloom": "0x" + "00" * 256,
        "mixHash": "0x" + "00" * 32,
        "nonce": "0x0000000000000000",
        "receiptsRoot": "0x" + "11" * 32,
        "sha3Uncles": "0x" + "22" * 32,
        "stateRoot": "0x" + "33" * 32,
        "transactionsRoot": "0x" + "44" * 32,
    }


def _topic_address(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


class _LogMaker:
    """Realistic logs: ERC-20 Transfers mostly, some ERC-721/1155, Uniswap V2 Sync + Swap."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.holders = HOLDERS

    def _holder(self) -> str:
        return _topic_address(self.rng.choice(self.holders))

    def logs_of_tx(self) -> list[tuple[str, list[str], bytes]]:
        """(address, topics, data) of one transaction's logs."""
        rng = self.rng
        kind = rng.random()
        if kind < 0.70:
            token = _BY_NAME["USDC" if rng.random() < 0.6 else "WETH"].address
            value = rng.randrange(1, 10**24)
            return [
                (token, [TRANSFER, self._holder(), self._holder()], encode(["uint256"], [value]))
            ]
        if kind < 0.78:
            token_id = rng.randrange(10_000)
            nft = _BY_NAME["PUNKS"].address
            return [(nft, [TRANSFER, self._holder(), self._holder(), f"0x{token_id:064x}"], b"")]
        if kind < 0.85:
            data = encode(["uint256", "uint256"], [rng.randrange(100), rng.randrange(1, 1000)])
            topics = [TRANSFER_SINGLE, self._holder(), self._holder(), self._holder()]
            return [(_BY_NAME["ITEMS"].address, topics, data)]
        pair = _BY_NAME["USDC-WETH"].address
        reserves = [rng.randrange(10**20, 10**27), rng.randrange(10**18, 10**24)]
        amount_in = rng.randrange(10**6, 10**12)
        amount_out = rng.randrange(10**15, 10**19)
        swap = encode(["uint256"] * 4, [amount_in, 0, 0, amount_out])
        return [
            (pair, [SYNC], encode(["uint112", "uint112"], reserves)),
            (pair, [SWAP, self._holder(), self._holder()], swap),
        ]


@dataclass(slots=True)
class Block:
    number: int
    header: dict[str, Any]
    logs: list[dict[str, Any]]
    log_texts: list[str] = field(default_factory=list)  # each log's JSON, encoded once
    header_text: str = ""


def generate(blocks: int, logs_per_block: int = 50, *, seed: int = 1) -> list[Block]:
    """The stream: ``blocks`` blocks from FIRST_BLOCK, about ``logs_per_block`` logs each."""
    maker = _LogMaker(seed)
    stream = []
    for number in range(FIRST_BLOCK, FIRST_BLOCK + blocks):
        head = header(number)
        logs: list[dict[str, Any]] = []
        for tx_index in itertools.count():
            if len(logs) >= logs_per_block:
                break
            tx_hash = "0x" + hashlib.sha256(b"replay tx %d %d" % (number, tx_index)).hexdigest()
            for address, topics, data in maker.logs_of_tx()[: logs_per_block - len(logs)]:
                logs.append(
                    {
                        "address": address,
                        "topics": topics,
                        "data": "0x" + data.hex(),
                        "blockNumber": head["number"],
                        "blockHash": head["hash"],
                        "blockTimestamp": head["timestamp"],
                        "transactionHash": tx_hash,
                        "transactionIndex": hex(tx_index),
                        "logIndex": hex(len(logs)),
                        "removed": False,
                    }
                )
        block = Block(number, head, logs)
        block.log_texts = [json.dumps(entry, separators=(",", ":")) for entry in logs]
        block.header_text = json.dumps(head, separators=(",", ":"))
        stream.append(block)
    return stream


def matches(flt: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Does a log match an ``eth_subscribe("logs", filter)`` filter (address, topics)?"""
    address = flt.get("address")
    if address is not None:
        wanted = [address] if isinstance(address, str) else address
        if entry["address"].lower() not in {a.lower() for a in wanted}:
            return False
    topics = entry["topics"]
    for position, option in enumerate(flt.get("topics") or []):
        if option is None:
            continue
        if position >= len(topics):
            return False
        options = [option] if isinstance(option, str) else option
        if topics[position].lower() not in {t.lower() for t in options}:
            return False
    return True


class _Session:
    """One client connection and its subscriptions."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.heads: list[str] = []
        self.logs: dict[str, dict[str, Any]] = {}


class ReplayProvider:
    """``async with ReplayProvider(stream) as provider``: serves on ``provider.url``."""

    def __init__(self, stream: list[Block], *, port: int = 0) -> None:
        self.stream = stream
        self.port = port
        self.url = ""
        self.head = FIRST_BLOCK - 1  # the newest block played
        self.sessions: set[_Session] = set()
        self.send_times: dict[tuple[int, int], float] = {}
        self._ids = itertools.count(1)
        self._by_number = {b.number: b for b in stream}
        self._server: Any = None
        self._playing: asyncio.Task[dict[str, Any]] | None = None

    async def __aenter__(self) -> ReplayProvider:
        self._server = await serve(
            self._handle, "127.0.0.1", self.port, max_size=None, compression=None
        )
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    # --- JSON-RPC ------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        session = _Session(ws)
        self.sessions.add(session)
        try:
            async for message in ws:
                request = json.loads(message)
                if isinstance(request, list):
                    answers = [await self._answer(session, r) for r in request]
                    await ws.send(json.dumps(answers))
                else:
                    await ws.send(json.dumps(await self._answer(session, request)))
        except Exception:  # a client going away mid-stream is not the provider's problem
            pass
        finally:
            self.sessions.discard(session)

    async def _answer(self, session: _Session, request: dict[str, Any]) -> dict[str, Any]:
        method, params = request.get("method"), request.get("params") or []
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request.get("id")}
        try:
            reply["result"] = await self._call(session, method, params)
        except _RpcError as exc:
            reply["error"] = {"code": exc.code, "message": exc.message}
        return reply

    async def _call(self, session: _Session, method: Any, params: list[Any]) -> Any:
        if method == "eth_chainId":
            return hex(CHAIN_ID)
        if method == "net_version":
            return str(CHAIN_ID)
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_getBlockByNumber":
            tag = params[0]
            number = (
                self.head if tag in ("latest", "safe", "finalized", "pending") else int(tag, 16)
            )
            return header(number) if 0 <= number <= self.head else None
        if method == "eth_getLogs":
            return self._get_logs(params[0])
        if method == "eth_call":
            raise _RpcError(-32000, "execution reverted")
        if method == "eth_subscribe":
            sub_id = f"0x{next(self._ids):032x}"
            if params[0] == "newHeads":
                session.heads.append(sub_id)
            elif params[0] == "logs":
                session.logs[sub_id] = params[1] if len(params) > 1 else {}
            else:
                raise _RpcError(-32602, f"unsupported subscription {params[0]!r}")
            return sub_id
        if method == "eth_unsubscribe":
            found = params[0] in session.logs or params[0] in session.heads
            session.logs.pop(params[0], None)
            if params[0] in session.heads:
                session.heads.remove(params[0])
            return found
        if method == "replay_play":
            options = params[0] if params else {}
            return await self.play(options.get("rate"))
        if method == "replay_send_times":
            return [[b, i, t] for (b, i), t in self.send_times.items()]
        raise _RpcError(-32601, f"method {method!r} not found")

    def _get_logs(self, flt: dict[str, Any]) -> list[dict[str, Any]]:
        if "blockHash" in flt:
            numbers: Iterable[int] = [
                b.number for b in self.stream if b.header["hash"] == flt["blockHash"]
            ]
        else:
            lo = self._number(flt.get("fromBlock", "latest"))
            hi = self._number(flt.get("toBlock", "latest"))
            numbers = range(max(lo, FIRST_BLOCK), min(hi, self.head) + 1)
        found = []
        for number in numbers:
            block = self._by_number.get(number)
            if block is not None and number <= self.head:
                found += [e for e in block.logs if matches(flt, e)]
        return found

    def _number(self, tag: str) -> int:
        return self.head if tag in ("latest", "safe", "finalized", "pending") else int(tag, 16)

    # --- the stream ----------------------------------------------------------------------------

    async def play(self, rate: float | None = None) -> dict[str, Any]:
        """Send every block to every subscribed connection; the send times of the first and
        last notification. ``rate``: logs per second, paced per block; None: as fast as read."""
        sessions = [s for s in self.sessions if s.heads or s.logs]
        # Which of a connection's subscriptions each log goes to: filters are few, logs many.
        routes = [self._routes(s) for s in sessions]
        loop = asyncio.get_running_loop()
        started = time.time()
        start_clock = loop.time()
        sent_logs = 0
        for block in self.stream:
            if rate is not None:
                due = start_clock + sent_logs / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            self.head = block.number
            now = time.time()
            for session, route in zip(sessions, routes, strict=True):
                with contextlib.suppress(Exception):
                    for entry, text in zip(block.logs, block.log_texts, strict=True):
                        for sub_id in route(entry):
                            await session.ws.send(_notification(sub_id, text))
                    for sub_id in session.heads:
                        await session.ws.send(_notification(sub_id, block.header_text))
            if rate is not None:
                for index in range(len(block.logs)):
                    self.send_times[(block.number, index)] = now
            sent_logs += len(block.logs)
        return {
            "logs": sent_logs,
            "blocks": len(self.stream),
            "started": started,
            "finished": time.time(),
        }

    @staticmethod
    def _routes(session: _Session) -> Any:
        filters = list(session.logs.items())
        cache: dict[tuple[str, str], list[str]] = {}

        def route(entry: dict[str, Any]) -> list[str]:
            key = (entry["address"], entry["topics"][0] if entry["topics"] else "")
            found = cache.get(key)
            if found is None or any(len(f.get("topics") or []) > 1 for _, f in filters):
                found = [sub_id for sub_id, f in filters if matches(f, entry)]
                cache[key] = found
            return found

        return route


def _notification(sub_id: str, result_text: str) -> str:
    return (
        '{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"'
        + sub_id
        + '","result":'
        + result_text
        + "}}"
    )


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- in its own process -------------------------------------------------------------------------


class SpawnedProvider:
    """``with SpawnedProvider(blocks, logs_per_block) as provider``: the replay provider in a
    child process; ``provider.url``; ``await provider.play(rate)`` from the parent."""

    def __init__(self, blocks: int, logs_per_block: int = 50, *, seed: int = 1) -> None:
        import subprocess

        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.replay_provider",
                "--blocks",
                str(blocks),
                "--logs-per-block",
                str(logs_per_block),
                "--seed",
                str(seed),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().decode().strip()
        if not self.url.startswith("ws://"):
            self.close()
            raise RuntimeError("the replay provider did not start")

    async def call(self, method: str, params: list[Any] | None = None) -> Any:
        from websockets.asyncio.client import connect

        async with connect(self.url, max_size=None, open_timeout=10) as ws:
            await ws.send(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
            )
            return json.loads(await ws.recv())["result"]

    async def play(self, rate: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("replay_play", [{"rate": rate}])
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except Exception:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SpawnedProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _serve(blocks: int, logs_per_block: int, seed: int) -> None:
    stream = generate(blocks, logs_per_block, seed=seed)
    async with ReplayProvider(stream) as provider:
        print(provider.url, flush=True)
        # Serve until the parent closes our stdin (or goes away).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def iter_logs(stream: list[Block]) -> Iterator[dict[str, Any]]:
    for block in stream:
        yield from block.logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=400)
    parser.add_argument("--logs-per-block", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(_serve(args.blocks, args.logs_per_block, args.seed))


if __name__ == "__main__":
    main()
