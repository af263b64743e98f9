"""The command line as a user meets it: ``chainwatch decode`` and ``chainwatch events``.

decode
    Input: ERC-20 ``Transfer`` logs in node JSON, one a line, from and to among 300 addresses,
    emitted by 10 tokens. Both sides run as a whole process with the input on stdin and their
    output to a pipe that is read and dropped:

    - chainwatch: ``chainwatch decode --abi ERC20.json -``;
    - baseline: a web3.py script, ``json.loads`` + ``contract.events.Transfer().process_log`` +
      ``Web3.to_json`` per line (:data:`WEB3_SCRIPT`).

    Each side runs on two input sizes, best of three each; the time per log is the difference
    of the two times over the difference of the sizes, so that process start-up (imports, ABI)
    cancels out. Times are the CPU seconds of the process (user + system, from ``wait4``), not
    wall time: on a shared machine they vary far less from run to run, and the pipes' waits
    are not the command's cost. The memory rows are the peak RSS of the chainwatch process on
    each size: flat when the command streams.

events
    A SQLite store of :data:`STORED` events written by the store's own batch writer; the CPU
    time of ``chainwatch events --format json`` (and ``csv``) over all of them, less that of
    the same command with ``--limit 1`` (start-up, config, opening the store), gives rows/s.
    No baseline: the rows say what a user waits, and the peak RSS rows (one row, all rows)
    that the command does not hold the rows in memory.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from eth_abi import encode

from benchmarks.common import row, write_config
from benchmarks.replay_provider import CHAIN_ID
from chainwatch.core.abi import parse_abi

ERC20_ABI = Path(__file__).resolve().parent.parent / "contracts" / "abi" / "ERC20.json"
TRANSFER_TOPIC0 = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ADDRESSES = 300
TOKENS = 10
# (small, large) inputs: chainwatch's are larger, as each log costs it far less.
CHAINWATCH_SIZES = (20_000, 150_000)
WEB3_SIZES = (1_000, 4_000)
REPEAT = 3
STORED = 100_000
SEED = 20240601

WEB3_SCRIPT = """
import json, sys
from web3 import Web3
with open(sys.argv[1]) as f:
    transfer = Web3().eth.contract(abi=json.load(f)).events.Transfer()
write = sys.stdout.write
for line in sys.stdin:
    write(Web3.to_json(transfer.process_log(json.loads(line))) + "\\n")
"""


def node_logs(count: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``count`` ERC-20 Transfer logs as a node sends them."""
    rng = random.Random(seed)
    pool = ["0x" + rng.randbytes(20).hex() for _ in range(ADDRESSES)]
    topics = {a: "0x" + encode(["address"], [a]).hex() for a in pool}
    logs = []
    for i in range(count):
        value = rng.randrange(10 ** rng.randint(1, 24))
        logs.append(
            {
                "address": pool[i % TOKENS],
                "topics": [TRANSFER_TOPIC0, topics[rng.choice(pool)], topics[rng.choice(pool)]],
                "data": "0x" + value.to_bytes(32, "big").hex(),  # its ABI encoding
                "blockHash": "0x" + rng.randbytes(32).hex(),
                "blockNumber": hex(19_000_000 + i // 200),
                "transactionHash": "0x" + rng.randbytes(32).hex(),
                "transactionIndex": hex(i % 200),
                "logIndex": hex(i % 400),
                "removed": False,
            }
        )
    return logs


def write_lines(path: Path, logs: list[dict[str, Any]]) -> Path:
    with path.open("w") as f:
        for log in logs:
            f.write(json.dumps(log, separators=(",", ":")) + "\n")
    return path


def chainwatch_command() -> list[str]:
    return [str(Path(sys.executable).parent / "chainwatch")]


# Runs a command and prints its CPU seconds and peak RSS from wait4. A child of the
# benchmark's own process would count the benchmark's memory in its peak (the fork shares it
# until exec): this small process forks the command instead.
PEAK_RSS = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
cpu = usage.ru_utime + usage.ru_stime
print(os.waitstatus_to_exitcode(status), cpu, usage.ru_maxrss, file=sys.stderr)
"""


def timed(command: list[str], stdin: Path | None) -> tuple[float, int]:
    """(CPU seconds, peak RSS in KiB) of one run; its stdout is read from a pipe and dropped."""
    with open(stdin or os.devnull, "rb") as source:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", PEAK_RSS, *command],
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        while proc.stdout.read(1 << 20):
            pass
        report = proc.stderr.read().decode()
        proc.wait()
    code, cpu, rss = report.split()[-3:]
    if proc.returncode != 0 or code != "0":
        raise RuntimeError(f"{command[:3]} exited {code}: {report[-500:]}")
    return float(cpu), int(rss)


def best(command: list[str], stdin: Path | None) -> tuple[float, int]:
    runs = [timed(command, stdin) for _ in range(REPEAT)]
    return min(t for t, _ in runs), max(m for _, m in runs)


def per_log(
    command: list[str], files: tuple[Path, Path], sizes: tuple[int, int]
) -> tuple[float, int, int]:
    """(seconds a log, peak RSS on the small input, on the large one)."""
    small, rss_small = best(command, files[0])
    large, rss_large = best(command, files[1])
    return (large - small) / (sizes[1] - sizes[0]), rss_small, rss_large


def decode_rows(folder: Path) -> list[dict[str, Any]]:
    logs = node_logs(max(CHAINWATCH_SIZES))
    ours_files = (
        write_lines(folder / "small.jsonl", logs[: CHAINWATCH_SIZES[0]]),
        write_lines(folder / "large.jsonl", logs),
    )
    theirs_files = (
        write_lines(folder / "web3-small.jsonl", logs[: WEB3_SIZES[0]]),
        write_lines(folder / "web3-large.jsonl", logs[: WEB3_SIZES[1]]),
    )
    script = folder / "web3_decode.py"
    script.write_text(WEB3_SCRIPT)
    ours_command = [*chainwatch_command(), "decode", "--abi", str(ERC20_ABI), "-"]
    theirs_command = [sys.executable, str(script), str(ERC20_ABI)]
    ours, rss_small, rss_large = per_log(ours_command, ours_files, CHAINWATCH_SIZES)
    theirs, _, _ = per_log(theirs_command, theirs_files, WEB3_SIZES)
    small, large = (f"{n // 1000}k" for n in CHAINWATCH_SIZES)
    return [
        row("decode CLI, ERC-20 transfers vs a web3.py script", 1 / ours, 1 / theirs, "logs/s"),
        row(f"decode CLI peak memory, {small} logs", rss_small / 1024, None, "MiB"),
        row(f"decode CLI peak memory, {large} logs", rss_large / 1024, None, "MiB"),
    ]


def fill_store(url: str, count: int) -> None:
    """``count`` decoded ERC-20 transfers in the store at ``url``, through its batch writer."""
    from chainwatch.core.decoder import AbiDecoder
    from chainwatch.core.model import DecodedEvent, parse_log
    from chainwatch.core.standards import ERC20_ABI as ERC20_EVENTS
    from chainwatch.store import Store

    decoder = AbiDecoder(parse_abi(ERC20_EVENTS))
    store = Store.open(url)
    try:
        for start in range(0, count, 10_000):
            batch = []
            for raw in node_logs(min(10_000, count - start), seed=SEED + start):
                log = parse_log(raw)
                name, args = decoder.decode_log(log)
                batch.append(DecodedEvent(CHAIN_ID, log, "Token", name, args))
            store.write_batch(batch, None)
    finally:
        store.close()


def events_rows(folder: Path) -> list[dict[str, Any]]:
    config = write_config(
        folder,
        provider_url="ws://127.0.0.1:9",
        storage_url=f"sqlite:///{folder / 'events.db'}",
        server_port=0,
    )
    fill_store(f"sqlite:///{folder / 'events.db'}", STORED)
    rows = []
    for fmt in ("json", "csv"):
        command = [*chainwatch_command(), "events", "--config", str(config), "--format", fmt]
        start_up, rss_one = best([*command, "--limit", "1"], None)
        whole, rss_all = best(command, None)
        rate = (STORED - 1) / (whole - start_up)
        rows.append(
            row(f"events --format {fmt}, SQLite, {STORED // 1000}k rows", rate, None, "rows/s")
        )
        if fmt == "json":
            rows += [
                row("events --format json peak memory, 1 row", rss_one / 1024, None, "MiB"),
                row(
                    f"events --format json peak memory, {STORED // 1000}k rows",
                    rss_all / 1024,
                    None,
                    "MiB",
                ),
            ]
    return rows


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        rows = decode_rows(Path(folder))
    with tempfile.TemporaryDirectory() as folder:
        rows += events_rows(Path(folder))
    return rows


def main() -> int:
    for r in run():
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
