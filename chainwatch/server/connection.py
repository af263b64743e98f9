"""One downstream connection: its outbound queue, and the websockets connection it writes to.

Writes never wait. Frames for a client collect in its pending list while the server routes a
batch, then leave in one ``transport.write`` (one system call for a block's worth of
notifications). When the transport's buffer is above its high-water mark asyncio calls
``pause_writing``: pending frames stay queued until ``resume_writing``, and if the queue grows
past ``max_queue_messages`` or ``max_queue_bytes`` meanwhile, the client is a slow consumer and
the server closes it (1013) - no other client ever waits for it.

With permessage-deflate on (``[server] compression``), each client has its own compressor, so
messages go through the websockets protocol one by one (``send_text`` then ``send_data``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, ClassVar, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.protocol import OPEN

from chainwatch.server.frames import text_frame

__all__ = ["SEND_BUFFER", "Client", "Connection"]

SEND_BUFFER = 128 * 1024


class _Owner(Protocol):
    def connection_made(self, connection: Connection) -> None: ...

    def connection_lost(self, connection: Connection) -> None: ...


class Connection(ServerConnection):
    """A websockets server connection that tells its owner when it opens, closes and drains.

    The server makes a subclass per instance with ``owner`` set (see ``Server.start``).
    """

    # Slots, not instance attributes: four more keys in the websockets connection's __dict__
    # would unshare its keys and cost about 1.3 KiB a connection.
    __slots__ = ("chain_id", "client", "peer", "write_paused")

    owner: ClassVar[_Owner]
    client: Client | None
    chain_id: int
    peer: str
    write_paused: bool

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.client = None
        self.chain_id = 0
        self.write_paused = False
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # A fixed kernel send buffer, rather than one autotuned up to several MiB: it bounds
            # the kernel memory a stalled client can pin, and lets the server notice it after a
            # few hundred KiB instead of after megabytes (Linux doubles the value given).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        peername: Any = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        self.owner.connection_made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.client is not None:
            self.client.closed()
        self.owner.connection_lost(self)

    def data_received(self, data: bytes) -> None:
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
                if self.messages > self.max_messages or self.nbytes > self.max_bytes:
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
