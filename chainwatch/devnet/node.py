"""The anvil node: find its executable, start it on a free loopback port, talk JSON-RPC to it."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.types import RPCEndpoint, TxParams

from chainwatch.errors import ChainwatchError, ProviderUnreachable, RpcErrorResponse

DEFAULT_CHAIN_ID = 31337
# The source tree: the folder holding the chainwatch package, contracts/ and node_modules/.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
_START_ATTEMPTS = 5
_POLL_INTERVAL = 0.02


def _npm_platform() -> str:
    """The suffix of the ``@foundry-rs/anvil-<os>-<arch>`` npm package built for this machine."""
    system = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform, "")
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return f"{system}-{arch}"


def find_anvil() -> str:
    """The anvil executable: ``$CHAINWATCH_ANVIL``, else the one ``make install`` put in
    ``node_modules`` (under the repository root or the current folder), else ``anvil`` on PATH.

    Raises ChainwatchError when there is none.
    """
    explicit = os.environ.get("CHAINWATCH_ANVIL")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ChainwatchError(f"CHAINWATCH_ANVIL={explicit} is not an executable file")
        return explicit
    exe = "anvil.exe" if sys.platform == "win32" else "anvil"
    package = f"anvil-{_npm_platform()}"
    for root in (SOURCE_ROOT, Path.cwd()):
        candidate = root / "node_modules" / "@foundry-rs" / package / "bin" / exe
        if os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    raise ChainwatchError("anvil not found: run `make install` (or set CHAINWATCH_ANVIL)")


def _free_port() -> int:
    """A loopback port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _PortTaken(ChainwatchError):
    """Anvil could not listen on the port we picked: someone took it in between."""


class Anvil:
    """An anvil node on ``127.0.0.1``, started on construction and stopped by :meth:`stop`.

    ::

        with Anvil() as node:                       # automine: one block per transaction
            node.w3.eth.block_number
        with Anvil(block_time=0.5) as node:         # interval mining
            node.rpc("anvil_mine", [3])

    ``port`` None picks a free port (anvil has no ``--port 0`` that reports back while
    ``--silent``): we bind port 0 to learn a free one, release it and hand it to anvil, and start
    again on another port if anvil finds it taken. The node is ready when it answers
    ``eth_chainId`` with ``chain_id``. ``extra_args`` go to anvil unchanged (``--no-mining``,
    ``--hardfork prague``, ...).
    """

    def __init__(
        self,
        *,
        block_time: float | None = None,
        chain_id: int = DEFAULT_CHAIN_ID,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 30.0,
    ) -> None:
        self.block_time = block_time
        self.chain_id = chain_id
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self.executable = find_anvil()
        self._fixed_port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self.port = 0
        self._start()
        self.w3 = Web3(
            Web3.HTTPProvider(
                self.http_url,
                request_kwargs={"timeout": 60},
                # A local node that does not answer is a failure to report, not to retry.
                exception_retry_configuration=None,
            )
        )
        try:
            self.accounts: tuple[ChecksumAddress, ...] = tuple(self.w3.eth.accounts)
        except BaseException:
            self.stop()
            raise

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _command(self, port: int) -> list[str]:
        command = [self.executable, "--host", "127.0.0.1", "--port", str(port), "--silent"]
        command += ["--chain-id", str(self.chain_id)]
        if self.block_time is not None:
            command += ["--block-time", str(self.block_time)]
        return command + list(self.extra_args)

    def _start(self) -> None:
        for _ in range(1 if self._fixed_port is not None else _START_ATTEMPTS):
            port = self._fixed_port if self._fixed_port is not None else _free_port()
            try:
                self._launch(port)
                return
            except _PortTaken:
                continue
        raise ChainwatchError(f"anvil: no free port after {_START_ATTEMPTS} attempts")

    def _launch(self, port: int) -> None:
        # Kept open while anvil runs (its error output, read if it exits), so no `with`.
        stderr = tempfile.TemporaryFile()  # noqa: SIM115
        # A session of its own: Ctrl-C at the terminal reaches chainwatch, which then stops
        # anvil in order, instead of killing the chain under a demo that is still shutting down.
        process = subprocess.Popen(
            self._command(port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        try:
            while True:
                if process.poll() is not None:
                    stderr.seek(0)
                    message = stderr.read().decode(errors="replace").strip()
                    if "in use" in message and self._fixed_port is None:
                        raise _PortTaken
                    last = message.splitlines()[-1] if message else "no message"
                    raise ChainwatchError(f"anvil exited with code {process.returncode}: {last}")
                # Another node answering with another chain id took the port first: ours
                # fails to bind and exits, which the check above turns into _PortTaken.
                if _probe_chain_id(port) == self.chain_id and process.poll() is None:
                    break
                if time.monotonic() > deadline:
                    raise ChainwatchError(
                        f"anvil did not answer on port {port} within {self.start_timeout:g}s"
                    )
                time.sleep(_POLL_INTERVAL)
        except BaseException:
            _end(process)
            stderr.close()
            raise
        self._process, self._stderr, self.port = process, stderr, port

    def stop(self) -> None:
        """Terminate anvil (SIGTERM, then SIGKILL after 5 s). Safe to call twice."""
        if self._process is not None:
            _end(self._process)
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def kill(self) -> None:
        """End anvil at once (SIGKILL), as a crashing node would; connections just drop."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self.stop()

    def restart(self) -> None:
        """Stop, then start a new chain on the same port: same URLs, fresh state."""
        self.stop()
        fixed = self._fixed_port
        self._fixed_port = self.port
        try:
            self._start()
        finally:
            self._fixed_port = fixed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Anvil {self.http_url} chain_id={self.chain_id} {state}>"

    # --- raw JSON-RPC ---------------------------------------------------------------------------

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Send one JSON-RPC request and return its ``result``.

        For the methods web3 has no call for: ``evm_snapshot`` / ``evm_revert [id]``,
        ``evm_mine``, ``anvil_mine [blocks]``, ``anvil_reorg [depth, [[tx, block_offset], ...]]``,
        ``anvil_setBlockTimestampInterval``, ... Raises RpcErrorResponse for an error answer and
        ProviderUnreachable when anvil does not answer.
        """
        try:
            response = self.w3.provider.make_request(RPCEndpoint(method), list(params))
        except OSError as exc:  # requests' ConnectionError is an OSError
            raise ProviderUnreachable(f"anvil at {self.http_url} did not answer {method}") from exc
        error = response.get("error")
        if error is not None:
            if isinstance(error, dict):
                raise RpcErrorResponse(
                    int(error.get("code", 0)), str(error.get("message", "")), error.get("data")
                )
            raise RpcErrorResponse(0, str(error))
        return response.get("result")

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks now (``anvil_mine``)."""
        self.rpc("anvil_mine", [blocks])

    def reorg(self, depth: int, transactions: Sequence[tuple[TxParams, int]] = ()) -> None:
        """Replace the last ``depth`` blocks by ``depth`` new ones (``anvil_reorg``).

        Each ``(tx, offset)`` puts transaction ``tx`` (``from``, ``to``, ``data``, ... as for
        ``eth_sendTransaction``; anvil signs for its dev accounts) into the ``offset``-th new
        block, 0 being the first. Transactions of the replaced blocks that are not listed are
        dropped. anvil announces the new blocks to ``newHeads`` subscribers (same numbers, new
        hashes) but sends no ``removed: true`` logs for the dropped ones: a reorg shows only in
        the heads.
        """
        txs = [[_rpc_tx(tx), offset] for tx, offset in transactions]
        self.rpc("anvil_reorg", [depth, txs])


def _probe_chain_id(port: int) -> int | None:
    """The chain id a node on ``port`` reports, or None if nothing answers there yet."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(json.loads(response.read())["result"], 16)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _rpc_tx(tx: TxParams) -> dict[str, Any]:
    """A transaction in JSON-RPC form: integers as hex quantities, bytes as 0x-hex."""
    out: dict[str, Any] = {}
    for key, value in tx.items():
        if isinstance(value, bool):
            out[key] = value
        elif isinstance(value, int):
            out[key] = hex(value)
        elif isinstance(value, bytes | bytearray):
            out[key] = "0x" + bytes(value).hex()
        else:
            out[key] = value
    return out
