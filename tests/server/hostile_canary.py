"""The canary of the hostile-load tests, in a process of its own so that the attackers' work in
the test process never delays it: ``python -m tests.server.hostile_canary URL TOKEN``.

It subscribes to every event, prints ``ready`` once subscribed, then asks ``eth_blockNumber``
every 50 ms and receives the trickle until SIGTERM; it then prints ``{"latencies": [...],
"notifications": N}`` (an answer still awaited counts with the time it has waited).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

from websockets.asyncio.client import connect

PACE = 0.05


async def run(url: str, token: str) -> dict[str, object]:
    latencies: list[float] = []
    pending: dict[int, float] = {}
    notifications = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(url, additional_headers=headers, open_timeout=10) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": "sub", "method": "chainwatch_subscribe",
                                  "params": [{}]}))  # fmt: skip

        async def read() -> None:
            nonlocal notifications
            async for message in ws:
                reply = json.loads(message)
                if reply.get("method") == "eth_subscription":
                    notifications += 1
                elif reply.get("id") == "sub":
                    print("ready", flush=True)
                elif isinstance(reply.get("id"), int):
                    latencies.append(time.monotonic() - pending.pop(reply["id"]))

        reader = asyncio.create_task(read())
        n = 0
        while not stop.is_set():
            pending[n] = time.monotonic()
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": n, "method": "eth_blockNumber"}))
            n += 1
            try:
                async with asyncio.timeout(PACE):  # the canary's pace, or the end
                    await stop.wait()
            except TimeoutError:
                pass
        reader.cancel()
    now = time.monotonic()
    latencies += [now - sent for sent in pending.values() if now - sent > PACE * 2]
    return {"latencies": latencies, "notifications": notifications}


def main() -> None:
    print(json.dumps(asyncio.run(run(sys.argv[1], sys.argv[2]))), flush=True)


if __name__ == "__main__":
    main()
