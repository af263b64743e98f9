"""What the benchmarks share: result rows, the machine, chainwatch configs, databases, clients.

A result row is ``{name, chainwatch, baseline, unit, ratio}``. ``ratio`` always reads "times
better than the baseline": chainwatch / baseline for rates, baseline / chainwatch for times
(units ending in ``ms`` or ``s`` alone), None when there is no baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from benchmarks.replay_provider import ABI_DIR, CHAIN_ID, CONTRACTS, WatchedContract

PG_URL = os.environ.get("CHAINWATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LOWER_IS_BETTER = ("ms", "s", "µs")


def row(name: str, chainwatch: float, baseline: float | None, unit: str) -> dict[str, Any]:
    """One result; the ratio says how many times better chainwatch is than the baseline."""
    ratio = None
    if baseline:
        lower = unit in LOWER_IS_BETTER
        ratio = (baseline / chainwatch) if lower else (chainwatch / baseline)
    return {
        "name": name,
        "chainwatch": chainwatch,
        "baseline": baseline,
        "unit": unit,
        "ratio": ratio,
    }


def machine() -> dict[str, Any]:
    """Cores and CPU model, from /proc/cpuinfo where there is one."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count() or 1, "cpu": model}


def loop_milliseconds() -> float:
    """How long a fixed pure-Python loop takes here, best of 5: the speed of the machine at
    that moment. A shared host's load changes it from one minute to the next; the rows, each
    measured side by side, vary much less in their ratios than in their rates."""
    import timeit

    return 1000 * min(timeit.repeat("sum(range(10_000))", number=1000, repeat=5))


def quiet_logs() -> None:
    """The benchmarks print one table: the daemon's info lines go nowhere."""
    logging.basicConfig(level=logging.WARNING)
    for name in ("chainwatch", "web3", "websockets", "sqlalchemy", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    folder: Path,
    *,
    provider_url: str,
    storage_url: str,
    server_port: int,
    contracts: Sequence[WatchedContract] = CONTRACTS,
    chain_id: int = CHAIN_ID,
    from_block: int | None = None,
    abi_dir: Path = ABI_DIR,
    confirmations: int = 2,
    getlogs_max_range: int = 2000,
    extra_server: str = "",
) -> Path:
    """A chainwatch config watching ``contracts`` on one chain served by ``provider_url``."""
    lines = [
        "[storage]",
        f"url = {json.dumps(storage_url)}",
        "",
        "[server]",
        'host = "127.0.0.1"',
        f"port = {server_port}",
        extra_server,
        "",
        "[[chains]]",
        'name = "bench"',
        f"chain_id = {chain_id}",
        f"providers = [{json.dumps(provider_url)}]",
        f"confirmations = {confirmations}",
        f"getlogs_max_range = {getlogs_max_range}",
        "",
    ]
    for contract in contracts:
        lines += [
            "[[contracts]]",
            f"name = {json.dumps(contract.name)}",
            'chain = "bench"',
            f"address = {json.dumps(contract.address)}",
            f"abi = {json.dumps(str(abi_dir / contract.abi))}",
        ]
        if from_block is not None:
            lines.append(f"from_block = {from_block}")
        lines.append("")
    path = folder / "chainwatch.toml"
    path.write_text("\n".join(lines))
    return path


@contextlib.contextmanager
def _postgres_object(kind: str, drop_option: str) -> Iterator[str]:
    """A new, uniquely named PostgreSQL ``kind`` (DATABASE or SCHEMA); dropped afterwards."""
    import psycopg

    name = f"cw_bench_{secrets.token_hex(4)}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE {kind} "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP {kind} IF EXISTS "{name}"{drop_option}')


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, uniquely named PostgreSQL database for one run (its URL); dropped afterwards."""
    with _postgres_object("DATABASE", " WITH (FORCE)") as name:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A new, uniquely named schema in the test database (its name); dropped afterwards."""
    with _postgres_object("SCHEMA", " CASCADE") as name:
        yield name


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(
            PG_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3
        ):
            return True
    except Exception:
        return False


@contextlib.asynccontextmanager
async def subscriber(
    url: str, method: str = "chainwatch_subscribe", params: Sequence[Any] = ({},)
) -> AsyncIterator[Any]:
    """A downstream WebSocket client with one subscription; yields the connection."""
    async with connect(url, max_size=None, open_timeout=30) as ws:
        await ws.send(
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        )
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("id") == 1:
                if "error" in reply:
                    raise RuntimeError(f"{method} refused: {reply['error']}")
                break
        yield ws


# How a chainwatch notification of an event seen for the first time shows it (compact JSON).
FIRST_SEEN = b'"status":"new"'


# --- downstream clients in their own processes ---------------------------------------------------


def _count_main(url: str, method: str | None, params: list[Any], expected: int, conn: Any) -> None:
    """Child process: subscribe (or just connect, for a plain broadcast), say ready, count
    events until ``expected`` came or 10 s passed without one; send (count, last time.time()).

    The counting reads the raw frames without parsing them, so that the measuring client is
    never the slowest part of what it measures."""

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            if method is None:
                ws = await stack.enter_async_context(connect(url, max_size=None))
            else:
                ws = await stack.enter_async_context(subscriber(url, method, params))
            conn.send("ready")
            received = 0
            last = time.time()
            while received < expected:
                try:
                    async with asyncio.timeout(10):
                        message = await ws.recv(decode=False)
                except TimeoutError:
                    break
                if method is None:
                    received += 1
                else:  # confirmations of events already counted come later: not counted
                    received += message.count(FIRST_SEEN)
                last = time.time()
            conn.send((received, last))

    asyncio.run(main())


class Counter:
    """A downstream client in a child process counting what it receives.

    ``method`` None: a plain WebSocket client counting messages (the baseline's broadcast);
    else a JSON-RPC subscription counting the events its notifications carry.
    """

    def __init__(
        self,
        url: str,
        expected: int,
        method: str | None = "chainwatch_subscribe",
        params: Sequence[Any] = ({},),
    ) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_count_main, args=(url, method, list(params), expected, child), daemon=True
        )
        self.process.start()

    async def ready(self, within: float = 60.0) -> None:
        message = await asyncio.wait_for(asyncio.to_thread(self._conn.recv), within)
        if message != "ready":
            raise RuntimeError(f"counter: {message!r}")

    async def result(self, within: float = 600.0) -> tuple[int, float]:
        """(events received, time.time() of the last)."""
        received, last = await asyncio.wait_for(asyncio.to_thread(self._conn.recv), within)
        return int(received), float(last)

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(10)
