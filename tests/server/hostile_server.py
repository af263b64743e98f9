"""The server under attack in the hostile-load tests, in a process of its own so that its
memory and its log are measured alone: ``python -m tests.server.hostile_server SPEC_JSON``.

SPEC: ``dir`` (store and settings), ``events`` (stored before it listens, for replays),
``server`` (``[server]`` settings). It prints ``{"port": N}`` once listening, then mines a
block with one transfer every ``tick`` seconds - the trickle the canary receives - until it
is terminated (SIGTERM: the server closes, the process exits 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from tests.server.conftest import ALICE, BOB, Harness


def prefill(harness: Harness, events: int, per_block: int = 200) -> None:
    dev = harness.dev
    while events > 0:
        n = min(per_block, events)
        dev.block([dev.transfer_log(i + 1, ALICE, BOB, index=i) for i in range(n)])
        events -= n


async def serve(spec: dict[str, Any]) -> None:
    harness = Harness(Path(spec["dir"]), **spec.get("server", {}))
    prefill(harness, spec.get("events", 0))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with harness.serving() as server:
            print(json.dumps({"port": server.port}), flush=True)
            tick = spec.get("tick", 0.1)
            while not stop.is_set():
                harness.dev.transfers(1)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tick):
                        await stop.wait()
            print(json.dumps({"stats": dict(server.stats)}), flush=True)
    finally:
        harness.close()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
