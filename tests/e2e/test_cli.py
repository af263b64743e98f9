"""The CLI's user-facing errors and its offline commands, through the real `chainwatch` command.

Each error a user can cause prints exactly one line on stderr, no traceback, and exits non-zero:
2 for a bad config or usage, 1 for the rest.
"""

from __future__ import annotations

import json
import selectors
import subprocess
from pathlib import Path
from typing import IO

import pytest

from chainwatch.devnet import Anvil, contracts_dir
from tests.helpers import CHAINWATCH, cli, free_port

ERC20_ABI = contracts_dir() / "abi" / "ERC20.json"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def write_config(
    tmp_path: Path,
    *,
    provider: str,
    chain_id: int = 31337,
    address: str = TOKEN,
    abi: str | None = None,
) -> Path:
    config = tmp_path / "chainwatch.toml"
    config.write_text(
        f"""
[storage]
url = "sqlite:///chainwatch.db"
[server]
port = 0
[[chains]]
name = "devnet"
chain_id = {chain_id}
providers = ["{provider}"]
[[contracts]]
name = "Token"
chain = "devnet"
address = "{address}"
abi = "{abi if abi is not None else ERC20_ABI}"
"""
    )
    return config


def one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert "Traceback" not in stderr
    assert lines[0].startswith("chainwatch: error: ")
    return lines[0]


def test_bad_address_names_file_key_and_problem(tmp_path: Path) -> None:
    config = write_config(tmp_path, provider="ws://127.0.0.1:8545", address="0x1234")
    for command in (["run", "--config", str(config)], ["check-config", str(config)]):
        result = cli(*command)
        assert result.returncode == 2
        line = one_line_error(result.stderr)
        assert (
            line == f"chainwatch: error: {config}: contracts[0].address: not a 20-byte hex address"
        )


def test_missing_abi_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, provider="ws://127.0.0.1:8545", abi="abi/Missing.json")
    result = cli("run", "--config", str(config))
    assert result.returncode == 2
    line = one_line_error(result.stderr)
    assert f"{config}: contracts[0].abi: ABI file not found" in line
    assert "Missing.json" in line


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[storage\nurl = 1\n")
    result = cli("check-config", str(config))
    assert result.returncode == 2
    assert one_line_error(result.stderr).startswith(f"chainwatch: error: {config}: not valid TOML")
    result = cli("run", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert (
        one_line_error(result.stderr)
        == f"chainwatch: error: {tmp_path / 'nope.toml'}: file not found"
    )


def test_unreachable_provider_is_one_line_and_hides_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, provider=f"ws://127.0.0.1:{free_port()}/v2/SECRETKEY")
    result = cli("run", "--config", str(config), timeout=60)
    assert result.returncode == 1
    line = _last_error(result.stderr)
    assert "cannot connect" in line
    assert "SECRETKEY" not in result.stderr


def _last_error(stderr: str) -> str:
    """The daemon logs (warnings) on stderr too; the error line is the last one."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("chainwatch: error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_wrong_chain_id_refuses_the_provider(tmp_path: Path) -> None:
    with Anvil() as anvil:
        config = write_config(tmp_path, provider=anvil.ws_url, chain_id=1)
        result = cli("run", "--config", str(config), timeout=60)
    assert result.returncode == 1
    line = _last_error(result.stderr)
    assert "provider is on chain 31337" in line and "chain_id = 1" in line


def test_events_unknown_contract_and_bad_format(tmp_path: Path) -> None:
    config = write_config(tmp_path, provider="ws://127.0.0.1:8545")
    result = cli("events", "--config", str(config), "--contract", "Nope")
    assert result.returncode == 1
    assert "unknown contract 'Nope' (known: Token)" in one_line_error(result.stderr)
    result = cli("events", "--config", str(config), "--format", "xml")
    assert result.returncode == 2
    one_line_error(result.stderr)


def test_check_config_summary_redacts_providers(tmp_path: Path) -> None:
    config = write_config(tmp_path, provider="wss://node.example/v3/SECRETKEY")
    result = cli("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert "chain devnet (id 31337" in result.stdout
    assert "wss://node.example/***" in result.stdout
    assert "SECRETKEY" not in result.stdout
    assert f"contract Token {TOKEN}" in result.stdout


def test_env_var_in_provider(tmp_path: Path) -> None:
    config = write_config(tmp_path, provider="${CW_TEST_PROVIDER}")
    result = cli("check-config", str(config))
    assert result.returncode == 2
    assert (
        "chains[0].providers[0]: environment variable CW_TEST_PROVIDER is not set"
        in one_line_error(result.stderr)
    )
    result = cli("check-config", str(config), env={"CW_TEST_PROVIDER": "ws://127.0.0.1:9/key"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("as_array", [False, True])
def test_decode_reads_node_logs(tmp_path: Path, as_array: bool) -> None:
    from web3 import Web3

    from chainwatch.devnet import Traffic, deploy_sample

    with Anvil() as anvil:
        sample = deploy_sample(anvil.w3)
        Traffic(anvil.w3, sample, seed=3).run(30)
        raw = anvil.rpc("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}])
    assert isinstance(raw, list) and raw
    text = json.dumps(raw) if as_array else "\n".join(json.dumps(r) for r in raw) + "\nnot json\n"
    result = cli("decode", "--abi", str(contracts_dir() / "abi" / "ERC20.json"), input=text)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]
    assert len(lines) == len(raw) + (0 if as_array else 1)
    erc20 = [ln for ln in lines if ln.get("event") == "Transfer"]
    assert erc20 and all(set(ln["args"]) == {"from", "to", "value"} for ln in erc20)
    for ln in erc20:
        assert Web3.is_checksum_address(ln["args"]["from"]) and ln["args"]["value"].isdigit()
    errors = [ln for ln in lines if "error" in ln]
    assert errors, "logs that don't match the ABI print with an error field"
    assert all(ln.get("event") is None for ln in errors)


def test_decode_answers_each_line_of_a_pipe_before_the_input_ends() -> None:
    """`chainwatch decode --abi ERC20.json -` streams: each line fed to its stdin is answered
    while stdin is still open; a malformed line is answered with an error naming it, on stdout
    and stderr, and the run goes on and ends with code 0."""
    transfer = {
        "address": TOKEN.lower(),
        "topics": [
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",
            "0x" + "00" * 12 + "11" * 20,
            "0x" + "00" * 12 + "22" * 20,
        ],
        "data": "0x" + f"{10**18:064x}",
        "blockHash": "0x" + "ab" * 32,
        "blockNumber": "0x10",
        "transactionHash": "0x" + "cd" * 32,
        "transactionIndex": "0x0",
        "logIndex": "0x0",
    }
    log, other = json.dumps(transfer), json.dumps({**transfer, "logIndex": "0x1"})
    proc = subprocess.Popen(
        [CHAINWATCH, "decode", "--abi", str(ERC20_ABI), "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        answers = []
        for line in (log, "{not json", other):
            proc.stdin.write(line.encode() + b"\n")
            proc.stdin.flush()
            answers.append(json.loads(read_line(proc.stdout, within=30)))
        assert answers[0]["event"] == answers[2]["event"] == "Transfer"
        assert answers[0]["block_number"] == int(json.loads(log)["blockNumber"], 16)
        assert answers[1]["line"] == 2 and answers[1]["error"].startswith("not valid JSON")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == b""
        stderr = proc.stderr.read().decode()
        assert stderr.startswith("chainwatch: decode: line 2: not valid JSON")
        assert "1 of 3 lines were not logs" in stderr
    finally:
        proc.kill()
        proc.wait()


def read_line(stream: IO[bytes], within: float) -> bytes:
    """One line of a pipe, or AssertionError when none came within ``within`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        assert selector.select(within), f"no line within {within} s"
    return stream.readline()


def test_watch_streams_decoded_events(tmp_path: Path) -> None:
    """`chainwatch watch --erc20 --json` prints each transfer of the token once, decoded."""
    import subprocess
    import threading

    from chainwatch.devnet import deploy
    from tests.helpers import CHAINWATCH

    with Anvil() as anvil:
        token = deploy(anvil.w3, "TestToken", "Watched", "WAT", 6)
        sender = anvil.accounts[0]
        proc = subprocess.Popen(
            [CHAINWATCH, "watch", token.address, "--provider", anvil.ws_url, "--erc20", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None and proc.stdout is not None
            banner = proc.stderr.readline()  # printed once subscribed
            assert banner.startswith(f"watching {token.address}"), banner
            token.contract.functions.mint(sender, 10**12).transact({"from": sender})
            for amount in (1, 2, 3):
                token.contract.functions.transfer(anvil.accounts[1], amount).transact(
                    {"from": sender}
                )
            lines: list[dict[str, object]] = []
            reader = threading.Thread(
                target=lambda: lines.extend(json.loads(proc.stdout.readline()) for _ in range(4)),  # type: ignore[union-attr]
                daemon=True,
            )
            reader.start()
            reader.join(timeout=30)
            assert len(lines) == 4, lines
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert [ln["event"] for ln in lines] == ["Transfer"] * 4
    assert [ln["args"]["value"] for ln in lines] == [str(10**12), "1", "2", "3"]  # type: ignore[index]
    assert lines[1]["args"]["to"] == anvil.accounts[1]  # type: ignore[index]


def test_events_json_and_csv_stream_every_row(tmp_path: Path) -> None:
    """`events --format json|csv` over more rows than one batch of the store's stream: every
    row once, in id order, as the stored JSON form (json) or its CSV columns (csv)."""
    import csv
    import io

    from chainwatch.core.model import DecodedEvent, Log
    from chainwatch.render import CSV_COLUMNS
    from chainwatch.store import Store

    config = write_config(tmp_path, provider="ws://127.0.0.1:9")
    token = TOKEN.lower()
    store = Store.open(f"sqlite:///{tmp_path / 'chainwatch.db'}")
    try:
        events = []
        for i in range(2500):
            log = Log(token, (), "0x", i // 10, f"0x{i // 10:064x}", f"0x{i:064x}", 0, i % 10)
            args = None if i % 7 == 0 else {"value": str(i), "note": 'ünïcode, "quoted"'}
            error = "no match" if args is None else None
            events.append(DecodedEvent(31337, log, "Token", args and "Transfer", args, error))
        store.write_batch(events, None)
        expected = [e.to_json() for e in store.query()]
    finally:
        store.close()
    result = cli("events", "--config", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == expected
    result = cli("events", "--config", str(config), "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 2501
    for row, obj in zip(rows[1:], expected, strict=True):
        shown = dict(zip(CSV_COLUMNS, row, strict=True))
        assert shown["id"] == str(obj["id"]) and shown["status"] == obj["status"]
        assert shown["args"] == (
            ""
            if obj["args"] is None
            else json.dumps(obj["args"], separators=(",", ":"), ensure_ascii=False)
        )
