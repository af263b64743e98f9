"""The CLI's user-facing errors and its offline commands, through the real `chainwatch` command.

Each error a user can cause prints exactly one line on stderr, no traceback, and exits non-zero:
2 for a bad config or usage, 1 for the rest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chainwatch.devnet import Anvil, contracts_dir
from tests.helpers import cli, free_port

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
