"""Decoding speed: chainwatch's compiled decoder against web3.py's ``process_log``.

A realistic mix of logs is built with eth-abi: ERC-20 Transfer (the bulk of mainnet logs),
ERC-721 Transfer, ERC-1155 TransferSingle/TransferBatch, Uniswap V2 Swap and Sync, Uniswap V3
Swap (int256, uint160, uint128, int24), WETH Deposit, and an event with a string, a
``uint256[]`` and a tuple. Addresses are drawn from a pool of 2,000 with a skewed (1/rank)
distribution, as on a real chain where routers, pools and exchanges recur.

Both sides decode the same logs: chainwatch with the ``AbiDecoder`` of the emitting contract
(the daemon routes logs by address), web3.py with ``contract.events.<Event>().process_log``
for the right event, which spares web3.py any lookup. Before timing, every log's chainwatch
output is checked equal to web3.py's converted with ``to_json_value``. Times are the best of
several passes, the two sides alternating (``time.perf_counter``).

Rows: the whole mix; transfers only (ERC-20/721/1155); and the whole mix with every address
new, so that each one is checksummed afresh (keccak) instead of coming from the cache.

Run alone: ``python -m benchmarks.bench_decode`` (also prints a per-event breakdown).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from web3 import Web3

from chainwatch.core.abi import AbiEvent, parse_abi
from chainwatch.core.decoder import AbiDecoder
from chainwatch.core.jsonform import checksum_hex40, to_json_value
from chainwatch.core.standards import ERC20_ABI, ERC721_ABI, ERC1155_ABI

MIXED_LOGS = 800
COLD_LOGS = 400
ADDRESS_POOL = 2000
SEED = 20240601


def _event(name: str, *inputs: tuple[str, str, bool], **extra: Any) -> dict[str, Any]:
    return {
        "type": "event",
        "name": name,
        "anonymous": False,
        "inputs": [{"name": n, "type": t, "indexed": i, **extra.get(n, {})} for n, t, i in inputs],
    }


UNISWAP_V2_PAIR_ABI = [
    _event(
        "Swap",
        ("sender", "address", True),
        ("amount0In", "uint256", False),
        ("amount1In", "uint256", False),
        ("amount0Out", "uint256", False),
        ("amount1Out", "uint256", False),
        ("to", "address", True),
    ),
    _event("Sync", ("reserve0", "uint112", False), ("reserve1", "uint112", False)),
]
UNISWAP_V3_POOL_ABI = [
    _event(
        "Swap",
        ("sender", "address", True),
        ("recipient", "address", True),
        ("amount0", "int256", False),
        ("amount1", "int256", False),
        ("sqrtPriceX96", "uint160", False),
        ("liquidity", "uint128", False),
        ("tick", "int24", False),
    )
]
WETH_ABI = [_event("Deposit", ("dst", "address", True), ("wad", "uint256", False))]
MARKET_ABI = [
    _event(
        "Listed",
        ("seller", "address", True),
        ("note", "string", False),
        ("prices", "uint256[]", False),
        ("item", "tuple", False),
        item={
            "components": [
                {"name": "token", "type": "address"},
                {"name": "amount", "type": "uint96"},
                {"name": "tag", "type": "bytes32"},
            ]
        },
    )
]


@dataclass(frozen=True)
class Kind:
    """One kind of log in the mix: its contract ABI, event, share, and a value generator."""

    label: str
    abi: list[dict[str, Any]]
    event: str
    topics: int
    weight: int
    values: Callable[[random.Random, Callable[[], str]], list[Any]]
    transfer: bool = False


def _amount(rng: random.Random) -> int:
    return rng.randrange(10 ** rng.randint(1, 24))


KINDS = [
    Kind(
        "ERC-20 Transfer",
        ERC20_ABI,
        "Transfer",
        3,
        40,
        lambda rng, addr: [addr(), addr(), _amount(rng)],
        transfer=True,
    ),
    Kind(
        "ERC-721 Transfer",
        ERC721_ABI,
        "Transfer",
        4,
        8,
        lambda rng, addr: [addr(), addr(), rng.randrange(100_000)],
        transfer=True,
    ),
    Kind(
        "ERC-1155 TransferSingle",
        ERC1155_ABI,
        "TransferSingle",
        4,
        4,
        lambda rng, addr: [addr(), addr(), addr(), rng.randrange(1000), rng.randrange(1, 100)],
        transfer=True,
    ),
    Kind(
        "ERC-1155 TransferBatch",
        ERC1155_ABI,
        "TransferBatch",
        4,
        2,
        lambda rng, addr: [
            addr(),
            addr(),
            addr(),
            [rng.randrange(1000) for _ in range(4)],
            [rng.randrange(1, 100) for _ in range(4)],
        ],
        transfer=True,
    ),
    Kind(
        "Uniswap V2 Swap",
        UNISWAP_V2_PAIR_ABI,
        "Swap",
        3,
        12,
        lambda rng, addr: [addr(), _amount(rng), 0, 0, _amount(rng), addr()],
    ),
    Kind(
        "Uniswap V2 Sync",
        UNISWAP_V2_PAIR_ABI,
        "Sync",
        1,
        12,
        lambda rng, addr: [rng.randrange(2**112), rng.randrange(2**112)],
    ),
    Kind(
        "Uniswap V3 Swap",
        UNISWAP_V3_POOL_ABI,
        "Swap",
        3,
        10,
        lambda rng, addr: [
            addr(),
            addr(),
            -_amount(rng),
            _amount(rng),
            rng.randrange(2**160),
            rng.randrange(2**128),
            rng.randrange(-887272, 887273),
        ],
    ),
    Kind("WETH Deposit", WETH_ABI, "Deposit", 2, 8, lambda rng, addr: [addr(), _amount(rng)]),
    Kind(
        "Listed (string, uint256[], tuple)",
        MARKET_ABI,
        "Listed",
        2,
        4,
        lambda rng, addr: [
            addr(),
            "listing #" + str(rng.randrange(10**6)) + " — mint condition",
            [_amount(rng) for _ in range(rng.randint(1, 5))],
            (addr(), rng.randrange(2**96), rng.randbytes(32)),
        ],
    ),
]


@dataclass(frozen=True)
class Case:
    """One log, with what each side needs to decode it."""

    kind: Kind
    decoder: AbiDecoder
    web3_event: Any
    topics: list[str]
    data: str
    rpc_log: dict[str, Any]


class _Compiled:
    """Per kind: the chainwatch decoder of its contract, web3.py's event and the ABI event."""

    def __init__(self) -> None:
        w3 = Web3()
        self.decoders: dict[int, AbiDecoder] = {}
        self.web3_events: dict[str, Any] = {}
        self.events: dict[str, AbiEvent] = {}
        for kind in KINDS:
            events = parse_abi(kind.abi)
            (event,) = [e for e in events if e.name == kind.event and e.topic_count == kind.topics]
            self.events[kind.label] = event
            self.decoders.setdefault(id(kind.abi), AbiDecoder(events))
            # web3.py picks among same-named events by argument names only: give it the one.
            single = [
                e for e in kind.abi if e["name"] == kind.event and _indexed(e) == kind.topics - 1
            ]
            self.web3_events[kind.label] = w3.eth.contract(abi=single).events[kind.event]()


def _indexed(entry: dict[str, Any]) -> int:
    return sum(1 for p in entry["inputs"] if p["indexed"])


def build_logs(count: int, fresh_addresses: bool, seed: int = SEED) -> list[Case]:
    """``count`` logs of the mix; addresses from the skewed pool, or all distinct."""
    rng = random.Random(seed)
    compiled = _Compiled()
    pool = ["0x" + rng.randbytes(20).hex() for _ in range(ADDRESS_POOL)]
    rank_weights = [1 / (rank + 1) for rank in range(ADDRESS_POOL)]

    def address() -> str:
        if fresh_addresses:
            return "0x" + rng.randbytes(20).hex()
        return rng.choices(pool, rank_weights)[0]

    kinds = rng.choices(KINDS, [k.weight for k in KINDS], k=count)
    cases = []
    for number, kind in enumerate(kinds):
        event = compiled.events[kind.label]
        values = kind.values(rng, address)
        topics = [event.topic0]
        data_types, data_values = [], []
        for param, value in zip(event.inputs, values, strict=True):
            if param.indexed:
                topics.append("0x" + encode([param.canonical_type], [value]).hex())
            else:
                data_types.append(param.canonical_type)
                data_values.append(value)
        data = "0x" + encode(data_types, data_values).hex()
        rpc_log = {
            "address": pool[number % 50],
            "topics": topics,
            "data": data,
            "blockNumber": 19_000_000 + number // 200,
            "blockHash": "0x" + rng.randbytes(32).hex(),
            "transactionHash": "0x" + rng.randbytes(32).hex(),
            "transactionIndex": number % 200,
            "logIndex": number % 400,
            "removed": False,
        }
        decoder = compiled.decoders[id(kind.abi)]
        web3_event = compiled.web3_events[kind.label]
        cases.append(Case(kind, decoder, web3_event, topics, data, rpc_log))
    _check_equal(cases, compiled)
    return cases


def _check_equal(cases: Sequence[Case], compiled: _Compiled) -> None:
    """Both sides must give the same values before their speed means anything."""
    for case in cases:
        name, args = case.decoder.decode(case.topics, case.data)
        event = compiled.events[case.kind.label]
        reference = case.web3_event.process_log(case.rpc_log)
        expected = {p.name: to_json_value(p, reference["args"][p.name]) for p in event.inputs}
        if (name, args) != (event.name, expected):
            raise AssertionError(f"{case.kind.label}: chainwatch {args} != web3.py {expected}")


def _seconds(decode_all: Callable[[], None], clear: bool) -> float:
    if clear:
        checksum_hex40.cache_clear()
    started = time.perf_counter()
    decode_all()
    return time.perf_counter() - started


def measure(
    cases: Sequence[Case], budget: float, cold: bool = False, rounds: int = 5
) -> tuple[float, float]:
    """(chainwatch logs/s, web3.py logs/s) on ``cases``: the best pass of each side.

    The sides alternate, in ``rounds`` rounds of one web3.py pass (~0.5 ms a log) and as many
    chainwatch passes as fit in ``budget / rounds`` seconds, so that both see the same load.
    ``cold`` clears the checksum cache before each chainwatch pass.
    """
    ours = [(c.decoder.decode, c.topics, c.data) for c in cases]
    theirs = [(c.web3_event.process_log, c.rpc_log) for c in cases]

    def chainwatch() -> None:
        for decode, topics, data in ours:
            decode(topics, data)

    def web3() -> None:
        for process_log, rpc_log in theirs:
            process_log(rpc_log)

    # Warm the checksum cache as a running daemon would have it (the cold run clears it).
    chainwatch()
    best_ours = best_theirs = float("inf")
    for _ in range(rounds):
        best_theirs = min(best_theirs, _seconds(web3, clear=False))
        deadline = time.perf_counter() + budget / rounds
        passes = 0
        while passes < 3 or time.perf_counter() < deadline:
            best_ours = min(best_ours, _seconds(chainwatch, clear=cold))
            passes += 1
    return len(cases) / best_ours, len(cases) / best_theirs


def _row(name: str, ours: float, theirs: float) -> dict[str, Any]:
    return {
        "name": name,
        "chainwatch": ours,
        "baseline": theirs,
        "unit": "logs/s",
        "ratio": ours / theirs,
    }


def run(breakdown: bool = False) -> list[dict[str, Any]]:
    """Rows ``{name, chainwatch, baseline, unit, ratio}``; baseline is web3.py ``process_log``."""
    mixed = build_logs(MIXED_LOGS, fresh_addresses=False)
    transfers = [c for c in mixed if c.kind.transfer]
    cold = build_logs(COLD_LOGS, fresh_addresses=True, seed=SEED + 1)
    rows = [
        _row("decode: mixed logs vs web3.py process_log", *measure(mixed, 2.0)),
        _row("decode: transfers (ERC-20/721/1155)", *measure(transfers, 2.0)),
        _row("decode: mixed, every address new (no cache)", *measure(cold, 1.0, cold=True)),
    ]
    if breakdown:
        for kind in KINDS:
            cases = [c for c in mixed if c.kind is kind]
            label = f"  {kind.label} ({len(cases)} logs)"
            rows.append(_row(label, *measure(cases, 0.5, rounds=2)))
    return rows


def main() -> int:
    rows = run(breakdown=True)
    width = max(len(r["name"]) for r in rows)
    print(f"{'':{width}}  {'chainwatch':>12}  {'web3.py':>9}  {'ratio':>7}")
    for r in rows:
        print(
            f"{r['name']:{width}}  {r['chainwatch']:>12,.0f}  {r['baseline']:>9,.0f}"
            f"  {r['ratio']:>6.0f}x"
        )
    print("(logs/s; web3.py is contract.events.<Event>().process_log(log))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
