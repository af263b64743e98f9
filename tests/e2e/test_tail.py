"""The whole stack from a terminal: anvil -> `chainwatch run` -> `chainwatch tail --json`."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

from chainwatch.devnet import Anvil, deploy_sample, write_devnet_config
from tests.helpers import CHAINWATCH, daemon, free_port, stop


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [out.put(ln) for ln in stdout], daemon=True).start()
    return out


def test_tail_prints_filtered_alerts_with_token_amounts(tmp_path: Path) -> None:
    port = free_port()
    with Anvil() as anvil:
        w3 = anvil.w3
        sample = deploy_sample(w3)
        config = write_devnet_config(
            tmp_path / "chainwatch.toml", anvil, sample, f"sqlite:///{tmp_path / 'cw.db'}",
            server_port=port,
        )  # fmt: skip
        log_path = tmp_path / "daemon.log"
        sender, receiver = anvil.accounts[0], anvil.accounts[2]
        usdc = sample.usdc.contract
        with daemon(config, log_path) as proc:
            tail = subprocess.Popen(
                [CHAINWATCH, "tail", f"ws://127.0.0.1:{port}", "--json", "--contract", "USDC",
                 "--event", "Transfer", "--where", "amount >= 2.5", "--where", f"to == {receiver}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                assert tail.stderr is not None
                first = tail.stderr.readline()  # once the server is up and the filter taken
                assert first.startswith(f"chainwatch tail: subscribed to ws://127.0.0.1:{port}")
                lines = _lines(tail)
                usdc.functions.mint(sender, 10**9).transact({"from": sender})
                for value in (1_000_000, 2_500_000, 3_000_000, 2_499_999):  # 6 decimals
                    usdc.functions.transfer(receiver, value).transact({"from": sender})
                usdc.functions.transfer(anvil.accounts[3], 9_000_000).transact({"from": sender})
                got: list[dict[str, Any]] = [json.loads(lines.get(timeout=30)) for _ in range(2)]
            finally:
                tail.terminate()
                tail.wait(timeout=10)
            stop(proc, log_path)
    assert [e["args"]["value"] for e in got] == ["2500000", "3000000"]
    assert [e["amount"] for e in got] == ["2.5", "3"]
    assert all(e["token"] == {"symbol": "USDC", "decimals": 6} for e in got)
    assert all(e["contract"] == "USDC" and e["args"]["to"] == receiver for e in got)
    assert got[0]["id"] < got[1]["id"]
