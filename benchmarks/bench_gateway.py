"""A gateway on PostgreSQL: alert latency through ``chainwatch serve``, and its CPU per delivery
beside the in-process path's (``chainwatch run``), on the same traffic, one after the other.

The traffic and the subscribers are those of :mod:`benchmarks.bench_latency`: the replay
provider (own process) plays blocks of 50 logs at 1,000 logs/s for 10 s and keeps the wall-clock
send time of every log; 1,000 subscribers (4 processes x 250 connections) each hold one
``chainwatch_subscribe`` (990 on one account's USDC transfers, 10 on everything) and time every
message they receive. Every chainwatch role runs as its own process, started from the command
line on a fresh PostgreSQL schema each:

* gateway: ``chainwatch ingest`` (leads the chain, commits to the store) and ``chainwatch serve``
  (reads the change log when the commit's ``NOTIFY`` wakes it), the subscribers on the gateway;
* in-process: ``chainwatch run`` (ingest and server in one process, changes handed over in
  memory), the subscribers on it.

Latency, as in bench_latency, runs from the provider sending a log to a subscriber receiving its
alert (p50 and p99 over every delivery of a ``new`` event); the "from the commit" row runs from
the change's ``created_at`` in the store instead - PostgreSQL's ``now()``, the start of the
transaction that committed it, so at most the length of that transaction before the commit
(same machine, same clock). The in-process path is each latency row's baseline.

CPU per delivery is the CPU time (user + system, ``/proc/<pid>/stat``) a process spent from the
moment the provider starts playing to the last alert received, over the notifications its server
delivered (``chainwatch_deliveries_total`` on its ``/metrics``). A gateway's serving cost is all
of ``chainwatch serve``'s, reading the log included. ``chainwatch run`` serves on its event loop
(routing, frames, socket writes), beside the decoding and the pipeline that ``chainwatch
ingest`` runs on its own: the in-process serving cost is run's main-thread CPU less ingest's on
the same traffic (in the gateway run). Their other threads (the store's writes, the same in
both, and run's few token-metadata reads) are left out of that difference: their CPU varies by
up to half a second from one run to the next on a shared machine, as much as the difference
itself. The goal is a gateway within 1.5x of the in-process path: a ratio (in-process / gateway,
as for every time) of at least 0.67x. The "event loop only" row leaves out the gateway's other
threads, which read the change log (and the leases); the "all roles" row compares everything:
the two processes of the gateway set-up with ``run``'s one. The database server's own CPU is
counted in neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.bench_latency import (
    CONNECTIONS,
    LOGS_PER_BLOCK,
    PROCESSES,
    RATE,
    SECONDS,
    SUBSCRIBER_LIMITS,
    subscribers,
)
from benchmarks.common import (
    PG_URL,
    free_port,
    postgres_available,
    postgres_schema,
    quiet_logs,
    row,
    write_config,
)
from benchmarks.replay_provider import SpawnedProvider

CHAINWATCH = str(Path(sys.executable).parent / "chainwatch")
TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.05  # seconds between two readings of the processes' CPU time
START_WITHIN = 60.0  # seconds a process has to become ready


def cpu_seconds(stat_path: str) -> float:
    """User + system CPU time so far of the process or thread whose ``stat`` file this is
    (proc(5): fields 14 and 15 of ``/proc/<pid>/stat`` or ``/proc/<pid>/task/<tid>/stat``)."""
    stat = Path(stat_path).read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command may hold spaces and brackets
    return (int(fields[11]) + int(fields[12])) / TICKS


def commit_times(schema: str) -> dict[tuple[int, int], float]:
    """(block, log index) -> Unix time of the transaction that stored the event (its ``new``
    change's ``created_at``)."""
    import psycopg

    with psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute(
            f'SELECT e.block_number, e.log_index, extract(epoch FROM c.created_at) FROM "{schema}"'
            f'.changes c JOIN "{schema}".events e ON e.id = c.event_id WHERE c.kind = %s',
            ("new",),
        ).fetchall()
    return {(int(b), int(i)): float(t) for b, i, t in rows}


class Role:
    """One ``chainwatch`` command in a process of its own; its log goes to a file."""

    def __init__(self, folder: Path, name: str, *args: str) -> None:
        self.name = name
        self.log = folder / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [CHAINWATCH, *args, "--log-level", "warning"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the whole process, and of its main thread (the event loop: decoding,
        routing, writing to sockets; the others run the store's queries)."""
        pid = self.process.pid
        return cpu_seconds(f"/proc/{pid}/stat"), cpu_seconds(f"/proc/{pid}/task/{pid}/stat")

    def failure(self) -> str:
        tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
        return f"chainwatch {self.name} exited {self.process.returncode}: {' | '.join(tail)}"

    async def ready(self, url: str, check: Callable[[int, dict[str, Any]], bool]) -> None:
        """Poll ``url`` (``/healthz``) until ``check(status, body)`` holds."""
        deadline = time.monotonic() + START_WITHIN
        seen = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.failure())
            status, body = await asyncio.to_thread(_get_json, url)
            if status and check(status, body):
                return
            seen = f"{status} {body}"
            await asyncio.sleep(0.1)
        raise RuntimeError(f"chainwatch {self.name} not ready in {START_WITHIN:.0f} s: {seen}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        return 0, {}


def deliveries_total(port: int) -> float:
    """``chainwatch_deliveries_total`` of the server on ``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("chainwatch_deliveries_total "):
                return float(line.split()[1])
    raise RuntimeError("no chainwatch_deliveries_total in /metrics")


def _chain_live(status: int, body: dict[str, Any]) -> bool:
    """Every chain has a provider subscribed and a head (caught up); led, for ``ingest``."""
    chains = body.get("chains", {}).values()
    return status == 200 and all(
        c.get("providers_connected") and c.get("head") is not None and c.get("leader", True)
        for c in chains
    )


@dataclass
class Phase:
    """What one set-up measured."""

    send: list[float]  # ms, provider send -> subscriber, per delivery
    commit: list[float]  # ms, transaction start -> subscriber, per delivery
    delivered: float  # notifications the server delivered (its /metrics)
    cpu: dict[str, float] = field(default_factory=dict)  # role -> CPU seconds in the window
    loop_cpu: dict[str, float] = field(default_factory=dict)  # the same, its main thread only


async def start_roles(folder: Path, config: str, port: int, gateway: bool) -> list[Role]:
    """``chainwatch ingest`` then ``chainwatch serve`` on ``port``, or ``chainwatch run``;
    returns once each is live (subscribed to the provider and caught up; a gateway: reading
    the log, with a leader). The caller stops them."""
    roles: list[Role] = []
    try:
        health = f"http://127.0.0.1:{port}/healthz"
        if not gateway:
            roles.append(Role(folder, "run", "run", "--config", config))
            await roles[-1].ready(health, _chain_live)
            return roles
        http = free_port()
        roles.append(Role(folder, "ingest", "ingest", "--config", config, "--http-port", str(http)))
        await roles[-1].ready(f"http://127.0.0.1:{http}/healthz", _chain_live)
        roles.append(Role(folder, "serve", "serve", "--config", config, "--port", str(port)))
        await roles[-1].ready(health, lambda status, _: status == 200)
        return roles
    except BaseException:
        for role in roles:
            role.stop()
        raise


class CpuClock:
    """Reads the CPU time of ``roles`` every SAMPLE_EVERY seconds while entered."""

    def __init__(self, roles: list[Role]) -> None:
        self.roles = roles
        self.samples: list[tuple[float, dict[str, tuple[float, float]]]] = []
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.samples.append((time.time(), {r.name: r.cpu() for r in self.roles}))
            await asyncio.sleep(SAMPLE_EVERY)

    async def __aenter__(self) -> CpuClock:
        self._task = asyncio.create_task(self._sample())
        await asyncio.sleep(0)  # the first reading, now
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def spent(self, until: float, thread: int) -> dict[str, float]:
        """CPU seconds of each role from entering to the first reading at or after ``until``
        (a Unix time); ``thread`` 0: the whole process, 1: its main thread."""
        first = self.samples[0][1]
        last = next((cpu for at, cpu in self.samples if at >= until), self.samples[-1][1])
        return {name: last[name][thread] - first[name][thread] for name in first}


async def measure(gateway: bool) -> Phase:
    """One set-up (gateway or in-process) on its own schema, provider and subscribers."""
    blocks = RATE * SECONDS // LOGS_PER_BLOCK
    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres_schema() as schema,
        SpawnedProvider(blocks, LOGS_PER_BLOCK) as provider,
    ):
        folder = Path(tmp)
        port = free_port()
        config = write_config(
            folder,
            provider_url=provider.url,
            storage_url=f"{PG_URL}?options=-csearch_path%3D{schema}",
            server_port=port,
            extra_server=SUBSCRIBER_LIMITS,
        )
        roles = await start_roles(folder, str(config), port, gateway)
        try:
            async with subscribers(f"ws://127.0.0.1:{port}") as pipes:
                delivered = -await asyncio.to_thread(deliveries_total, port)
                async with CpuClock(roles) as clock:
                    await provider.play(rate=RATE)
                    deliveries: list[tuple[int, int, float]] = []
                    for mine in pipes:
                        deliveries += await asyncio.wait_for(asyncio.to_thread(mine.recv), 180)
                delivered += await asyncio.to_thread(deliveries_total, port)
            for role in roles:
                if role.process.poll() is not None:
                    raise RuntimeError(role.failure())
            sent = {(b, i): t for b, i, t in await provider.call("replay_send_times")}
        finally:
            for role in roles:
                role.stop()
        committed = await asyncio.to_thread(commit_times, schema)
    if not deliveries:
        raise RuntimeError("no subscriber received an event")
    # Up to the last alert: the idle seconds the subscribers wait before reporting are not
    # counted.
    last = max(received for _, _, received in deliveries)
    return Phase(
        send=[(t - sent[(b, i)]) * 1000 for b, i, t in deliveries if (b, i) in sent],
        commit=[(t - committed[(b, i)]) * 1000 for b, i, t in deliveries if (b, i) in committed],
        delivered=delivered,
        cpu=clock.spent(last, 0),
        loop_cpu=clock.spent(last, 1),
    )


def quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def per_delivery(seconds: float, delivered: float) -> float:
    """Microseconds of CPU per notification delivered."""
    return seconds / delivered * 1e6


def run() -> list[dict[str, Any]]:
    quiet_logs()
    if not postgres_available():
        skipped = "gateway (skipped: no PostgreSQL; see CHAINWATCH_TEST_PG)"
        return [{"name": skipped, "chainwatch": None, "baseline": None, "unit": "", "ratio": None}]
    local = asyncio.run(measure(gateway=False))
    remote = asyncio.run(measure(gateway=True))
    load = f"{PROCESSES * CONNECTIONS:,} subscribers, {RATE:,} logs/s"
    serving_in_process = local.loop_cpu["run"] - remote.loop_cpu["ingest"]
    cpu = ", ".join(
        f"{name} {phase.cpu[name]:.2f} (event loop {phase.loop_cpu[name]:.2f})"
        for phase in (remote, local)
        for name in phase.cpu
    )
    print(
        f"CPU seconds: {cpu}; notifications: gateway {remote.delivered:,.0f},"
        f" run {local.delivered:,.0f}",
        file=sys.stderr,
    )
    return [
        row(
            f"gateway alert latency p50, PostgreSQL ({load}; vs run)",
            quantile(remote.send, 50),
            quantile(local.send, 50),
            "ms",
        ),
        row(
            f"gateway alert latency p99, PostgreSQL ({load}; vs run)",
            quantile(remote.send, 99),
            quantile(local.send, 99),
            "ms",
        ),
        row(
            "gateway alert latency p99 from the commit (vs run)",
            quantile(remote.commit, 99),
            quantile(local.commit, 99),
            "ms",
        ),
        row(
            "gateway CPU per delivery: serve vs run's event loop less ingest's",
            per_delivery(remote.cpu["serve"], remote.delivered),
            per_delivery(serving_in_process, local.delivered),
            "µs",
        ),
        row(
            "gateway CPU per delivery, serve's event loop only (vs the same)",
            per_delivery(remote.loop_cpu["serve"], remote.delivered),
            per_delivery(serving_in_process, local.delivered),
            "µs",
        ),
        row(
            "CPU per delivery, all roles: ingest + serve vs run",
            per_delivery(remote.cpu["serve"] + remote.cpu["ingest"], remote.delivered),
            per_delivery(local.cpu["run"], local.delivered),
            "µs",
        ),
        row(
            "alert deliveries in the gateway run (vs run)",
            len(remote.send),
            len(local.send),
            "alerts",
        ),
    ]
