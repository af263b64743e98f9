"""A local chain for the demo, the tests and the benchmarks: anvil, the test contracts, traffic.

Synchronous and simple on purpose: this module drives a node (web3.py over HTTP), it is not part
of the daemon's data path.

- :func:`find_anvil` and :class:`Anvil` start an anvil node on a free loopback port.
- :func:`deploy` and :func:`deploy_sample` deploy the contracts built from ``contracts/src`` by
  ``make contracts`` (``contracts/build/<Name>.json``).
- :class:`Traffic` sends seeded random transactions to the sample contracts. Every transaction
  it sends emits exactly one log, so ``n`` transactions make ``n`` logs.
- :func:`write_devnet_config` writes a chainwatch config that watches the sample contracts.

On a fresh anvil (default mnemonic), :func:`deploy_sample` run first always yields the same
addresses, because a contract's address depends only on its deployer and the deployer's nonce;
``config/devnet.toml`` lists them (regenerate it with ``python -m chainwatch.devnet``).
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from eth_abi.abi import encode as abi_encode
from eth_typing import ChecksumAddress
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TimeExhausted
from web3.types import RPCEndpoint, TxParams, TxReceipt

from chainwatch.errors import ChainwatchError, ProviderUnreachable, RpcErrorResponse

DEFAULT_CHAIN_ID = 31337
_PACKAGE_DIR = Path(__file__).resolve().parent
_START_ATTEMPTS = 5
_POLL_INTERVAL = 0.02


# --- finding and running anvil ----------------------------------------------------------------


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
    for root in (_PACKAGE_DIR.parent, Path.cwd()):
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


class _PortTaken(Exception):
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


# --- contracts --------------------------------------------------------------------------------


def contracts_dir() -> Path:
    """The repository's ``contracts/`` folder, next to the ``chainwatch`` package."""
    folder = _PACKAGE_DIR.parent / "contracts"
    if not folder.is_dir():
        raise ChainwatchError(
            f"{folder} not found: the devnet needs chainwatch's source tree, not an installed copy"
        )
    return folder


def abi_path(name: str) -> Path:
    """``contracts/abi/<name>.json``: a standard ABI (ERC20, ...) or a test contract's."""
    return contracts_dir() / "abi" / f"{name}.json"


def load_artifact(name: str) -> dict[str, Any]:
    """``contracts/build/<name>.json``: ``{"contractName", "abi", "bytecode"}``."""
    path = contracts_dir() / "build" / f"{name}.json"
    try:
        artifact: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChainwatchError(f"{path} not found: run `make contracts`") from None
    except (OSError, ValueError) as exc:
        raise ChainwatchError(f"{path}: cannot read: {exc}") from None
    return artifact


@dataclass(frozen=True, slots=True)
class Deployed:
    """A contract deployed by :func:`deploy`."""

    name: str  # the contract's name in contracts/src, e.g. "TestToken"
    address: ChecksumAddress
    contract: Contract
    tx_hash: HexBytes
    block_number: int


def deploy(
    w3: Web3,
    name: str,
    *args: Any,
    sender: ChecksumAddress | str | None = None,
    timeout: float = 60.0,
) -> Deployed:
    """Deploy ``contracts/build/<name>.json`` with constructor ``args`` and wait until mined.

    ``sender`` defaults to the node's first account, which must be unlocked (anvil's are).
    """
    tx_hash, abi = _send_deployment(w3, name, args, sender)
    return _deployed(w3, name, tx_hash, abi, timeout)


def _send_deployment(
    w3: Web3, name: str, args: Sequence[Any], sender: ChecksumAddress | str | None
) -> tuple[HexBytes, list[dict[str, Any]]]:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    account = Web3.to_checksum_address(sender) if sender is not None else w3.eth.accounts[0]
    tx_hash = factory.constructor(*args).transact({"from": account})
    return tx_hash, artifact["abi"]


def _deployed(
    w3: Web3, name: str, tx_hash: HexBytes, abi: list[dict[str, Any]], timeout: float
) -> Deployed:
    receipt = wait_for_receipt(w3, tx_hash, timeout)
    address = receipt["contractAddress"]
    if address is None:
        raise ChainwatchError(
            f"deploying {name}: transaction {tx_hash.to_0x_hex()} made no contract"
        )
    return Deployed(
        name=name,
        address=address,
        contract=w3.eth.contract(address=address, abi=abi),
        tx_hash=tx_hash,
        block_number=receipt["blockNumber"],
    )


def wait_for_receipt(w3: Web3, tx_hash: HexBytes, timeout: float = 60.0) -> TxReceipt:
    """The receipt of a mined transaction; raises ChainwatchError if it reverted or timed out."""
    try:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.02)
    except TimeExhausted:
        raise ChainwatchError(
            f"transaction {tx_hash.to_0x_hex()} not mined after {timeout:g}s"
        ) from None
    if receipt["status"] != 1:
        raise ChainwatchError(f"transaction {tx_hash.to_0x_hex()} reverted")
    return receipt


def wait_mined(w3: Web3, tx_hashes: Iterable[HexBytes], timeout: float = 60.0) -> int:
    """Wait until every transaction of ``tx_hashes`` is mined; the highest block they are in.

    Raises ChainwatchError if one reverted or is not mined within ``timeout`` seconds. Reads raw
    receipts: web3's receipt formatting costs more than anvil's answer.
    """
    deadline = time.monotonic() + timeout
    highest = -1
    for tx_hash in tx_hashes:
        while True:
            response = w3.provider.make_request(
                RPCEndpoint("eth_getTransactionReceipt"), [tx_hash.to_0x_hex()]
            )
            if "error" in response:
                raise ChainwatchError(f"eth_getTransactionReceipt: {response['error']}")
            receipt = response.get("result")
            if receipt is not None:
                break
            if time.monotonic() > deadline:
                raise ChainwatchError(
                    f"transaction {tx_hash.to_0x_hex()} not mined after {timeout:g}s"
                )
            time.sleep(_POLL_INTERVAL)
        if int(receipt["status"], 16) != 1:
            raise ChainwatchError(f"transaction {tx_hash.to_0x_hex()} reverted")
        highest = max(highest, int(receipt["blockNumber"], 16))
    return highest


@dataclass(frozen=True, slots=True)
class SampleContracts:
    """The contracts :func:`deploy_sample` deploys, in deployment order."""

    token: Deployed  # TestToken "Test Token" (TST), 18 decimals
    usdc: Deployed  # TestToken "USD Coin" (USDC), 6 decimals
    nft: Deployed  # TestNFT
    multi_token: Deployed  # TestMultiToken
    zoo: Deployed  # EventZoo

    def watched(self) -> tuple[tuple[str, Deployed, str], ...]:
        """``(config name, contract, ABI name)`` for each: the standard ABI for tokens."""
        return (
            ("TST", self.token, "ERC20"),
            ("USDC", self.usdc, "ERC20"),
            ("TestNFT", self.nft, "ERC721"),
            ("TestMultiToken", self.multi_token, "ERC1155"),
            ("EventZoo", self.zoo, "EventZoo"),
        )

    @property
    def addresses(self) -> dict[str, ChecksumAddress]:
        """Config name -> address."""
        return {label: deployed.address for label, deployed, _ in self.watched()}


def deploy_sample(
    w3: Web3, *, sender: ChecksumAddress | str | None = None, timeout: float = 60.0
) -> SampleContracts:
    """Deploy the five sample contracts; all are sent before waiting, so this takes one block
    when the node mines on an interval."""
    plan: list[tuple[str, tuple[Any, ...]]] = [
        ("TestToken", ("Test Token", "TST", 18)),
        ("TestToken", ("USD Coin", "USDC", 6)),
        ("TestNFT", ()),
        ("TestMultiToken", ()),
        ("EventZoo", ()),
    ]
    sent = [(name, *_send_deployment(w3, name, args, sender)) for name, args in plan]
    token, usdc, nft, multi_token, zoo = (
        _deployed(w3, name, tx_hash, abi, timeout) for name, tx_hash, abi in sent
    )
    return SampleContracts(token, usdc, nft, multi_token, zoo)


# --- traffic ----------------------------------------------------------------------------------

# Gas limits per kind of transaction, about twice the most the random values make them use:
# explicit limits spare an eth_estimateGas round trip per transaction.
_GAS_TOKEN = 120_000
_GAS_MULTI = 200_000
_GAS_ZOO = 200_000
_WORDS = ("alpha", "beta", "gamma", "zoo", "chainwatch", "événement", "🦊", "")
_MULTI_IDS = (1, 2, 3, 4, 5)
# How many Traffic streams were drawn for (head block hash, seed): see Traffic.
_streams: Counter[tuple[bytes, int]] = Counter()


class Traffic:
    """Seeded random transactions to the sample contracts, one log each.

    ``step()`` sends one transaction; each round of ``len(KINDS)`` steps does every kind once in
    a shuffled order. A kind that needs something not yet held (a token balance, an NFT) mints
    it instead, so the first round may lack some transfers; the rounds after it have them all.
    Senders are the first five dev accounts (unlocked: no signing); recipients are those and
    ``wallets``.

    Each instance only spends what it minted itself, so several instances (or one after
    another) can share the sample contracts without a transaction reverting; a reorg or revert
    that drops its transactions leaves it wrong, so make a new one then. The random stream
    depends on ``seed`` and on the chain's head at construction: on a fresh chain after
    :func:`deploy_sample`, the same seed sends the same transactions. A second instance made
    on the same head with the same seed draws another stream, so their NFT ids differ.

    Transactions are sent without waiting for each receipt (anvil answers
    ``eth_sendTransaction`` before it has mined, even when automining); ``run`` waits for them
    all at the end. ``counts`` tells how many of each kind were sent.
    """

    KINDS = (
        "erc20_mint",
        "erc20_transfer_tst",
        "erc20_transfer_usdc",
        "erc20_approve",
        "erc721_mint",
        "erc721_transfer",
        "erc721_approve",
        "erc1155_mint",
        "erc1155_transfer_single",
        "erc1155_transfer_batch",
        "zoo_dynamic",
        "zoo_arrays",
        "zoo_nested",
        "zoo_signed",
        "zoo_anon",
    )

    def __init__(
        self,
        w3: Web3,
        sample: SampleContracts,
        wallets: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        # No middleware: the default ValidationMiddleware asks eth_chainId before every
        # eth_sendTransaction, which would double the round trips.
        self._w3 = Web3(w3.provider, middleware=[])
        self.sample = sample
        accounts = tuple(w3.eth.accounts)
        self.senders: tuple[ChecksumAddress, ...] = accounts[:5]
        extra = [Web3.to_checksum_address(a) for a in wallets or ()]
        self.recipients: tuple[ChecksumAddress, ...] = self.senders + tuple(
            a for a in dict.fromkeys(extra) if a not in self.senders
        )
        head = w3.eth.get_block("latest")
        stream = (head["hash"], seed)
        self._rng = random.Random(f"{seed}/{head['number']}/{_streams[stream]}")
        _streams[stream] += 1
        self._schedule: list[str] = []
        self.counts: Counter[str] = Counter()
        # What this instance minted and where it went: the only balances it spends.
        self._erc20: dict[tuple[str, str], int] = {}  # (token address, holder) -> amount
        self._nfts: dict[int, ChecksumAddress] = {}  # token id -> owner
        self._multi: dict[tuple[str, int], int] = {}  # (holder, id) -> amount
        self._functions: dict[tuple[str, str], tuple[bytes, list[str]]] = {}
        self._actions: dict[str, Callable[[], HexBytes]] = {
            kind: getattr(self, f"_{kind}") for kind in self.KINDS
        }

    @staticmethod
    def forget_streams() -> None:
        """Forget which streams were drawn: for a chain started afresh, whose head can be the
        very block (same hash) an earlier chain had, so that the same seed draws the same
        stream again."""
        _streams.clear()

    def run(self, n: int, *, wait: bool = True) -> list[HexBytes]:
        """Send ``n`` transactions; their hashes, in order.

        With ``wait`` (the default), return once all are mined (see :func:`wait_mined`), so
        that their logs are in the chain; :meth:`step` never waits.
        """
        hashes = [self.step() for _ in range(n)]
        if wait:
            wait_mined(self._w3, hashes)
        return hashes

    def step(self) -> HexBytes:
        """Send one transaction, the next kind of the shuffled round; its hash."""
        if not self._schedule:
            self._schedule = list(self.KINDS)
            self._rng.shuffle(self._schedule)
        return self._actions[self._schedule.pop()]()

    # --- sending ----------------------------------------------------------------------------

    def _send(
        self, kind: str, sender: str, deployed: Deployed, fn: str, args: Sequence[Any], gas: int
    ) -> HexBytes:
        key = (deployed.address, fn)
        if key not in self._functions:
            (entry,) = (e for e in deployed.contract.abi if e.get("name") == fn)
            self._functions[key] = (
                function_abi_to_4byte_selector(entry),
                get_abi_input_types(entry),
            )
        selector, types = self._functions[key]
        tx: TxParams = {
            "from": Web3.to_checksum_address(sender),
            "to": deployed.address,
            # eth_abi directly: web3's encode_abi costs more than the round trip to anvil.
            "data": HexBytes(selector + abi_encode(types, args)),
            "gas": gas,
        }
        tx_hash = self._w3.eth.send_transaction(tx)
        self.counts[kind] += 1
        return tx_hash

    def _pick(self, options: Sequence[Any]) -> Any:
        return options[self._rng.randrange(len(options))]

    def _recipient(self, not_: str | None = None) -> ChecksumAddress:
        choices = [a for a in self.recipients if a != not_]
        return self._pick(choices)  # type: ignore[no-any-return]

    # --- ERC-20 -----------------------------------------------------------------------------

    def _erc20_mint(self, token: Deployed | None = None) -> HexBytes:
        token = token or self._pick((self.sample.token, self.sample.usdc))
        to = self._pick(self.senders)
        decimals = 18 if token is self.sample.token else 6
        amount = self._rng.randint(1, 1_000_000) * 10**decimals
        key = (token.address, to)
        self._erc20[key] = self._erc20.get(key, 0) + amount
        return self._send("erc20_mint", to, token, "mint", [to, amount], _GAS_TOKEN)

    def _erc20_transfer(self, token: Deployed, kind: str) -> HexBytes:
        holders = [s for s in self.senders if self._erc20.get((token.address, s), 0) > 0]
        if not holders:
            return self._erc20_mint(token)
        sender = self._pick(holders)
        to = self._recipient(not_=sender)
        amount = self._rng.randint(1, self._erc20[(token.address, sender)])
        self._erc20[(token.address, sender)] -= amount
        self._erc20[(token.address, to)] = self._erc20.get((token.address, to), 0) + amount
        return self._send(kind, sender, token, "transfer", [to, amount], _GAS_TOKEN)

    def _erc20_transfer_tst(self) -> HexBytes:
        return self._erc20_transfer(self.sample.token, "erc20_transfer_tst")

    def _erc20_transfer_usdc(self) -> HexBytes:
        return self._erc20_transfer(self.sample.usdc, "erc20_transfer_usdc")

    def _erc20_approve(self) -> HexBytes:
        token = self._pick((self.sample.token, self.sample.usdc))
        owner = self._pick(self.senders)
        spender = self._recipient(not_=owner)
        amount = self._pick((0, self._rng.getrandbits(64), 2**256 - 1))
        return self._send("erc20_approve", owner, token, "approve", [spender, amount], _GAS_TOKEN)

    # --- ERC-721 ----------------------------------------------------------------------------

    def _erc721_mint(self) -> HexBytes:
        to = self._pick(self.senders)
        token_id = self._rng.getrandbits(64)
        while token_id in self._nfts:
            token_id = self._rng.getrandbits(64)
        self._nfts[token_id] = to
        return self._send("erc721_mint", to, self.sample.nft, "mint", [to, token_id], _GAS_TOKEN)

    def _held_nft(self) -> tuple[int, ChecksumAddress] | None:
        held = sorted((i, o) for i, o in self._nfts.items() if o in self.senders)
        return self._pick(held) if held else None

    def _erc721_transfer(self) -> HexBytes:
        held = self._held_nft()
        if held is None:
            return self._erc721_mint()
        token_id, owner = held
        to = self._recipient(not_=owner)
        self._nfts[token_id] = to
        args = [owner, to, token_id]
        return self._send(
            "erc721_transfer", owner, self.sample.nft, "transferFrom", args, _GAS_TOKEN
        )

    def _erc721_approve(self) -> HexBytes:
        held = self._held_nft()
        if held is None:
            return self._erc721_mint()
        token_id, owner = held
        approved = self._recipient(not_=owner)
        args = [approved, token_id]
        return self._send("erc721_approve", owner, self.sample.nft, "approve", args, _GAS_TOKEN)

    # --- ERC-1155 ---------------------------------------------------------------------------

    def _erc1155_mint(self) -> HexBytes:
        to = self._pick(self.senders)
        multi = self.sample.multi_token
        if self._rng.random() < 0.5:
            token_id = self._pick(_MULTI_IDS)
            amount = self._rng.randint(1, 1000)
            self._multi[(to, token_id)] = self._multi.get((to, token_id), 0) + amount
            return self._send("erc1155_mint", to, multi, "mint", [to, token_id, amount], _GAS_MULTI)
        ids = sorted(self._rng.sample(_MULTI_IDS, self._rng.randint(2, 3)))
        amounts = [self._rng.randint(1, 1000) for _ in ids]
        for token_id, amount in zip(ids, amounts, strict=True):
            self._multi[(to, token_id)] = self._multi.get((to, token_id), 0) + amount
        args = [to, ids, amounts]
        return self._send("erc1155_mint", to, multi, "mintBatch", args, _GAS_MULTI)

    def _multi_holdings(self) -> dict[ChecksumAddress, list[int]]:
        holdings: dict[ChecksumAddress, list[int]] = {}
        for (holder, token_id), amount in sorted(self._multi.items()):
            if amount > 0 and holder in self.senders:
                holdings.setdefault(Web3.to_checksum_address(holder), []).append(token_id)
        return holdings

    def _move_multi(self, sender: str, to: str, token_id: int) -> int:
        amount = self._rng.randint(1, self._multi[(sender, token_id)])
        self._multi[(sender, token_id)] -= amount
        self._multi[(to, token_id)] = self._multi.get((to, token_id), 0) + amount
        return amount

    def _erc1155_transfer_single(self) -> HexBytes:
        holdings = self._multi_holdings()
        if not holdings:
            return self._erc1155_mint()
        sender = self._pick(sorted(holdings))
        token_id = self._pick(holdings[sender])
        to = self._recipient(not_=sender)
        amount = self._move_multi(sender, to, token_id)
        args = [sender, to, token_id, amount, self._rng.randbytes(self._rng.randint(0, 8))]
        return self._send(
            "erc1155_transfer_single",
            sender,
            self.sample.multi_token,
            "safeTransferFrom",
            args,
            _GAS_MULTI,
        )

    def _erc1155_transfer_batch(self) -> HexBytes:
        holdings = self._multi_holdings()
        if not holdings:
            return self._erc1155_mint()
        sender = self._pick(sorted(holdings))
        held = holdings[sender]
        ids = sorted(self._rng.sample(held, self._rng.randint(1, min(3, len(held)))))
        to = self._recipient(not_=sender)
        amounts = [self._move_multi(sender, to, token_id) for token_id in ids]
        args = [sender, to, ids, amounts, b""]
        return self._send(
            "erc1155_transfer_batch",
            sender,
            self.sample.multi_token,
            "safeBatchTransferFrom",
            args,
            _GAS_MULTI,
        )

    # --- EventZoo ---------------------------------------------------------------------------

    def _text(self) -> str:
        return " ".join(self._pick(_WORDS) for _ in range(self._rng.randint(0, 4)))

    def _order(self) -> tuple[ChecksumAddress, int, bytes, list[int]]:
        return (
            self._pick(self.recipients),
            self._rng.getrandbits(128),
            self._rng.randbytes(self._rng.randint(0, 40)),
            [self._rng.getrandbits(8), self._rng.getrandbits(8)],
        )

    def _zoo(self, kind: str, fn: str, args: Sequence[Any]) -> HexBytes:
        return self._send(kind, self._pick(self.senders), self.sample.zoo, fn, args, _GAS_ZOO)

    def _zoo_dynamic(self) -> HexBytes:
        blob = self._rng.randbytes(self._rng.randint(0, 70))
        return self._zoo("zoo_dynamic", "emitDynamic", [self._pick(_WORDS), self._text(), blob])

    def _zoo_arrays(self) -> HexBytes:
        values = [self._rng.getrandbits(256) for _ in range(self._rng.randint(0, 4))]
        fixed = [self._pick((*self.recipients, "0x" + "00" * 20)) for _ in range(3)]
        hashes = [self._rng.randbytes(32) for _ in range(self._rng.randint(0, 3))]
        return self._zoo("zoo_arrays", "emitArrays", [values, fixed, hashes])

    def _zoo_nested(self) -> HexBytes:
        orders = [self._order() for _ in range(self._rng.randint(0, 3))]
        args = [self._rng.getrandbits(64), self._order(), orders]
        return self._zoo("zoo_nested", "emitNested", args)

    def _zoo_signed(self) -> HexBytes:
        a = self._rng.randint(-(2**255), 2**255 - 1)
        b = self._rng.randint(-(2**7), 2**7 - 1)
        c = self._rng.randint(-(2**23), 2**23 - 1)
        return self._zoo("zoo_signed", "emitSigned", [a, b, c])

    def _zoo_anon(self) -> HexBytes:
        args = [self._pick(self.recipients), self._rng.getrandbits(256)]
        return self._zoo("zoo_anon", "emitAnon", args)


# --- config -----------------------------------------------------------------------------------


def devnet_config_text(
    config_dir: Path,
    *,
    ws_url: str,
    chain_id: int,
    sample: SampleContracts,
    wallet: str,
    storage_url: str,
    server_host: str = "127.0.0.1",
    server_port: int = 8546,
    confirmations: int = 2,
    comment: str = "",
) -> str:
    """A chainwatch config (TOML) for a devnet: one chain, the sample contracts from the block
    each was deployed in, and a wallet watch on ``wallet`` for all three token standards.

    ABI paths are written relative to ``config_dir``, where the file will be.
    """
    base = config_dir.resolve()
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    lines += [
        "[storage]",
        f"url = {_toml_str(storage_url)}",
        "",
        "[server]",
        f"host = {_toml_str(server_host)}",
        f"port = {server_port}",
        "",
        "[[chains]]",
        'name = "devnet"',
        f"chain_id = {chain_id}",
        f"providers = [{_toml_str(ws_url)}]",
        f"confirmations = {confirmations}",
    ]
    for label, deployed, abi in sample.watched():
        relative = Path(os.path.relpath(abi_path(abi).resolve(), base)).as_posix()
        lines += [
            "",
            "[[contracts]]",
            f"name = {_toml_str(label)}",
            'chain = "devnet"',
            f"address = {_toml_str(deployed.address)}",
            f"abi = {_toml_str(relative)}",
            f"from_block = {deployed.block_number}",
        ]
    lines += [
        "",
        "[[wallets]]",
        'chain = "devnet"',
        f"addresses = [{_toml_str(Web3.to_checksum_address(wallet))}]",
        'standards = ["erc20", "erc721", "erc1155"]',
    ]
    return "\n".join(lines) + "\n"


def write_devnet_config(
    path: str | os.PathLike[str],
    anvil: Anvil,
    sample: SampleContracts,
    storage_url: str,
    *,
    server_host: str = "127.0.0.1",
    server_port: int = 8546,
    confirmations: int = 2,
) -> Path:
    """Write the config of :func:`devnet_config_text` for ``anvil`` (its websocket URL and chain
    id; the wallet watched is its account 1) to ``path``; returns the path."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    text = devnet_config_text(
        file.parent,
        ws_url=anvil.ws_url,
        chain_id=anvil.chain_id,
        sample=sample,
        wallet=anvil.accounts[1],
        storage_url=storage_url,
        server_host=server_host,
        server_port=server_port,
        confirmations=confirmations,
        comment=f"Written by chainwatch.devnet for the anvil at {anvil.ws_url}.",
    )
    file.write_text(text, encoding="utf-8")
    return file


def _toml_str(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes; json.dumps emits no "\/").
    return json.dumps(value, ensure_ascii=False)


EXAMPLE_COMMENT = """\
Example config for a local anvil on its default port 8545 (`npx anvil`), on which
chainwatch.devnet.deploy_sample() ran first. The addresses are the ones deploy_sample() gives
on a fresh anvil with the default mnemonic: a contract's address depends only on its deployer
and the deployer's nonce. Regenerate with `python -m chainwatch.devnet`."""


def _write_example(path: Path) -> None:
    """Regenerate ``config/devnet.toml`` from a fresh anvil."""
    with Anvil() as node:
        sample = deploy_sample(node.w3)
        text = devnet_config_text(
            path.parent,
            ws_url="ws://127.0.0.1:8545",
            chain_id=node.chain_id,
            sample=sample,
            wallet=node.accounts[1],
            storage_url="sqlite:///devnet.db",
            comment=EXAMPLE_COMMENT,
        )
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    _write_example(_PACKAGE_DIR.parent / "config" / "devnet.toml")
