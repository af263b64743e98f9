"""``GET /metrics`` of `chainwatch run`, scraped and parsed as Prometheus text while a real
anvil sends transfers, a real WebSocket client subscribes and a reorg happens: the counters
move with the traffic."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from chainwatch.devnet import Anvil, Traffic, deploy_sample, write_devnet_config
from tests.helpers import daemon, free_port, stop, wait_until

pytestmark = pytest.mark.e2e

CHAIN = "devnet"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value; the text must parse."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_move_with_the_traffic(tmp_path: Path) -> None:
    with Anvil() as anvil:
        sample = deploy_sample(anvil.w3)
        port = free_port()
        config = tmp_path / "chainwatch.toml"
        write_devnet_config(
            config, anvil, sample, f"sqlite:///{tmp_path / 'cw.db'}", server_port=port,
            confirmations=2,
        )  # fmt: skip
        traffic = Traffic(anvil.w3, sample, seed=3)
        log_path = tmp_path / "daemon.log"
        with daemon(config, log_path) as proc:

            def listening() -> bool:
                try:
                    scrape(port)
                except OSError:
                    return False
                return True

            wait_until(listening, 60, "the server")
            before = scrape(port)
            for name in ("chainwatch_reorgs_total", "chainwatch_provider_reconnects_total",
                         "chainwatch_events_stored_total", "chainwatch_head_block"):  # fmt: skip
                assert (name, (("chain", CHAIN),)) in before, name
            assert value(before, "chainwatch_subscribers") == 0

            async def subscriber() -> list[dict[str, object]]:
                async with connect(f"ws://127.0.0.1:{port}/") as ws:
                    request = {"jsonrpc": "2.0", "id": 1, "method": "chainwatch_subscribe"}
                    await ws.send(json.dumps(request))
                    json.loads(await ws.recv())
                    during = scrape(port)
                    assert value(during, "chainwatch_subscribers") == 1
                    await asyncio.to_thread(traffic.run, 10)
                    got: list[dict[str, object]] = []
                    async with asyncio.timeout(60):
                        while len(got) < 10:
                            got.append(json.loads(await ws.recv())["params"]["result"])
                    return got

            got = asyncio.run(subscriber())
            head = anvil.w3.eth.block_number
            wait_until(
                lambda: value(scrape(port), "chainwatch_head_block", chain=CHAIN) >= head,
                60,
                "the head in /metrics",
            )
            anvil.reorg(2)
            wait_until(
                lambda: value(scrape(port), "chainwatch_reorgs_total", chain=CHAIN) >= 1,
                60,
                "the reorg in /metrics",
            )
            after = scrape(port)
            stop(proc, log_path)

    stored = value(after, "chainwatch_events_stored_total", chain=CHAIN)
    assert stored - value(before, "chainwatch_events_stored_total", chain=CHAIN) >= 10
    assert value(after, "chainwatch_head_block", chain=CHAIN) >= head
    delivered = value(after, "chainwatch_deliveries_total")
    assert delivered - value(before, "chainwatch_deliveries_total") >= len(got)
    assert value(after, "chainwatch_subscribers") == 0
    cursors = [c for c in (g["cursor"] for g in got) if isinstance(c, int)]
    assert value(after, "chainwatch_change_cursor") >= max(cursors)
    assert value(after, "chainwatch_delivery_latency_seconds_count") >= 1
    assert value(after, "chainwatch_slow_consumer_closes_total") == 0
