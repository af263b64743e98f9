"""How many events per second ``Store.write_batch`` sustains, on SQLite and PostgreSQL.

Run from the repository root::

    .venv/bin/python tests/store/bench_write.py [--events 40000] [--sizes 50,2000]

Each run writes fresh events (realistic ERC-20 Transfer shapes: 3 topics, 32-byte data, decoded
args) in batches of the given size, one transaction per batch with a checkpoint and, for live-
sized batches, the block's head, into a new SQLite file and a new PostgreSQL schema that are
removed afterwards. The time includes building the rows and the StoredEvents returned.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from chainwatch.core.model import Checkpoint, DecodedEvent, Head, Log
from chainwatch.store import Store

PG_URL = os.environ.get("CHAINWATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def make_events(n: int, per_block: int) -> list[tuple[list[DecodedEvent], Checkpoint, Head]]:
    batches = []
    for start in range(0, n, per_block):
        number = 1_000_000 + start // per_block
        block_hash = f"0x{number:064x}"
        events = []
        for i in range(min(per_block, n - start)):
            k = start + i
            sender, receiver = f"0x{k:040x}", f"0x{k + 1:040x}"
            log = Log(
                address="0x" + "a0" * 20,
                topics=(TRANSFER, "0x" + "0" * 24 + sender[2:], "0x" + "0" * 24 + receiver[2:]),
                data=f"0x{k * 10**15:064x}",
                block_number=number,
                block_hash=block_hash,
                transaction_hash=f"0x{k:064x}",
                transaction_index=i // 2,
                log_index=i,
            )
            args = {"from": sender, "to": receiver, "value": str(k * 10**15)}
            events.append(DecodedEvent(1, log, "USDC", "Transfer", args, historical=True))
        head = Head(number, block_hash, f"0x{number - 1:064x}")
        batches.append((events, Checkpoint(1, number, block_hash), head))
    return batches


def run(store: Store, n: int, size: int) -> tuple[float, float]:
    """(events per second of wall time, events per second of this process's CPU time)."""
    batches = make_events(n, size)
    live = size <= 100
    wall, cpu = time.perf_counter(), time.process_time()
    for events, checkpoint, head in batches:
        store.write_batch(events, checkpoint, [head] if live else ())
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def report(backend: str, size: int, rates: list[tuple[float, float]]) -> None:
    wall = max(r[0] for r in rates)
    cpu = max(r[1] for r in rates)
    print(f"{backend:<11} batch {size:>5}: {wall:>9,.0f} events/s  ({cpu:>9,.0f} per CPU-second)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--sizes", default="50,2000")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is shown")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    for size in sizes:
        rates = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                store = Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
                rates.append(run(store, args.events, size))
                store.close()
        report("sqlite", size, rates)

    engine = sa.create_engine(PG_URL)
    for size in sizes:
        rates = []
        for _ in range(args.repeat):
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            store = Store.open(PG_URL, schema=schema)
            try:
                rates.append(run(store, args.events, size))
            finally:
                store.close()
                with engine.begin() as conn:
                    conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        report("postgresql", size, rates)
    engine.dispose()


if __name__ == "__main__":
    main()
