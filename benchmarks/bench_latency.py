"""Alert latency under load: from the provider sending a log to a subscriber receiving its alert.

The replay provider (own process) plays blocks of 50 logs at 1,000 logs/s, each block's logs and
then its head in one burst, as a node announces an imported block, and keeps the wall-clock send
time of every log. 1,000 subscribers (4 processes x 250 connections) hold one
``chainwatch_subscribe`` each, as an alert service's users would: 990 watch the USDC transfers to
one account (``where [["to", "==", account]]``) and 10 take every event (spread over the
processes: one process reading all 500 firehose frames a block would measure itself, not the
server). Each records the wall-clock time it received every message and parses the messages
after the run, so that a client's own parsing delays none of the next frames (same machine,
same clock); the latency of a delivery of a ``new`` event is its receive time minus its log's
send time. p50 and p99 over every delivery.

There is no baseline: the naive pipeline neither filters per subscriber nor keeps up with the
rate, so a figure for it would say nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from benchmarks.common import free_port, quiet_logs, row, write_config
from benchmarks.replay_provider import HOLDERS, SpawnedProvider

RATE = 1_000  # logs per second
SECONDS = 10
LOGS_PER_BLOCK = 50
PROCESSES = 4
CONNECTIONS = 250  # per process
FIREHOSE_EVERY = 100  # every 100th subscriber takes every event: 10 of 1,000
# `[server]` lines for a thousand clients from one address, most with a `where`: past the
# limits a server exposed to strangers keeps per address (README, "Safe to expose").
SUBSCRIBER_LIMITS = "\n".join(
    f"{key} = {value}"
    for key, value in (
        ("max_connections_per_ip", PROCESSES * CONNECTIONS + 100),
        ("max_handshakes", PROCESSES * CONNECTIONS + 100),
        ("max_handshakes_per_ip", PROCESSES * CONNECTIONS + 100),
        ("max_match_cost_per_ip", 10 * (PROCESSES * CONNECTIONS + 100)),
    )
)


def subscriber_filter(index: int) -> dict[str, Any]:
    if index % FIREHOSE_EVERY == 0:
        return {}
    holder = HOLDERS[index % len(HOLDERS)]
    return {"contracts": ["USDC"], "events": ["Transfer"], "where": [["to", "==", holder]]}


def _subscribers_main(url: str, first: int, count: int, conn: Any) -> None:
    """Child process: ``count`` subscriptions; ready; then (block, log index, time) per event
    until 3 s pass without one after the first (or 120 s in all)."""

    async def one(index: int, received: list[tuple[str | bytes, float]], ready: Any) -> None:
        async with connect(url, max_size=None, open_timeout=60) as ws:
            request = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "chainwatch_subscribe",
                "params": [subscriber_filter(index)],
            }
            await ws.send(json.dumps(request))
            reply = json.loads(await ws.recv())
            if "error" in reply:
                raise RuntimeError(f"chainwatch_subscribe refused: {reply['error']}")
            ready()
            async for message in ws:
                received.append((message, time.time()))

    async def main() -> None:
        received: list[tuple[str | bytes, float]] = []
        pending = count
        all_ready = asyncio.Event()

        def ready() -> None:
            nonlocal pending
            pending -= 1
            if pending == 0:
                all_ready.set()

        tasks = [asyncio.create_task(one(first + i, received, ready)) for i in range(count)]
        waiter = asyncio.create_task(all_ready.wait())
        await asyncio.wait([waiter, *tasks], timeout=120, return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in tasks if t.done() and t.exception() is not None]
        if failed or not all_ready.is_set():
            conn.send(f"failed: {failed[0].exception() if failed else 'not ready in 120 s'}")
            return
        conn.send("ready")
        deadline = time.monotonic() + 120
        seen = 0
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if len(received) != seen:
                seen, quiet_since = len(received), time.monotonic()
            elif seen and time.monotonic() - quiet_since > 3:
                break
        for task in tasks:
            task.cancel()
        conn.send(_new_events(received))

    asyncio.run(main())


def _new_events(received: list[tuple[str | bytes, float]]) -> list[tuple[int, int, float]]:
    """(block, log index, receive time) of every ``new`` event among the received messages."""
    out = []
    for message, now in received:
        result = json.loads(message).get("params", {}).get("result")
        for event in result if isinstance(result, list) else [result]:
            if isinstance(event, dict) and event.get("status") == "new":
                out.append((event["block_number"], event["log_index"], now))
    return out


@contextlib.asynccontextmanager
async def subscribers(url: str) -> AsyncIterator[list[Any]]:
    """The subscriber processes on ``url``, all subscribed; yields their pipes (each sends
    its deliveries once the provider has played)."""
    context = multiprocessing.get_context("spawn")
    children = []
    try:
        for p in range(PROCESSES):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_subscribers_main,
                args=(url, p * CONNECTIONS, CONNECTIONS, theirs),
                daemon=True,
            )
            process.start()
            children.append((process, mine))
        for _, mine in children:
            message = await asyncio.wait_for(asyncio.to_thread(mine.recv), 180)
            if message != "ready":
                raise RuntimeError(f"subscribers: {message}")
        yield [mine for _, mine in children]
    finally:
        for process, _ in children:
            if process.is_alive():
                process.terminate()
            process.join(10)


async def measure() -> dict[str, float]:
    from chainwatch.config import load_settings
    from chainwatch.daemon import Daemon

    blocks = RATE * SECONDS // LOGS_PER_BLOCK
    with (
        tempfile.TemporaryDirectory() as folder,
        SpawnedProvider(blocks, LOGS_PER_BLOCK) as provider,
    ):
        port = free_port()
        settings = load_settings(
            write_config(
                Path(folder),
                provider_url=provider.url,
                storage_url=f"sqlite:///{Path(folder) / 'chainwatch.db'}",
                server_port=port,
                extra_server=SUBSCRIBER_LIMITS,
            )
        )
        daemon = Daemon(settings)
        task = asyncio.create_task(daemon.run())
        try:
            waiter = asyncio.create_task(daemon.started.wait())
            await asyncio.wait([waiter, task], timeout=60, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
            async with subscribers(f"ws://127.0.0.1:{port}") as pipes:
                await provider.play(rate=RATE)
                deliveries: list[tuple[int, int, float]] = []
                for mine in pipes:
                    deliveries += await asyncio.wait_for(asyncio.to_thread(mine.recv), 180)
            sent = {(b, i): t for b, i, t in await provider.call("replay_send_times")}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    latencies = sorted(
        (received - sent[(block, index)]) * 1000
        for block, index, received in deliveries
        if (block, index) in sent
    )
    if not latencies:
        raise RuntimeError("no subscriber received an event")
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50": quantiles[49], "p99": quantiles[98], "deliveries": len(latencies)}


def run() -> list[dict[str, Any]]:
    quiet_logs()
    result = asyncio.run(measure())
    load = f"{PROCESSES * CONNECTIONS:,} subscribers, {RATE:,} logs/s"
    return [
        row(f"alert latency p50 ({load})", result["p50"], None, "ms"),
        row(f"alert latency p99 ({load})", result["p99"], None, "ms"),
        row("alert deliveries in the latency run", result["deliveries"], None, "alerts"),
    ]
