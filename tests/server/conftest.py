"""A real Server on 127.0.0.1 port 0 over a real SQLite store, fed the way ingest feeds it.

Events are real logs decoded by the daemon's own watch set (the decoder ingest uses), written
with ``store.commit_block``/``reorg`` and handed to the sink methods; clients
are real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from chainwatch.config import (
    ChainSettings,
    ContractSettings,
    ServerSettings,
    Settings,
    StorageSettings,
    WalletSettings,
)
from chainwatch.core.model import Checkpoint, DecodedEvent, Head, Log, StoredEvent
from chainwatch.core.sink import ChainStatus, ProviderStatus
from chainwatch.core.watch import WatchSet
from chainwatch.daemon import build_watch
from chainwatch.server import Server
from chainwatch.store import Store

ROOT = Path(__file__).resolve().parents[2]
ERC20_ABI = ROOT / "contracts" / "abi" / "ERC20.json"

CHAIN_ID = 31337
OTHER_CHAIN_ID = 5
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # "Token": a watched ERC-20 contract
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"  # not a watched contract: wallet transfers
ALICE = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # a watched wallet
BOB = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CAROL = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TRANSFER0 = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
APPROVAL0 = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
TIMEOUT = 10.0


def make_settings(tmp_path: Path, confirmations: int = 2, **server: Any) -> Settings:
    """Two chains: "dev" (the Token contract, and ALICE's token transfers on any contract) and
    "other" (nothing watched but wallets)."""
    server.setdefault("port", 0)
    return Settings(
        tmp_path / "chainwatch.toml",
        StorageSettings(f"sqlite:///{tmp_path / 'cw.db'}"),
        ServerSettings(**server),
        (
            ChainSettings("dev", CHAIN_ID, ("ws://127.0.0.1:1/",), confirmations=confirmations),
            ChainSettings("other", OTHER_CHAIN_ID, ("ws://127.0.0.1:1/",)),
        ),
        (ContractSettings("Token", "dev", TOKEN, ERC20_ABI),),
        (
            WalletSettings("dev", (ALICE,), ("erc20",)),
            WalletSettings("other", (ALICE,), ("erc20", "erc721")),
        ),
    )


def topic(address: str) -> str:
    return "0x" + "0" * 24 + address.lower()[2:]


def block_hash(number: int, fork: int = 0) -> str:
    return f"0x{fork:08x}{number:056x}"


class Chain:
    """A pretend chain: makes logs, decodes them with the daemon's watch set, stores them and
    tells the server, as ingest does (store first, then the sink)."""

    def __init__(self, settings: Settings, store: Store, status: ChainStatus) -> None:
        self.settings = settings
        self.store = store
        self.status = status
        self.chain_id = status.chain_id
        self.watch: WatchSet = build_watch(settings, settings.chain(status.name))
        self.number = 0
        self.fork = 0
        self.sinks: list[Server] = []

    def head(self, number: int) -> Head:
        raw = {
            "number": hex(number),
            "hash": block_hash(number, self.fork),
            "parentHash": block_hash(number - 1, self.fork) if number else "0x" + "00" * 32,
            "timestamp": hex(1_700_000_000 + 12 * number),
            "miner": "0x" + "00" * 20,
        }
        return Head(number, raw["hash"], raw["parentHash"], 1_700_000_000 + 12 * number, raw)

    def transfer_log(
        self, value: int, frm: str = ALICE, to: str = BOB, token: str = TOKEN, index: int = 0
    ) -> Log:
        return Log(
            address=token.lower(),
            topics=(TRANSFER0, topic(frm), topic(to)),
            data=f"0x{value:064x}",
            block_number=self.number + 1,
            block_hash=block_hash(self.number + 1, self.fork),
            transaction_hash=f"0x{self.number + 1:032x}{index:032x}",
            transaction_index=index,
            log_index=index,
        )

    def approval_log(self, value: int, owner: str = ALICE, spender: str = BOB) -> Log:
        entry = self.transfer_log(value, owner, spender)
        return replace(entry, topics=(APPROVAL0, topic(owner), topic(spender)))

    def block(self, logs: Sequence[Log]) -> list[StoredEvent]:
        """Mine the next block with ``logs`` (whose block fields are rewritten to it)."""
        self.number += 1
        head = self.head(self.number)
        fixed = [
            replace(entry, block_number=head.number, block_hash=head.hash, log_index=i,
                    transaction_index=i)
            for i, entry in enumerate(logs)
        ]  # fmt: skip
        events: list[DecodedEvent] = []
        for entry in fixed:
            decoded = self.watch.route(entry)
            assert decoded is not None, entry
            events.append(decoded)
        checkpoint = Checkpoint(self.chain_id, head.number, head.hash)
        depth = head.number - self.status.confirmations + 1
        changes = self.store.commit_block(
            events, checkpoint, [head], confirm_through=depth if depth >= 0 else None
        )
        self.status.head = head
        self.status.last_head_at = time.monotonic()
        for sink in self.sinks:
            sink.on_changes(changes)
        # The events as stored now (an event deep enough is stored confirmed at once).
        confirmed = {c.event.id for c in changes if c.kind == "confirmed" and c.event}
        return [
            c.event.with_status("confirmed") if c.event.id in confirmed else c.event
            for c in changes
            if c.kind == "new" and c.event is not None
        ]

    def transfers(self, *values: int, **kw: Any) -> list[StoredEvent]:
        return self.block([self.transfer_log(v, index=i, **kw) for i, v in enumerate(values)])

    def reorg(self, fork_at: int) -> list[StoredEvent]:
        """Orphan the blocks above ``fork_at``; the next blocks are on a new fork."""
        orphaned = {block_hash(n, self.fork) for n in range(fork_at + 1, self.number + 1)}
        checkpoint = Checkpoint(self.chain_id, fork_at, block_hash(fork_at, self.fork))
        changes = self.store.reorg(self.chain_id, orphaned, checkpoint, fork_at + 1)
        self.fork += 1
        self.number = fork_at
        for sink in self.sinks:
            sink.on_changes(changes)
        return [c.event for c in changes if c.event is not None]


def statuses_for(settings: Settings, connected: bool = True) -> dict[int, ChainStatus]:
    out = {}
    for c in settings.chains:
        providers = [ProviderStatus(c.providers[0], connected)]
        out[c.chain_id] = ChainStatus(c.name, c.chain_id, c.confirmations, providers=providers)
    return out


class Harness:
    """Settings, store, statuses, the two chains, and (inside ``serving``) the server."""

    def __init__(self, tmp_path: Path, confirmations: int = 2, **server: Any) -> None:
        self.tmp_path = tmp_path
        self.settings = make_settings(tmp_path, confirmations, **server)
        self.store = Store.open(self.settings.storage.url)
        self.statuses = statuses_for(self.settings)
        self.dev = Chain(self.settings, self.store, self.statuses[CHAIN_ID])
        self.other = Chain(self.settings, self.store, self.statuses[OTHER_CHAIN_ID])
        self.server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "wss" if self.settings.server.tls_cert else "ws"
        return f"{scheme}://127.0.0.1:{self.server.port}"

    @contextlib.asynccontextmanager
    async def serving(self, port: int | None = None) -> AsyncIterator[Server]:
        settings = self.settings
        if port is not None:  # e.g. the port of a server that was stopped, to restart it
            settings = replace(settings, server=replace(settings.server, port=port))
        server = Server(settings, self.store, self.statuses)
        await server.start()
        self.server = server
        self.dev.sinks.append(server)
        self.other.sinks.append(server)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(server.serve_forever())
                try:
                    yield server
                finally:
                    async with asyncio.timeout(TIMEOUT):
                        await server.close()
        finally:
            self.dev.sinks.remove(server)
            self.other.sinks.remove(server)

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


class RpcClient:
    """A JSON-RPC client over one websockets connection: answers matched by id, notifications
    kept in arrival order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.notes: deque[dict[str, Any]] = deque()
        self.replies: dict[Any, dict[str, Any]] = {}
        self.next_id = 0

    async def _read(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            message = json.loads(await self.ws.recv())
        if isinstance(message, dict) and message.get("method") == "eth_subscription":
            self.notes.append(message["params"])
        elif isinstance(message, list):
            self.replies[tuple(m.get("id") for m in message)] = {"batch": message}
        else:
            self.replies[message.get("id")] = message

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        self.next_id += 1
        request_id = self.next_id
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            body["params"] = params
        await self.ws.send(json.dumps(body))
        while request_id not in self.replies:
            await self._read()
        return self.replies.pop(request_id)

    async def call(self, method: str, params: Any = None) -> Any:
        reply = await self.request(method, params)
        assert "result" in reply, reply
        return reply["result"]

    async def send_raw(self, message: str | bytes) -> None:
        await self.ws.send(message)

    async def any_reply(self) -> dict[str, Any]:
        while not self.replies:
            await self._read()
        key = next(iter(self.replies))
        return self.replies.pop(key)

    async def notification(self) -> dict[str, Any]:
        while not self.notes:
            await self._read()
        return self.notes.popleft()

    async def results(self, count: int, subscription: str | None = None) -> list[Any]:
        out = []
        while len(out) < count:
            note = await self.notification()
            if subscription is None or note["subscription"] == subscription:
                out.append(note["result"])
        return out


@contextlib.asynccontextmanager
async def rpc_client(url: str, **kwargs: Any) -> AsyncIterator[RpcClient]:
    async with connect(url, open_timeout=TIMEOUT, **kwargs) as ws:
        yield RpcClient(ws)
