"""A downstream `chainwatch_subscribe` client that drops its own connection now and then, and
when the daemon goes away, and each time resumes with `since` = the last id it saw.

It applies statuses as a dashboard would (the last status of each id wins), so that at the end
its set of live events can be compared with the store's: the promise says they are equal.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

Key = tuple[str, int]


class Follower:
    def __init__(self, url: str, *, drop_every: int = 7) -> None:
        self.url = url
        self.drop_every = drop_every
        self.events: dict[int, tuple[Key, str]] = {}  # id -> (block hash, log index), status
        self.last_id = 0
        self.connections = 0
        self.received = 0
        self.errors: list[str] = []  # connection failures (the daemon restarting, say)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name="follower", daemon=True)

    def start(self) -> Follower:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def live(self) -> set[Key]:
        with self._lock:
            return {key for key, status in self.events.values() if status != "removed"}

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # shown by the test that finds the follower behind
            self.errors.append(f"stopped by {exc!r}")
            raise

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._session()
            except (OSError, WebSocketException, TimeoutError) as exc:
                self.errors.append(repr(exc))  # the daemon restarting, say: try again
                await asyncio.sleep(0.2)

    async def _session(self) -> None:
        async with connect(self.url, open_timeout=5) as ws:
            self.connections += 1
            request = {"jsonrpc": "2.0", "id": 1, "method": "chainwatch_subscribe"}
            await ws.send(json.dumps({**request, "params": [{"since": self.last_id}]}))
            seen_here = 0
            while not self._stopping.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue  # look at the stop flag now and then
                message = json.loads(text)
                if message.get("id") == 1 and "error" in message:
                    raise AssertionError(f"subscribe refused: {message['error']}")
                if message.get("method") != "eth_subscription":
                    continue
                if self._apply(message["params"]["result"]):
                    seen_here += 1  # only progress counts: a resume resends recent removals
                if seen_here and seen_here % self.drop_every == 0:
                    # Drop the connection as a network would (no closing handshake: with
                    # messages unread, a polite close waits out its timeout); resume with since.
                    ws.transport.abort()
                    return

    def _apply(self, event: dict[str, Any]) -> bool:
        """Record an event's latest status; True if its id is beyond what was seen."""
        with self._lock:
            beyond = int(event["id"]) > self.last_id
            self.received += 1
            key = (str(event["block_hash"]).lower(), int(event["log_index"]))
            self.events[int(event["id"])] = (key, str(event["status"]))
            self.last_id = max(self.last_id, int(event["id"]))
            return beyond
