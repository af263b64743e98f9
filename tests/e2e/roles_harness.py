"""What tests/e2e/test_roles.py drives: chainwatch's roles as subprocesses (ingest candidates and
gateways) with their ``/healthz`` and ``/metrics``, a PostgreSQL schema of the test's own,
transfers sent from a thread, and subscribers that resume with their cursor on another gateway
whenever a connection ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from prometheus_client.parser import text_string_to_metric_families
from web3 import Web3
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from chainwatch.devnet import SampleContracts, Traffic, wait_mined
from tests.helpers import CHAINWATCH

Key = tuple[str, int]  # (block hash, log index)


# --- the processes ------------------------------------------------------------------------------


class Role:
    """One ``chainwatch ingest`` or ``chainwatch serve`` subprocess, its output in a log file."""

    def __init__(self, name: str, command: str, config: Path, port: int, log_dir: Path) -> None:
        self.name = name
        self.port = port  # --http-port of a candidate, --port of a gateway
        self.log_path = log_dir / f"{name}.log"
        option = "--http-port" if command == "ingest" else "--port"
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                [CHAINWATCH, command, "--config", str(config), option, str(port)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def __repr__(self) -> str:
        return f"<{self.name} pid {self.proc.pid}>"

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def log_text(self, start: int = 0) -> str:
        return self.log_path.read_text(errors="replace")[start:]

    def log_tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} ---\n{self.log_text()[-chars:]}"

    def alive(self) -> None:
        if not self.running:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}\n{self.log_tail()}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and the exit code (SIGKILL after ``timeout``, which fails)."""
        if self.running:
            self.send(signal.SIGCONT)  # a stopped process handles nothing until continued
            self.send(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout} s") from None

    def http(self, path: str) -> tuple[int, bytes] | None:
        """GET ``path`` on the process's port: (status, body), or None if nothing answers."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:  # 503 while unhealthy: its body still counts
            return exc.code, exc.read()
        except (OSError, TimeoutError):
            return None

    def healthz(self) -> dict[str, Any] | None:
        answer = self.http("/healthz")
        return None if answer is None else json.loads(answer[1])

    def leads(self, chain: str) -> bool | None:
        """What a candidate's /healthz says of ``chain`` (None: it does not answer)."""
        health = self.healthz()
        return None if health is None else bool(health["chains"][chain]["leader"])

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the Prometheus text at /metrics (None: no answer or no such sample)."""
        answer = self.http("/metrics")
        if answer is None:
            return None
        for family in text_string_to_metric_families(answer[1].decode()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    def accepts(self) -> bool:
        """A gateway's port takes TCP connections."""
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False


# --- transfers ----------------------------------------------------------------------------------


class TrafficThread:
    """:meth:`Traffic.step` every ``interval`` seconds from a thread, until closed; pausable."""

    def __init__(
        self, http_url: str, sample: SampleContracts, wallet: str, *, seed: int, interval: float
    ) -> None:
        # A Web3 of its own: the test's thread talks to anvil at the same time.
        self.w3 = Web3(Web3.HTTPProvider(http_url))
        self.traffic = Traffic(self.w3, sample, wallets=[wallet], seed=seed)
        self.interval = interval
        self.sent = 0
        self.last: HexBytes | None = None
        self.errors: list[str] = []
        self._flowing = threading.Event()
        self._closing = threading.Event()
        self._step = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> TrafficThread:
        self._flowing.set()
        self._thread.start()
        return self

    def pause(self) -> None:
        """Stop sending and wait until what was sent is mined."""
        self._flowing.clear()
        with self._step:
            last = self.last
        if last is not None:
            wait_mined(self.w3, [last])

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closing.set()
        self._flowing.set()
        self._thread.join(timeout=30)
        self.pause()

    def _run(self) -> None:
        while not self._closing.is_set():
            if not self._flowing.wait(0.1):
                continue
            with self._step:
                if not self._flowing.is_set() or self._closing.is_set():
                    continue
                try:
                    self.last = self.traffic.step()
                    self.sent += 1
                except Exception as exc:  # shown by the test, which then fails
                    self.errors.append(repr(exc))
                    return
            time.sleep(self.interval)


# --- subscribers --------------------------------------------------------------------------------


class Subscriber:
    """A ``chainwatch_subscribe`` client that remembers the last cursor it saw and, whenever its
    connection ends (the gateway closing it, or itself every ``drop_every`` notifications, as a
    network would), resumes with ``since`` = that cursor on the other gateway.

    It applies statuses as a dashboard would (the last status of each event id wins), and keeps
    what would betray a gap or a repeat: every cursor must be greater than the one before it.
    """

    def __init__(
        self, name: str, urls: list[str], first: int, finality: str, drop_every: int = 0
    ) -> None:
        self.name = name
        self.urls = urls
        self.at = first  # index in urls of the gateway it uses (or will try next)
        self.finality = finality
        self.drop_every = drop_every
        self.events: dict[int, tuple[Key, str]] = {}  # id -> (block hash, log index), status
        self.cursor = 0
        self.received = 0
        self.connected: str | None = None  # the gateway it is subscribed at now
        self.connections: list[tuple[str, int]] = []  # (gateway, since) of each subscription
        self.closes: list[tuple[str, int | None]] = []  # (gateway, close code received)
        # Notifications whose cursor is not beyond the one before: (cursor, previous cursor,
        # connection number, notification number in that connection, event id, status).
        self.repeats: list[tuple[int, int, int, int, int, str]] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def view(self) -> dict[int, Key]:
        """The events it shows now: id -> key, removed ones dropped."""
        with self.lock:
            return {i: key for i, (key, status) in self.events.items() if status != "removed"}

    def summary(self) -> str:
        with self.lock:
            return (
                f"{self.name} ({self.finality}): {len(self.connections)} connections, "
                f"{self.received} notifications, cursor {self.cursor}, "
                f"closes {self.closes[-4:]}, errors {self.errors[-3:]}"
            )

    async def run(self, closing: threading.Event) -> None:
        while not closing.is_set():
            url = self.urls[self.at]
            try:
                await self._session(url, closing)
            except ConnectionClosed as exc:
                with self.lock:
                    self.closes.append((url, exc.rcvd.code if exc.rcvd is not None else None))
            except (OSError, WebSocketException, TimeoutError) as exc:
                self.errors.append(f"{url}: {exc!r}")  # a gateway down: the other one
                await asyncio.sleep(0.2)
            finally:
                with self.lock:
                    self.connected = None
            self.at = 1 - self.at

    async def _session(self, url: str, closing: threading.Event) -> None:
        async with connect(url, open_timeout=5, close_timeout=2) as ws:
            with self.lock:
                since = self.cursor
            flt = {"finality": self.finality, "since": since}
            await ws.send(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chainwatch_subscribe",
                            "params": [flt]})
            )  # fmt: skip
            with self.lock:
                self.connected = url
                self.connections.append((url, since))
            seen_here = 0
            while not closing.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue  # look at the closing flag now and then
                message = json.loads(text)
                if message.get("id") == 1 and "error" in message:
                    self.errors.append(f"{url}: subscribe refused: {message['error']}")
                    await asyncio.sleep(0.5)
                    return
                if message.get("method") != "eth_subscription":
                    continue
                seen_here += 1
                self._apply(message["params"]["result"], seen_here)
                if self.drop_every and seen_here % self.drop_every == 0:
                    with self.lock:
                        self.closes.append((url, None))
                    ws.transport.abort()  # no closing handshake, as a network drops
                    return

    def _apply(self, result: dict[str, Any], nth: int) -> None:
        with self.lock:
            cursor = int(result["cursor"])
            if cursor <= self.cursor:
                self.repeats.append(
                    (cursor, self.cursor, len(self.connections), nth, int(result["id"]),
                     str(result["status"]))
                )  # fmt: skip
            self.cursor = max(self.cursor, cursor)
            self.received += 1
            key = (str(result["block_hash"]).lower(), int(result["log_index"]))
            self.events[int(result["id"])] = (key, str(result["status"]))


class Subscribers:
    """Subscribers run by one event loop in a thread of their own."""

    def __init__(self, subscribers: list[Subscriber]) -> None:
        self.all = subscribers
        self.failure: BaseException | None = None
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._main, name="subscribers", daemon=True)

    def start(self) -> Subscribers:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=15)

    def _main(self) -> None:
        async def main() -> None:
            async with asyncio.TaskGroup() as tasks:
                for subscriber in self.all:
                    tasks.create_task(subscriber.run(self._closing))

        try:
            asyncio.run(main())
        except BaseException as exc:  # shown by the test that finds a subscriber behind
            self.failure = exc
            raise
