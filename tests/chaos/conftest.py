"""Fixtures of the chaos suite: a real anvil node and the fault proxy in front of it.

``CHAINWATCH_CHAOS=long`` (set by ``make chaos``) runs the scenarios longer; the tests marked
``chaos_long`` only run then, so that the default run stays short.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.faultproxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
LONG = os.environ.get("CHAINWATCH_CHAOS") == "long"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: fault-injection scenarios against a real anvil")
    config.addinivalue_line("markers", "chaos_long: run only with CHAINWATCH_CHAOS=long")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LONG:
        return
    skip = pytest.mark.skip(reason="long chaos scenario: set CHAINWATCH_CHAOS=long")
    for item in items:
        if "chaos_long" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AnvilProcess:
    """A bare anvil on a free port, for the proxy's own tests."""

    def __init__(self) -> None:
        self.port = free_port()
        self.http_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(ANVIL), "--port", str(self.port), "--silent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.rpc("eth_chainId", [])
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("anvil did not answer eth_chainId within 30 s") from None
                time.sleep(0.05)

    def rpc(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        request = urllib.request.Request(
            self.http_url, body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def bare_anvil() -> Iterator[AnvilProcess]:
    node = AnvilProcess()
    try:
        yield node
    finally:
        node.close()


@pytest.fixture
def proxy(bare_anvil: AnvilProcess) -> Iterator[FaultProxy]:
    with FaultProxy(bare_anvil.port) as fault_proxy:
        yield fault_proxy
