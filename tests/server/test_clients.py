"""Existing node clients pointed at chainwatch, unchanged: web3.py and ethers.js v6."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from web3 import AsyncWeb3, WebSocketProvider

from tests.server.conftest import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    ROOT,
    TIMEOUT,
    TOKEN,
    TRANSFER0,
    USDC,
    Harness,
    topic,
)

JS = Path(__file__).with_name("js")


async def test_web3_subscribe_logs(harness: Harness) -> None:
    dev = harness.dev
    async with harness.serving(), AsyncWeb3(WebSocketProvider(harness.url)) as w3:
        assert await w3.eth.chain_id == CHAIN_ID
        sub_id = await w3.eth.subscribe(
            "logs", {"address": TOKEN, "topics": [TRANSFER0, None, topic(CAROL)]}
        )
        dev.block([
            dev.transfer_log(1, ALICE, BOB),  # not to CAROL
            dev.transfer_log(2, ALICE, CAROL),  # matches
            dev.transfer_log(3, ALICE, CAROL, token=USDC),  # another contract
            dev.approval_log(4, ALICE, CAROL),  # another event
        ])  # fmt: skip
        dev.block([dev.transfer_log(5, ALICE, CAROL)])  # matches
        received: list[Any] = []
        async with asyncio.timeout(TIMEOUT):
            async for message in w3.socket.process_subscriptions():
                assert message["subscription"] == sub_id
                received.append(message["result"])
                if len(received) == 2:
                    break
        assert [int(r["data"].hex(), 16) for r in received] == [2, 5]
        assert [r["blockNumber"] for r in received] == [1, 2]
        assert [r["logIndex"] for r in received] == [1, 0]
        assert all(r["address"] == TOKEN and not r["removed"] for r in received)
        assert await w3.eth.unsubscribe(sub_id) is True


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_ethers_contract_on_transfer(harness: Harness) -> None:
    dev = harness.dev
    async with harness.serving():
        proc = await asyncio.create_subprocess_exec(
            "node", str(JS / "ethers_transfers.mjs"), harness.url, TOKEN, "3", str(CHAIN_ID),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(TIMEOUT * 3):
                ready = json.loads(await proc.stdout.readline())
                assert ready == {"ready": True, "chainId": hex(CHAIN_ID)}
                dev.block([dev.transfer_log(10, ALICE, BOB), dev.approval_log(11)])
                dev.block([dev.transfer_log(12, ALICE, CAROL, token=USDC)])  # not Token's
                dev.block([dev.transfer_log(13, BOB, CAROL), dev.transfer_log(14, CAROL, ALICE)])
                out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        lines = [json.loads(line) for line in out.decode().splitlines()]
        assert [(x["from"], x["to"], x["value"]) for x in lines] == [
            (ALICE, BOB, "10"),
            (BOB, CAROL, "13"),
            (CAROL, ALICE, "14"),
        ]
        assert [(x["blockNumber"], x["index"], x["removed"]) for x in lines] == [
            (1, 0, False),
            (3, 0, False),
            (3, 1, False),
        ]
