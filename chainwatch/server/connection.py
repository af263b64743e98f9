"""One downstream connection: its outbound queue, and the websockets connection it writes to.

Writes never wait. Frames for a client collect in its pending list while the server routes a
batch, then leave in one ``transport.write`` (one system call for a block's worth of
notifications). When the transport's buffer is above its high-water mark asyncio calls
``pause_writing``: pending frames stay queued until ``resume_writing``, and if the queue grows
past ``max_queue_messages`` or ``max_queue_bytes`` meanwhile, the client is a slow consumer and
the server closes it (1013) - no other client ever waits for it.

With permessage-deflate on (``[server] compression``), each client has its own compressor, so
messages go through the websockets protocol one by one (``send_text`` then ``send_data``).

Before the handshake ends, a connection counts the bytes of its request (at most
``max_header_bytes``); one refused as soon as it is accepted (see
:mod:`chainwatch.server.limits`) gets a short HTTP response and no parsing. A client that does
not read cannot make pongs pile up: while the transport is paused, only the latest ping is
answered (RFC 6455 section 5.5.3 allows it), and its pings are rate-limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
from typing import Any, ClassVar, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.protocol import Event as WsEvent

from chainwatch.core.ratelimit import TokenBucket
from chainwatch.server.frames import text_frame
from chainwatch.server.limits import PING_BURST, PINGS_PER_SECOND, Refusal

__all__ = ["SEND_BUFFER", "Client", "Connection"]

SEND_BUFFER = 128 * 1024
# How long a refused connection stays open after its response, for the peer to read it (a close
# with its request unread could reset the connection before the response arrives).
REFUSAL_LINGER = 1.0
_PONG = b"\x8a"  # the first byte of a serialized pong frame: FIN + opcode 0xA (RFC 6455 5.2)


class _Owner(Protocol):
    def connection_made(self, connection: Connection) -> Refusal | None: ...

    def handshake_done(self, connection: Connection) -> None: ...

    def refused(self, connection: Connection, refusal: Refusal) -> None: ...

    def misbehaved(self, connection: Connection, reason: str) -> None: ...

    def connection_lost(self, connection: Connection) -> None: ...


class Connection(ServerConnection):
    """A websockets server connection that tells its owner when it opens, closes and drains.

    The server makes a subclass per instance with ``owner`` set (see ``Server.start``).
    """

    # Slots, not instance attributes: more keys in the websockets connection's __dict__ would
    # unshare its keys and cost about 1.3 KiB a connection.
    __slots__ = ("chain_id", "client", "handshaking", "held_pong", "peer", "pings",
                 "request_bytes", "turned_away", "write_paused")  # fmt: skip

    owner: ClassVar[_Owner]
    max_header_bytes: ClassVar[int] = 32 * 1024
    client: Client | None
    chain_id: int
    peer: str
    write_paused: bool
    handshaking: bool  # accepted, its request not read yet
    request_bytes: int
    turned_away: bool
    held_pong: bytes | None
    pings: TokenBucket | None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.client = None
        self.chain_id = 0
        self.write_paused = False
        self.handshaking = True
        self.request_bytes = 0
        self.turned_away = False
        self.held_pong = None
        self.pings = None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # A fixed kernel send buffer, rather than one autotuned up to several MiB: it bounds
            # the kernel memory a stalled client can pin, and lets the server notice it after a
            # few hundred KiB instead of after megabytes (Linux doubles the value given).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        peername: Any = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        refusal = self.owner.connection_made(self)
        if refusal is not None:
            self.turn_away(refusal)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.client is not None:
            self.client.closed()
        self.owner.connection_lost(self)

    def turn_away(self, refusal: Refusal) -> None:
        """Refuse before reading the request: a plain HTTP response, then nothing is read.
        Over the connection limit there is no response: the descriptor is freed at once."""
        self.turned_away = True
        self.owner.refused(self, refusal)
        transport = self.transport
        if not refusal.respond:
            transport.abort()
            return
        body = refusal.reason.encode() + b"\n"
        phrase = http.HTTPStatus(refusal.status).phrase
        transport.write(
            f"HTTP/1.1 {refusal.status} {phrase}\r\nConnection: close\r\nRetry-After: 5\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode() + body
        )  # fmt: skip
        with contextlib.suppress(OSError, RuntimeError):
            if transport.can_write_eof():
                transport.write_eof()
        asyncio.get_running_loop().call_later(REFUSAL_LINGER, transport.abort)

    def process_event(self, event: WsEvent) -> None:
        super().process_event(event)
        if self.handshaking and self.request is not None:
            self.handshaking = False
            self.owner.handshake_done(self)
        elif isinstance(event, Frame) and event.opcode is Opcode.PING and not self.turned_away:
            if self.pings is None:
                self.pings = TokenBucket(PINGS_PER_SECOND, PING_BURST, now=self.loop.time())
            if not self.pings.take(self.loop.time()):
                # Read nothing more from it: the rest of the flood costs nothing.
                self.turned_away = True
                self.transport.pause_reading()
                self.owner.misbehaved(self, "too many pings")

    def send_data(self) -> None:
        """Write what the protocol has to send, with pongs coalesced: only the latest of a
        batch is written, and none while the transport is paused (the latest is held until
        it resumes)."""
        chunks = self.protocol.data_to_send()
        pongs = [c for c in chunks if c[:1] == _PONG]
        if not pongs:
            self._write_chunks(chunks)
            return
        self._write_chunks([c for c in chunks if c[:1] != _PONG])
        if self.write_paused:
            self.held_pong = pongs[-1]
        else:
            self.transport.write(pongs[-1])

    def _write_chunks(self, chunks: list[bytes]) -> None:
        for data in chunks:
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():  # the protocol's end: half-close
                with contextlib.suppress(Exception):
                    self.transport.write_eof()
            else:
                self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.turned_away:
            return  # refused: its request is not read
        if self.handshaking:
            self.request_bytes += len(data)
            if self.request_bytes > self.max_header_bytes:
                self.turn_away(Refusal(431, "request header too large", "header_too_large"))
                return
        super().data_received(data)
        if self.client is not None and self.protocol.state is not OPEN:
            # The client started the closing handshake: stop queueing and wake whatever waits
            # to write (a replay), so that the handler returns and the server can close TCP.
            self.client.close_queue()

    def pause_writing(self) -> None:
        super().pause_writing()
        self.write_paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.write_paused = False
        if self.held_pong is not None:
            pong, self.held_pong = self.held_pong, None
            self.transport.write(pong)
        if self.client is not None:
            self.client.flush()


class Client:
    """The outbound side of one subscriber: a bounded queue in front of its transport."""

    __slots__ = ("chain_id", "closing", "conn", "framed", "max_bytes", "max_messages",
                 "messages", "nbytes", "overflowed", "pending", "waiters")  # fmt: skip

    def __init__(
        self, conn: Connection, *, max_messages: int, max_bytes: int, framed: bool = True
    ) -> None:
        self.conn = conn
        self.chain_id = conn.chain_id
        self.framed = framed  # False with compression: whole messages, framed by websockets
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.pending: list[bytes] = []
        self.messages = 0
        self.nbytes = 0
        self.overflowed = False
        self.closing = False
        self.waiters: list[asyncio.Future[None]] | None = None

    # --- the hub's side ---------------------------------------------------------------------

    def push(self, header: bytes, prefix: bytes, data: bytes, suffix: bytes) -> None:
        """Queue one notification (not written until :meth:`flush`)."""
        if self.closing:
            return
        if self.framed:
            self.pending += (header, prefix, data, suffix)
        else:
            self.pending.append(prefix + data + suffix)
        self.messages += 1
        self.nbytes += len(header) + len(prefix) + len(data) + len(suffix)

    def overflow(self) -> None:
        self.overflowed = True

    # --- the server's side ------------------------------------------------------------------

    def push_reply(self, text: str) -> None:
        """Queue a JSON-RPC response."""
        if self.closing:
            return
        data = text.encode()
        self.pending.append(text_frame(data) if self.framed else data)
        self.messages += 1
        self.nbytes += len(data)

    def flush(self) -> bool:
        """Write what is pending if the transport takes it now. Returns False when the client
        is over its queue limits (a slow consumer, for the server to close)."""
        if self.closing:
            return True
        conn = self.conn
        if self.pending:
            if conn.protocol.state is not OPEN:
                self._discard()
            elif conn.write_paused:
                # What the transport holds counts too (a reply written before it paused).
                held = self.nbytes + conn.transport.get_write_buffer_size()
                if self.messages > self.max_messages or held > self.max_bytes:
                    self.overflowed = True
            else:
                if self.framed:
                    conn.transport.write(b"".join(self.pending))
                else:
                    for message in self.pending:
                        conn.protocol.send_text(message)
                    conn.send_data()
                self._discard()
        if self.overflowed:
            return False
        if self.waiters and not conn.write_paused and not self.pending:
            self._wake()
        return True

    async def writable(self) -> None:
        """Wait until everything queued is handed to the transport and it takes more (or the
        connection is gone)."""
        if self.closing or (not self.pending and not self.conn.write_paused):
            return
        if self.conn.protocol.state is not OPEN:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self.waiters is None:
            self.waiters = []
        self.waiters.append(waiter)
        await waiter

    def close_queue(self) -> None:
        """Stop queueing: the connection is being closed."""
        self.closing = True
        self._discard()
        self._wake()

    def closed(self) -> None:
        """The TCP connection is gone."""
        self.close_queue()

    def _discard(self) -> None:
        self.pending = []
        self.messages = 0
        self.nbytes = 0

    def _wake(self) -> None:
        waiters, self.waiters = self.waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)
