"""Existing clients pointed at chainwatch, unchanged, against the real stack (anvil -> daemon):
each receives exactly the logs that the same client subscribed to anvil directly receives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import AsyncWeb3, WebSocketProvider

from chainwatch.core.standards import TRANSFER_TOPIC0
from chainwatch.devnet import Anvil, SampleContracts, Traffic, deploy_sample, write_devnet_config
from tests.helpers import daemon, free_port, stop, wait_until

ROOT = Path(__file__).resolve().parents[2]
ETHERS = ROOT / "tests" / "server" / "js" / "ethers_transfers.mjs"
TRANSFERS = 12


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Anvil, SampleContracts, str]]:
    """anvil with the sample contracts and `chainwatch run` serving on a known port."""
    port = free_port()
    with Anvil() as anvil:
        sample = deploy_sample(anvil.w3)
        config = write_devnet_config(
            tmp_path / "chainwatch.toml", anvil, sample, f"sqlite:///{tmp_path / 'cw.db'}",
            server_port=port,
        )  # fmt: skip
        log_path = tmp_path / "daemon.log"
        with daemon(config, log_path) as proc:
            url = f"ws://127.0.0.1:{port}"
            wait_until(lambda: "caught up" in log_path.read_text(), 30, "the daemon to start")
            yield anvil, sample, url
            stop(proc, log_path)


def _key(log: Any) -> tuple[str, int, str, tuple[str, ...], str]:
    def hexed(value: Any) -> str:
        return value if isinstance(value, str) else "0x" + bytes(value).hex()

    return (
        hexed(log["blockHash"]),
        int(log["logIndex"]),
        str(log["address"]).lower(),
        tuple(hexed(t) for t in log["topics"]),
        hexed(log["data"]),
    )


async def _collect(url: str, flt: dict[str, Any], count: int, ready: asyncio.Event) -> list[Any]:
    async with AsyncWeb3(WebSocketProvider(url)) as w3:
        await w3.eth.subscribe("logs", flt)
        ready.set()
        got = []
        async with asyncio.timeout(60):
            async for message in w3.socket.process_subscriptions():
                got.append(message["result"])
                if len(got) == count:
                    return got
    return got


async def test_web3_logs_subscription_same_as_the_node(
    stack: tuple[Anvil, SampleContracts, str],
) -> None:
    anvil, sample, url = stack
    token = sample.token.contract
    flt = {"address": token.address, "topics": [TRANSFER_TOPIC0]}
    ready = [asyncio.Event(), asyncio.Event()]
    direct = asyncio.create_task(_collect(anvil.ws_url, flt, TRANSFERS, ready[0]))
    through = asyncio.create_task(_collect(url, flt, TRANSFERS, ready[1]))
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
    sender = anvil.accounts[0]

    def send() -> None:
        token.functions.mint(sender, 10**24).transact({"from": sender})
        for i in range(TRANSFERS - 1):
            to = anvil.accounts[1 + i % 5]
            token.functions.transfer(to, 10**18 + i).transact({"from": sender})
        # Other contracts' logs in between: not for this filter.
        Traffic(anvil.w3, sample, seed=5).run(5)

    await asyncio.to_thread(send)
    node_logs, chainwatch_logs = await asyncio.gather(direct, through)
    assert len(node_logs) == TRANSFERS
    assert [_key(x) for x in chainwatch_logs] == [_key(x) for x in node_logs]


async def test_ethers_contract_on_transfer_same_as_the_node(
    stack: tuple[Anvil, SampleContracts, str],
) -> None:
    anvil, sample, url = stack
    token = sample.token.address
    procs = []
    for target in (anvil.ws_url, url):
        proc = await asyncio.create_subprocess_exec(
            "node", str(ETHERS), target, token, str(TRANSFERS), str(anvil.chain_id),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
    try:
        for proc in procs:
            assert proc.stdout is not None
            async with asyncio.timeout(30):
                assert json.loads(await proc.stdout.readline())["ready"] is True
        traffic = Traffic(anvil.w3, sample, seed=9)
        results = [asyncio.create_task(p.communicate()) for p in procs]
        async with asyncio.timeout(90):
            while not all(r.done() for r in results):
                await asyncio.to_thread(traffic.step)
        outputs = [await r for r in results]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert [p.returncode for p in procs] == [0, 0], [err.decode() for _, err in outputs]
    direct, through = ([json.loads(ln) for ln in out.decode().splitlines()] for out, _ in outputs)
    assert through == direct
    assert len(direct) == TRANSFERS
