"""Ingest throughput, end to end: logs per second from the provider to a downstream subscriber.

replay provider (own process) -> pipeline under test (this process) -> database -> one
downstream WebSocket subscriber (own process) that receives every event. The clock runs from
the ``replay_play`` call to the subscriber's last event, so the rate covers everything: reading,
decoding, storing, committing and fanning out. Both pipelines read the same generated stream;
the baseline gets fewer blocks because it is slow, and the rates are compared. Each pipeline
runs RUNS times per database, alternating with the other, on a new database each time; the
medians are reported: logs per second, and logs per CPU second of the process that runs the
pipeline (the daemon's every thread; the provider and the subscriber run in their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.common import (
    Counter,
    free_port,
    postgres_available,
    postgres_database,
    quiet_logs,
    row,
    write_config,
)
from benchmarks.naive_pipeline import run_naive
from benchmarks.replay_provider import SpawnedProvider

LOGS_PER_BLOCK = 50
CHAINWATCH_BLOCKS = 400  # 20,000 logs
BASELINE_BLOCKS = 20  # 1,000 logs
RUNS = 3  # per pipeline and database; the median is reported


async def chainwatch_rate(storage_url: str | None, blocks: int = CHAINWATCH_BLOCKS) -> Rates:
    """Logs per second through the chainwatch daemon into ``storage_url`` (None: a SQLite file),
    and per CPU second of this process."""
    from chainwatch.config import load_settings
    from chainwatch.daemon import Daemon

    with (
        tempfile.TemporaryDirectory() as folder,
        SpawnedProvider(blocks, LOGS_PER_BLOCK) as provider,
    ):
        port = free_port()
        url = storage_url or f"sqlite:///{Path(folder) / 'chainwatch.db'}"
        settings = load_settings(
            write_config(Path(folder), provider_url=provider.url, storage_url=url, server_port=port)
        )
        daemon = Daemon(settings)
        task = asyncio.create_task(daemon.run())
        counter = None
        try:
            await _until_started(daemon, task)
            counter = Counter(f"ws://127.0.0.1:{port}", blocks * LOGS_PER_BLOCK)
            await counter.ready()
            return await _measure(provider, counter, blocks * LOGS_PER_BLOCK)
        finally:
            if counter is not None:
                counter.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def baseline_rate(storage_url: str | None, blocks: int = BASELINE_BLOCKS) -> Rates:
    """Logs per second through the naive web3.py pipeline into ``storage_url`` (None: SQLite),
    and per CPU second of this process."""
    with (
        tempfile.TemporaryDirectory() as folder,
        SpawnedProvider(blocks, LOGS_PER_BLOCK) as provider,
    ):
        port = free_port()
        ready = asyncio.Event()
        url = storage_url or f"sqlite:///{Path(folder) / 'naive.db'}"
        task = asyncio.create_task(run_naive(provider.url, url, port, ready=ready))
        counter = None
        try:
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait([waiter, task], timeout=60, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
            counter = Counter(f"ws://127.0.0.1:{port}", blocks * LOGS_PER_BLOCK, method=None)
            await counter.ready()
            return await _measure(provider, counter, blocks * LOGS_PER_BLOCK)
        finally:
            if counter is not None:
                counter.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _until_started(daemon: Any, task: asyncio.Task[None]) -> None:
    waiter = asyncio.create_task(daemon.started.wait())
    await asyncio.wait([waiter, task], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # a start-up error: raise it here
    if not waiter.done():
        waiter.cancel()
        raise RuntimeError("chainwatch did not catch up within 60 s")


class Rates(NamedTuple):
    wall: float  # logs per second, provider to subscriber
    cpu: float  # logs per CPU second of the pipeline's process (its every thread)


async def _measure(provider: SpawnedProvider, counter: Counter, expected: int) -> Rates:
    started, cpu_started = time.time(), time.process_time()
    play = asyncio.create_task(provider.play())
    received, last = await counter.result()
    cpu = time.process_time() - cpu_started
    await asyncio.wait_for(play, 60)
    if received < expected:
        raise RuntimeError(f"the subscriber received {received} of {expected} events")
    return Rates(received / (last - started), received / cpu)


def _rate(pipeline: Any, storage: str) -> Rates:
    """One run of ``pipeline`` (chainwatch_rate or baseline_rate) on a new database: a SQLite
    file in a temporary folder, or a new PostgreSQL database. One event loop per run: a
    stopped daemon shuts its loop's default executor down."""
    if storage == "sqlite":
        return Rates(*asyncio.run(pipeline(None)))
    with postgres_database() as url:
        return Rates(*asyncio.run(pipeline(url)))


def _side_by_side(name: str, storage: str) -> list[dict[str, Any]]:
    """Rows of the medians of RUNS runs of each pipeline, alternating, so that a slow moment of
    the machine does not decide a row: logs per second, and per CPU second of the pipeline's
    process (what one core sustains, whatever the provider and subscriber processes take)."""
    ours, theirs = [], []
    for _ in range(RUNS):
        ours.append(_rate(chainwatch_rate, storage))
        theirs.append(_rate(baseline_rate, storage))

    def median(runs: list[Rates], field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs)

    return [
        row(name, median(ours, "wall"), median(theirs, "wall"), "logs/s"),
        row(f"{name}, per CPU second", median(ours, "cpu"), median(theirs, "cpu"), "logs/CPU-s"),
    ]


def run() -> list[dict[str, Any]]:
    quiet_logs()
    rows = _side_by_side("ingest, SQLite", "sqlite")
    if postgres_available():
        rows += _side_by_side("ingest, PostgreSQL", "postgresql")
    return rows
