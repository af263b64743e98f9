"""A TCP proxy between the daemon and anvil that injects the faults real providers have.

``FaultProxy(target_port)`` listens on ``127.0.0.1:0`` and forwards every connection to
``127.0.0.1:target_port``. It runs its own event loop in its own thread, so synchronous tests
(which drive anvil synchronously) command it with plain method calls:

- ``drop_all()`` closes every connection now (the client sees an abnormal closure, 1006);
- ``stall(seconds=None)`` stops forwarding both ways without closing, until ``resume()`` or for
  ``seconds``;
- ``cut_mid_frame()`` forwards only the first part of the next server-to-client WebSocket frame,
  then closes that connection;
- ``refuse(True)`` accepts new connections and closes them at once; ``refuse(False)`` ends it;
- ``getlogs_limit(max_blocks)`` answers an ``eth_getLogs`` request spanning more than
  ``max_blocks`` blocks itself, with the Infura-style refusal ``-32005 ... Try with this block
  range [0xA, 0xB].``, instead of forwarding it (``None`` forwards everything again);
- ``swallow_logs(count)`` forwards none of the next ``count`` log notifications, as a provider
  whose connection goes between a block's head and its logs;
- ``chaos(seed, rate)`` injects drops, stalls, cuts and refusals at random moments, ``rate``
  faults a second on average, reproducibly for one ``seed``; ``calm()`` stops it.

``faults()`` counts what was injected. WebSocket traffic is parsed (RFC 6455 framing, in
:mod:`tests.chaos.wsframe`) once the opening handshake is through; the proxy removes
``Sec-WebSocket-Extensions`` from the client's handshake so that no compression hides the
JSON-RPC it reads. A connection that does not open with a WebSocket upgrade is forwarded as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections import Counter
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from tests.chaos.wsframe import (
    TEXT,
    Frame,
    FrameError,
    FrameReader,
    MessageAssembler,
    encode_frame,
)

HOST = "127.0.0.1"
# Block tags with a number the proxy knows without asking the node.
_KNOWN_TAGS = {"earliest": 0}
_HEADER_END = b"\r\n\r\n"
_MAX_HEADER = 64 * 1024


# --- the pure part: what to answer instead of forwarding ---------------------------------------


def _block_number(value: object) -> int | None:
    if isinstance(value, str):
        if value in _KNOWN_TAGS:
            return _KNOWN_TAGS[value]
        if value.startswith("0x"):
            try:
                return int(value, 16)
            except ValueError:
                return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def getlogs_refusal(message: bytes, max_blocks: int) -> bytes | None:
    """The error a provider limited to ``max_blocks`` per ``eth_getLogs`` gives ``message``.

    ``None`` when the message is to be forwarded: not a JSON-RPC ``eth_getLogs`` request, a batch,
    a ``blockHash`` query, a range within the limit, or one with a tag such as ``latest`` whose
    number only the node knows. The suggested range starts at ``fromBlock`` and spans
    ``max_blocks`` blocks, as Infura's does.
    """
    try:
        request = json.loads(message)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(request, dict) or request.get("method") != "eth_getLogs":
        return None
    params = request.get("params")
    if not isinstance(params, list) or not params or not isinstance(params[0], dict):
        return None
    query = params[0]
    if "blockHash" in query:
        return None
    first = _block_number(query.get("fromBlock", "latest"))
    last = _block_number(query.get("toBlock", "latest"))
    if first is None or last is None or last - first + 1 <= max_blocks:
        return None
    suggested = f"[{hex(first)}, {hex(first + max_blocks - 1)}]"
    error = {
        "jsonrpc": "2.0",
        "id": request.get("id"),
        "error": {
            "code": -32005,
            "message": "query returned more than 10000 results. "
            f"Try with this block range {suggested}.",
        },
    }
    return json.dumps(error, separators=(",", ":")).encode()


def strip_extensions(handshake: bytes) -> bytes:
    """The client's opening handshake without ``Sec-WebSocket-Extensions`` (RFC 6455 9.1)."""
    head, _, rest = handshake.partition(_HEADER_END)
    lines = [
        line
        for line in head.split(b"\r\n")
        if not line.lower().startswith(b"sec-websocket-extensions:")
    ]
    return b"\r\n".join(lines) + _HEADER_END + rest


def is_upgrade(handshake: bytes) -> bool:
    head = handshake.partition(_HEADER_END)[0].lower()
    return b"\r\nupgrade: websocket" in head


# --- the I/O part -------------------------------------------------------------------------------


class _Link:
    """One client connection and its connection to the target."""

    def __init__(
        self, proxy: FaultProxy, client: asyncio.StreamWriter, server: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.websocket = False

    def abort(self) -> None:
        for writer in (self.client, self.server):
            writer.transport.abort()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        await self.proxy._flowing.wait()
        writer.write(data)
        await writer.drain()

    async def client_to_server(self, reader: asyncio.StreamReader) -> None:
        head = await _read_head(reader)
        if not is_upgrade(head):
            await self._write(self.server, head)
            await self._raw(reader, self.server)
            return
        self.websocket = True
        await self._write(self.server, strip_extensions(head))
        frames = FrameReader()
        messages = MessageAssembler()
        while data := await reader.read(65536):
            for frame in frames.receive_data(data):
                message = messages.add(frame)
                if message is None:
                    continue
                opcode, payload, parts = message
                limit = self.proxy._getlogs_limit
                answer = None
                if opcode == TEXT and limit is not None:
                    answer = getlogs_refusal(payload, limit)
                if answer is not None:
                    self.proxy._count("getlogs_refused")
                    await self._write(self.client, encode_frame(TEXT, answer))
                else:
                    await self._write(self.server, b"".join(f.raw for f in parts))

    async def server_to_client(self, reader: asyncio.StreamReader) -> None:
        head = await _read_head(reader)
        head, _, rest = head.partition(_HEADER_END)
        await self._write(self.client, head + _HEADER_END)
        if not head.startswith(b"HTTP/1.1 101"):
            await self._write(self.client, rest)
            await self._raw(reader, self.client)
            return
        frames = FrameReader()
        data = rest
        while True:
            for frame in frames.receive_data(data):
                # Whole frames only, so that a frame the proxy answers with never lands inside one.
                if self.proxy._take_cut():
                    await self._write(self.client, frame.raw[: max(1, len(frame.raw) // 2)])
                    self.abort()
                    return
                if self.proxy._swallow(frame):
                    continue
                corrupted = self.proxy._corrupt(frame)
                await self._write(self.client, corrupted if corrupted is not None else frame.raw)
            data = await reader.read(65536)
            if not data:
                return

    async def _raw(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self._write(writer, data)


def _is_log_notification(frame: Frame) -> bool:
    return (
        frame.opcode == TEXT
        and frame.fin
        and b'"eth_subscription"' in frame.payload
        and b'"logIndex"' in frame.payload
    )


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    """Bytes up to the end of an HTTP head (or whatever came before EOF or the size cap)."""
    data = b""
    while _HEADER_END not in data and len(data) < _MAX_HEADER:
        chunk = await reader.read(65536)
        if not chunk:
            break
        data += chunk
    return data


class FaultProxy:
    """``with FaultProxy(anvil_port) as proxy:`` then point the client at ``proxy.url``."""

    def __init__(self, target_port: int, *, command_timeout: float = 10.0) -> None:
        self.target_port = target_port
        self.command_timeout = command_timeout
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: dict[_Link, asyncio.Task[None]] = {}
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        # Touched only on the proxy's loop.
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._resume_handle: asyncio.TimerHandle | None = None
        self._refusing = False
        self._cut_pending = False
        self._corrupt_pending = 0
        self._swallow_pending = 0
        self._getlogs_limit: int | None = None
        self._chaos: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    # -- lifetime

    def start(self) -> FaultProxy:
        self._thread.start()
        self._run(self._start())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.command_timeout)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- commands (any thread)

    def drop_all(self) -> int:
        """Close every connection now; returns how many were closed."""
        return self._run(self._drop_all())

    def stall(self, seconds: float | None = None) -> None:
        """Forward nothing either way, until ``resume()`` or for ``seconds``."""
        self._run(self._stall(seconds))

    def resume(self) -> None:
        self._run(self._resume())

    def cut_mid_frame(self) -> None:
        """Cut the next server-to-client frame in the middle, then close its connection."""
        self._run(self._set("_cut_pending", True))

    def refuse(self, refusing: bool = True) -> None:
        """Accept new connections and close them at once (``False``: serve them again)."""
        self._run(self._refuse(refusing))

    def getlogs_limit(self, max_blocks: int | None) -> None:
        """Refuse ``eth_getLogs`` over ``max_blocks`` blocks as a provider does; ``None``: off."""
        if max_blocks is not None and max_blocks < 1:
            raise ValueError("max_blocks must be at least 1")
        self._run(self._set("_getlogs_limit", max_blocks))

    def chaos(self, seed: int, rate: float) -> None:
        """Inject random faults, ``rate`` a second on average, until ``calm()``."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._run(self._start_chaos(seed, rate))

    def calm(self) -> None:
        """Stop random faults and undo any stall or refusal in force."""
        self._run(self._calm())

    def corrupt_logs(self, count: int) -> None:
        """Spoil the ``data`` of the next ``count`` log notifications to any client (bad hex),
        as a buggy provider would: the log is then unreadable where it should have been."""
        self._run(self._set("_corrupt_pending", count))

    def swallow_logs(self, count: int) -> None:
        """Forward none of the next ``count`` log notifications to any client."""
        self._run(self._set("_swallow_pending", count))

    def inject(self, *texts: str) -> int:
        """Send each text as a frame to every WebSocket client, as if the target had sent it
        (between whole frames); returns how many frames were sent."""
        return int(self._run(self._inject(texts)))

    def faults(self) -> dict[str, int]:
        """How many of each fault were injected (and ``connections`` accepted)."""
        with self._lock:
            return dict(self._counts)

    def connections(self) -> int:
        """Connections open now."""
        return self._run(self._open_links())

    # -- on the proxy's loop

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.command_timeout)

    def _count(self, fault: str) -> None:
        with self._lock:
            self._counts[fault] += 1

    async def _set(self, name: str, value: object) -> None:
        setattr(self, name, value)

    async def _inject(self, texts: tuple[str, ...]) -> int:
        sent = 0
        for link in list(self._links):
            if link.websocket:
                for text in texts:
                    await link._write(link.client, encode_frame(TEXT, text.encode()))
                    self._count("injected")
                    sent += 1
        return sent

    async def _open_links(self) -> int:
        return len(self._links)

    def _swallow(self, frame: Frame) -> bool:
        if not self._swallow_pending or not _is_log_notification(frame):
            return False
        self._swallow_pending -= 1
        self._count("swallowed_log")
        return True

    def _corrupt(self, frame: Frame) -> bytes | None:
        if not self._corrupt_pending or not _is_log_notification(frame):
            return None
        spoiled = frame.payload.replace(b'"data":"0x', b'"data":"0xzz', 1)
        if spoiled == frame.payload:
            return None
        self._corrupt_pending -= 1
        self._count("corrupted_log")
        return encode_frame(TEXT, spoiled)

    def _take_cut(self) -> bool:
        if not self._cut_pending:
            return False
        self._cut_pending = False
        self._count("cut")
        return True

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._calm()
        if self._server is not None:
            self._server.close()
        await self._drop_all(count=False)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            self._count("refused")
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._count("connections")
        link = _Link(self, writer, up_writer)
        task = asyncio.current_task()
        assert task is not None
        self._links[link] = task
        try:
            # Either direction ending (EOF, an error, a fault) ends the link.
            pumps = [
                asyncio.ensure_future(link.client_to_server(reader)),
                asyncio.ensure_future(link.server_to_client(up_reader)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, FrameError, asyncio.CancelledError):
            pass
        finally:
            self._links.pop(link, None)
            link.abort()

    async def _drop_all(self, count: bool = True) -> int:
        links = list(self._links.items())
        for link, task in links:
            link.abort()
            task.cancel()
        await asyncio.gather(*(task for _, task in links), return_exceptions=True)
        if count:
            self._count("drop")
        return len(links)

    async def _stall(self, seconds: float | None) -> None:
        self._count("stall")
        self._flowing.clear()
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        if seconds is not None:
            self._resume_handle = self._loop.call_later(seconds, self._flowing.set)

    async def _resume(self) -> None:
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        self._flowing.set()

    async def _refuse(self, refusing: bool) -> None:
        self._refusing = refusing

    async def _start_chaos(self, seed: int, rate: float) -> None:
        await self._calm()
        self._chaos = asyncio.ensure_future(self._chaos_loop(random.Random(seed), rate))

    async def _calm(self) -> None:
        if self._chaos is not None:
            self._chaos.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._chaos
            self._chaos = None
        self._refusing = False
        self._cut_pending = False
        await self._resume()

    async def _chaos_loop(self, rng: random.Random, rate: float) -> None:
        while True:
            await asyncio.sleep(rng.expovariate(rate))
            fault = rng.choice(("drop", "stall", "cut", "refuse"))
            if fault == "drop":
                await self._drop_all()
            elif fault == "stall":
                await self._stall(rng.uniform(0.2, 3.0))
            elif fault == "cut":
                self._cut_pending = True
            else:
                # Refusing new connections is only felt with the current ones gone.
                self._count("refuse")
                self._refusing = True
                await self._drop_all()
                await asyncio.sleep(rng.uniform(0.5, 3.0))
                self._refusing = False
