"""One WebSocket connection to a node provider, speaking JSON-RPC 2.0 and ``eth_subscribe``.

The connection only moves messages: parsing lives in :mod:`chainwatch.core.rpc`. A reader task,
owned by the connection and awaited when it closes, matches responses to requests by id and
queues subscription notifications. Errors of the websockets library are converted here into
``ProviderUnreachable``; malformed messages from the provider are counted, logged (rate-limited)
and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from types import TracebackType
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from chainwatch.config import redact_url
from chainwatch.core import rpc
from chainwatch.errors import (
    ChainwatchError,
    ProviderUnreachable,
    RemoteProtocolError,
    RequestTimeout,
    RpcErrorResponse,
)

log = logging.getLogger("chainwatch.provider")

# getLogs answers can be large; a frame above this is a misbehaving provider.
MAX_FRAME = 256 * 1024 * 1024
# Notifications waiting for the ingest loop. When full, the connection is recycled: a gap fill
# from the checkpoint on reconnect recovers everything, so nothing is lost by dropping it.
MAX_PENDING_NOTIFICATIONS = 100_000


class _LogLimiter:
    """At most one log line per ``interval`` seconds per key; counts what it suppressed."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def warn(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last.get(key, -1e9) >= self.interval:
            extra = self.suppressed.pop(key, 0)
            self.last[key] = now
            log.warning(msg + (f" (+{extra} more)" if extra else ""), *args)
        else:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1


class ProviderConnection:
    """``async with ProviderConnection(url) as conn``: requests and notifications of one socket."""

    def __init__(
        self,
        url: str,
        *,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        request_timeout: float = 30.0,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.shown = redact_url(url)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.malformed = 0
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._notes: asyncio.Queue[rpc.Notification | BaseException] = asyncio.Queue(
            MAX_PENDING_NOTIFICATIONS
        )
        self._reader: asyncio.Task[None] | None = None
        self._closed_error: BaseException | None = None
        self._limiter = _LogLimiter()

    async def __aenter__(self) -> ProviderConnection:
        try:
            self._ws = await connect(
                self.url,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                max_size=MAX_FRAME,
                max_queue=None,
                compression=None,
                proxy=None,
            )
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            raise ProviderUnreachable(f"{self.shown}: cannot connect: {_describe(exc)}") from None
        self._reader = asyncio.create_task(self._read(), name=f"provider-reader {self.shown}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._fail_all(ProviderUnreachable(f"{self.shown}: connection closed"))

    async def request(
        self, method: str, params: list[Any], *, answer_within: float | None = None
    ) -> Any:
        """Send a request and await its result; RpcErrorResponse for an error answer,
        RequestTimeout after ``answer_within`` seconds (default: the request timeout)."""
        timeout = self.request_timeout if answer_within is None else answer_within
        if self._closed_error is not None:
            raise self._as_unreachable(self._closed_error)
        assert self._ws is not None, "use `async with`"
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._ws.send(rpc.encode_request(request_id, method, params))
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RequestTimeout(
                f"{self.shown}: no answer to {method} within {timeout:g} s"
            ) from None
        except websockets.exceptions.WebSocketException as exc:
            raise ProviderUnreachable(f"{self.shown}: {_describe(exc)}") from None
        finally:
            self._pending.pop(request_id, None)

    async def subscribe(self, params: list[Any]) -> str:
        sub_id = await self.request("eth_subscribe", params)
        if not isinstance(sub_id, str):
            raise RemoteProtocolError(f"{self.shown}: eth_subscribe returned {sub_id!r:.60}")
        return sub_id

    async def notification(self) -> rpc.Notification:
        """The next subscription notification; ProviderUnreachable once the socket is gone."""
        return self._unwrap(await self._notes.get())

    def notification_nowait(self) -> rpc.Notification | None:
        """The next notification if one is waiting, else None; ProviderUnreachable once the
        socket is gone. A burst is drained without a timer per notification."""
        try:
            item = self._notes.get_nowait()
        except asyncio.QueueEmpty:
            return None
        return self._unwrap(item)

    def _unwrap(self, item: rpc.Notification | BaseException) -> rpc.Notification:
        if isinstance(item, BaseException):
            self._notes.put_nowait(item)  # every later call fails the same way
            raise self._as_unreachable(item)
        return item

    # --- the reader ---------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                self._dispatch(message)
        except websockets.exceptions.ConnectionClosed as exc:
            self._closed(exc)
        except Exception as exc:  # a bug or a library error: the connection is unusable
            log.exception("%s: reader failed", self.shown)
            self._closed(exc)
        else:
            self._closed(ProviderUnreachable(f"{self.shown}: connection closed by the provider"))

    def _dispatch(self, message: str | bytes) -> None:
        try:
            msg = rpc.parse_incoming(message)
        except RemoteProtocolError as exc:
            self.malformed += 1
            self._limiter.warn("malformed", "%s: skipped a malformed message: %s", self.shown, exc)
            return
        if isinstance(msg, rpc.Notification):
            try:
                self._notes.put_nowait(msg)
            except asyncio.QueueFull:
                self._closed(ProviderUnreachable(f"{self.shown}: too many pending notifications"))
                if self._ws is not None:
                    self._ws.transport.abort()
            return
        future = self._pending.get(msg.id) if isinstance(msg.id, int) else None
        if future is None or future.done():
            self.malformed += 1
            self._limiter.warn(
                "unmatched", "%s: skipped a reply to no request (id %.40r)", self.shown, msg.id
            )
            return
        if msg.error is not None:
            future.set_exception(
                RpcErrorResponse(
                    msg.error["code"], str(msg.error.get("message", "")), msg.error.get("data")
                )
            )
        else:
            future.set_result(msg.result)

    def _closed(self, exc: BaseException) -> None:
        if self._closed_error is None:
            self._closed_error = exc
            self._fail_all(exc)
            with contextlib.suppress(asyncio.QueueFull):
                self._notes.put_nowait(exc)
            if self._notes.full():  # make room so the consumer learns of the close
                self._notes.get_nowait()
                self._notes.put_nowait(exc)

    def _fail_all(self, exc: BaseException) -> None:
        err = self._as_unreachable(exc)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(err)
        self._pending.clear()

    def _as_unreachable(self, exc: BaseException) -> ChainwatchError:
        if isinstance(exc, ChainwatchError):
            return exc
        return ProviderUnreachable(f"{self.shown}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        return f"HTTP {exc.response.status_code} on upgrade"
    if isinstance(exc, websockets.exceptions.ConnectionClosed):
        if exc.rcvd is not None:
            return f"connection closed ({exc.rcvd.code} {exc.rcvd.reason})".rstrip()
        return "connection lost"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, TimeoutError):
        return "timed out"
    # Library messages may quote the URL; keep only the exception's kind.
    return type(exc).__name__
