"""``chainwatch tail`` against a real server: filters, output, and resuming after a drop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chainwatch.errors import ChainwatchError
from chainwatch.tail import build_filter, run_tail
from tests.server.conftest import BOB, CAROL, TIMEOUT, Harness


class Lines:
    """A text stream that tells when enough lines were written."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = ""
        self._changed = asyncio.Event()

    def write(self, text: str) -> int:
        *done, self._partial = (self._partial + text).split("\n")
        self.lines += done
        self._changed.set()
        return len(text)

    def flush(self) -> None:
        pass

    async def wait_for(self, count: int) -> list[str]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.lines) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.lines[:count]


@contextlib.asynccontextmanager
async def tailing(url: str, **options: Any) -> AsyncIterator[tuple[Lines, Lines]]:
    out, err = Lines(), Lines()
    args: dict[str, Any] = {
        "token": None, "contracts": (), "events": (), "wheres": (), "finality": None,
        "since": None, "json_output": True,
    }  # fmt: skip
    args.update(options)
    task = asyncio.create_task(run_tail(url, **args, out=out, err=err, retry_delay=0.05))  # type: ignore[arg-type]
    try:
        yield out, err
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_build_filter() -> None:
    assert build_filter() == {}
    assert build_filter(["Token"], ["Transfer"], ["value >= 10", "to == 0xab"], "confirmed", 7) == {
        "contracts": ["Token"],
        "events": ["Transfer"],
        "where": [["value", ">=", "10"], ["to", "==", "0xab"]],
        "finality": "confirmed",
        "since": 7,
    }
    with pytest.raises(ChainwatchError, match="--where 'value'"):
        build_filter(wheres=["value"])


async def test_prints_matching_events_as_json(harness: Harness) -> None:
    dev = harness.dev
    async with (
        harness.serving(),
        tailing(harness.url, contracts=["Token"], wheres=["value >= 5"], since=0) as (out, _),
    ):
        dev.transfers(1, 5)
        dev.transfers(10)
        first, second = [json.loads(line) for line in await out.wait_for(2)]
    assert [first["args"]["value"], second["args"]["value"]] == ["5", "10"]
    assert first["contract"] == "Token" and first["event"] == "Transfer"
    assert "confirmations" in first


async def test_readable_lines(harness: Harness) -> None:
    dev = harness.dev
    async with harness.serving(), tailing(harness.url, json_output=False, since=0) as (out, _):
        dev.block([dev.transfer_log(7, to=CAROL)])
        (line,) = await out.wait_for(1)
    assert line.startswith("#1.0 Token.Transfer ")
    assert "value=7" in line and CAROL in line


async def test_resumes_after_the_server_restarts(harness: Harness) -> None:
    dev = harness.dev
    async with harness.serving() as first, tailing(harness.url, since=0) as (out, err):
        dev.transfers(1, 2)
        await out.wait_for(2)
        await first.close()  # the daemon goes away ...
        dev.transfers(3)  # ... while blocks keep being stored
        dev.block([dev.transfer_log(4, to=BOB)])
        await err.wait_for(2)  # subscribed, then the connection lost
        async with harness.serving(port=first.port):  # ... and comes back
            dev.transfers(5)
            lines = await out.wait_for(5)
    values = [json.loads(line)["args"]["value"] for line in lines]
    assert values == ["1", "2", "3", "4", "5"]  # nothing missed, nothing twice
    assert err.lines[0].startswith("chainwatch tail: subscribed to ws://127.0.0.1:")
    assert "reconnecting from cursor 2" in err.lines[1]


async def test_refusals_are_one_line_errors(tmp_path: Any) -> None:
    harness = Harness(tmp_path, tokens=("right",))
    try:
        async with harness.serving():
            with pytest.raises(ChainwatchError, match="HTTP 401: a valid token is required"):
                await run_tail(harness.url, "wrong", (), (), (), None, None, True)
            with pytest.raises(ChainwatchError, match="refused the subscription: invalid params"):
                await run_tail(harness.url, "right", ["Nope"], (), (), None, None, True)
            with pytest.raises(ChainwatchError, match="HTTP 404"):
                await run_tail(harness.url + "/nope", "right", (), (), (), None, None, True)
    finally:
        harness.close()
