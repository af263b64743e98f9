"""Fan-out cost: server CPU per delivered notification, and memory per idle connection.

A real chainwatch :class:`~chainwatch.server.Server` (SQLite store in a temporary folder) and
1,000 subscribers (``--clients``), each with one ``chainwatch_subscribe``, held by 4 client
processes so that they share neither the server's loop nor its CPU clock. Bursts of 50 ERC-20
transfers (a block's worth) are handed to ``Server.on_changes``; the server's CPU time
(``time.process_time()``) runs from that call until every client has received the whole burst,
and is divided by the deliveries (clients x 50).

Baseline: a plain websockets server, same clients, same events, doing what a straightforward
implementation does: encode each event once, wrap it in each subscriber's ``eth_subscription``
envelope and hand it to ``websockets.broadcast`` - one frame and one ``transport.write`` per
delivery.

Memory: the growth of the server process's RSS from before the clients connect to when all of
them are connected and subscribed, idle, divided by their number. Each server runs in a fresh
process of its own, so that one's freed memory does not hide the other's growth.

``python -m benchmarks.bench_fanout [--clients N] [--bursts N]``; ``--clients 10000`` for the
10,000-connection memory figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from benchmarks.common import quiet_logs, row

PROCESSES = 4
CLIENTS = 1_000
BURSTS = 8
BURST_SIZE = 50
CHAIN_ID = 31337
TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
TRANSFER0 = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ERC20_ABI = Path(__file__).resolve().parents[1] / "contracts" / "abi" / "ERC20.json"

Deliver = Callable[[list[Any]], None]


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- clients (child processes) -------------------------------------------------------------------


def _clients_main(url: str, count: int, bursts: int, size: int, conn: Any) -> None:
    """``count`` subscribers; "ready" once all are subscribed; then, per burst, "done" once
    every one of them has received ``size`` more notifications."""

    async def main() -> None:
        subscribed = 0
        all_subscribed = asyncio.Event()
        received = 0  # notifications, all clients together
        target = 0
        reached = asyncio.Event()

        async def one() -> None:
            nonlocal subscribed, received
            async with connect(
                url, max_size=None, open_timeout=300, compression=None, ping_interval=None
            ) as ws:
                request = {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "chainwatch_subscribe",
                    "params": [{}],
                }
                await ws.send(json.dumps(request))
                reply = json.loads(await ws.recv())
                if "result" not in reply:
                    raise RuntimeError(f"subscribe refused: {reply}")
                subscribed += 1
                if subscribed == count:
                    all_subscribed.set()
                async for _ in ws:
                    received += 1
                    if received == target:
                        reached.set()

        tasks = [asyncio.create_task(one()) for _ in range(count)]
        try:
            async with asyncio.timeout(300):
                await all_subscribed.wait()
            conn.send("ready")
            for burst in range(1, bursts + 1):
                target = burst * size * count  # no client gets more than its share
                reached.clear()
                if received < target:
                    async with asyncio.timeout(120):
                        await reached.wait()
                conn.send("done")
            await asyncio.to_thread(conn.recv)  # "stop"
        except Exception as exc:
            conn.send(f"failed: {exc!r}")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


class Clients:
    """The client processes, driven over pipes that the loop watches (no threads)."""

    def __init__(self, url: str, total: int, bursts: int, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.children = []
        for p in range(PROCESSES):
            count = total // PROCESSES + (1 if p < total % PROCESSES else 0)
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_clients_main, args=(url, count, bursts, size, theirs), daemon=True
            )
            process.start()
            self.children.append((process, mine))

    async def wait_all(self, expected: str, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        for _, pipe in self.children:
            ready = loop.create_future()
            loop.add_reader(pipe.fileno(), lambda f=ready: f.done() or f.set_result(None))
            try:
                async with asyncio.timeout(seconds):
                    await ready
            finally:
                loop.remove_reader(pipe.fileno())
            message = pipe.recv()
            if message != expected:
                raise RuntimeError(f"clients: {message}")

    async def close(self) -> None:
        """Stop the clients, serving their closing handshakes meanwhile (never block the loop
        the server runs on)."""
        loop = asyncio.get_running_loop()
        for _, pipe in self.children:
            with contextlib.suppress(OSError):
                pipe.send("stop")
        for process, _ in self.children:
            ended = loop.create_future()
            loop.add_reader(process.sentinel, lambda f=ended: f.done() or f.set_result(None))
            try:
                async with asyncio.timeout(30):
                    await ended
            except TimeoutError:
                process.terminate()
            finally:
                loop.remove_reader(process.sentinel)
            process.join(5)


# --- events ------------------------------------------------------------------------------------


def make_bursts(bursts: int, size: int) -> list[list[Any]]:
    from chainwatch.core.jsonform import checksum_address
    from chainwatch.core.model import Log, StoredEvent

    out = []
    event_id = 0
    for b in range(bursts):
        burst = []
        for i in range(size):
            event_id += 1
            sender = f"0x{(event_id * 7919) % 2**160:040x}"
            receiver = f"0x{(event_id * 104729) % 2**160:040x}"
            log = Log(
                TOKEN,
                (TRANSFER0, "0x" + "0" * 24 + sender[2:], "0x" + "0" * 24 + receiver[2:]),
                f"0x{event_id * 10**15:064x}",
                100 + b,
                f"0x{100 + b:064x}",
                f"0x{event_id:064x}",
                i,
                i,
            )
            args = {
                "from": checksum_address(sender),
                "to": checksum_address(receiver),
                "value": str(event_id * 10**15),
            }
            event = StoredEvent(event_id, CHAIN_ID, log, "Token", "Transfer", args, None, "new")
            burst.append(event)
        out.append(burst)
    return out


# --- the two servers -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def chainwatch_server(folder: Path) -> AsyncIterator[tuple[str, Deliver]]:
    from chainwatch.config import (
        ChainSettings,
        ContractSettings,
        ServerSettings,
        Settings,
        StorageSettings,
    )
    from chainwatch.core.model import Head
    from chainwatch.core.sink import ChainStatus, ProviderStatus
    from chainwatch.server import Server
    from chainwatch.store import Store

    settings = Settings(
        folder / "chainwatch.toml",
        StorageSettings(f"sqlite:///{folder / 'cw.db'}"),
        # Every client from one address: past the limits kept per address for strangers.
        ServerSettings(
            port=0,
            max_connections_per_ip=1_000_000,
            max_handshakes=1_000_000,
            max_handshakes_per_ip=1_000_000,
            max_match_cost_per_ip=1_000_000,
        ),
        (ChainSettings("bench", CHAIN_ID, ("ws://127.0.0.1:1/",)),),
        (ContractSettings("Token", "bench", TOKEN, ERC20_ABI),),
    )
    store = Store.open(settings.storage.url)
    store.save_token(CHAIN_ID, TOKEN, "TKN", 18)
    status = ChainStatus("bench", CHAIN_ID, 2, providers=[ProviderStatus("ws://x", True)])
    status.head = Head(110, "0x" + "11" * 32, "0x" + "22" * 32)
    server = Server(settings, store, {CHAIN_ID: status})
    await server.start()

    from chainwatch.core.model import Change

    def deliver(burst: list[Any]) -> None:
        # What ingest hands over after a commit: each event's `new` change (its id is its cursor).
        server.on_changes([Change(e.id, CHAIN_ID, "new", e) for e in burst])

    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(server.serve_forever())
            try:
                yield f"ws://127.0.0.1:{server.port}", deliver
            finally:
                await server.close()
    finally:
        store.close()


@contextlib.asynccontextmanager
async def plain_server() -> AsyncIterator[tuple[str, Deliver]]:
    """The baseline: websockets' own server and ``broadcast``, one frame per delivery."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    from chainwatch.core import rpc

    subscribers: list[tuple[ServerConnection, str]] = []

    async def handler(ws: ServerConnection) -> None:
        request = json.loads(await ws.recv())
        sub_id = "0x" + os.urandom(16).hex()
        await ws.send(rpc.encode_result(request["id"], sub_id))
        subscribers.append((ws, sub_id))
        await ws.wait_closed()

    def deliver(burst: list[Any]) -> None:
        for event in burst:
            result = event.to_json()
            result["confirmations"] = 110 - event.log.block_number + 1
            result["historical"] = event.historical
            result["cursor"] = event.id  # as chainwatch's notifications carry it
            encoded = rpc.dumps(result)  # once per event
            for ws, sub_id in subscribers:
                broadcast([ws], rpc.encode_notification(sub_id, encoded))

    async with serve(handler, "127.0.0.1", 0, compression=None, backlog=4096) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}", deliver


# --- measurement ---------------------------------------------------------------------------------


async def measure(which: str, clients: int, bursts: int) -> dict[str, float]:
    events = make_bursts(bursts, BURST_SIZE)
    with tempfile.TemporaryDirectory() as folder:
        server = chainwatch_server(Path(folder)) if which == "chainwatch" else plain_server()
        async with server as (url, deliver):
            gc.collect()
            rss_before = _rss()
            load = Clients(url, clients, bursts, BURST_SIZE)
            try:
                await load.wait_all("ready", 300)
                gc.collect()
                rss_after = _rss()
                cpu = 0.0
                for burst in events:
                    cpu_start = time.process_time()
                    deliver(burst)
                    await load.wait_all("done", 120)
                    cpu += time.process_time() - cpu_start
            finally:
                await load.close()
    deliveries = clients * bursts * BURST_SIZE
    return {
        "cpu_us": cpu / deliveries * 1e6,
        "memory_kib": (rss_after - rss_before) / clients / 1024,
    }


def _measure_main(which: str, clients: int, bursts: int, conn: Any) -> None:
    """Child process: one measurement, in a fresh interpreter."""
    quiet_logs()
    try:
        conn.send(asyncio.run(measure(which, clients, bursts)))
    except Exception as exc:
        conn.send(f"failed: {exc!r}")


def measure_apart(which: str, clients: int, bursts: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    process = context.Process(target=_measure_main, args=(which, clients, bursts, theirs))
    process.start()
    try:
        if not mine.poll(900):
            raise RuntimeError(f"{which}: no result in 900 s")
        result = mine.recv()
    finally:
        process.join(60)
        if process.is_alive():
            process.terminate()
    if isinstance(result, str):
        raise RuntimeError(f"{which}: {result}")
    return dict(result)


def run(clients: int = CLIENTS, bursts: int = BURSTS) -> list[dict[str, Any]]:
    ours = measure_apart("chainwatch", clients, bursts)
    plain = measure_apart("plain", clients, bursts)
    load = f"{clients:,} clients, bursts of {BURST_SIZE}"
    memory = f"memory per idle connection ({clients:,} subscribed)"
    memory_row = row(memory, ours["memory_kib"], plain["memory_kib"], "KiB")
    memory_row["ratio"] = plain["memory_kib"] / ours["memory_kib"]  # lower is better
    return [
        row(f"fan-out CPU per delivery ({load})", ours["cpu_us"], plain["cpu_us"], "µs"),
        memory_row,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="Fan-out CPU per delivery and memory per client")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--bursts", type=int, default=BURSTS)
    options = parser.parse_args()
    started = time.monotonic()
    for result in run(options.clients, options.bursts):
        ratio = f"{result['ratio']:.1f}x" if result["ratio"] else "-"
        print(
            f"{result['name']}: chainwatch {result['chainwatch']:.2f}, "
            f"baseline {result['baseline']:.2f} {result['unit']} (ratio {ratio})"
        )
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
