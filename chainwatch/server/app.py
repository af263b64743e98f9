"""The downstream WebSocket server: JSON-RPC subscriptions to what the daemon stores.

The I/O layer only: connections and the HTTP checks before their upgrade. Each connection's
messages go to its :class:`chainwatch.core.protocol.Session` (pure), whose replies and
subscription changes this module applies. The server holds the parts that feed connections:
the :class:`~chainwatch.server.hub.Hub` (pure; who wants what), the
:class:`~chainwatch.server.fanout.Fanout` (committed changes from the log to the hub, and the
touched clients back here to be written once), and the :class:`~chainwatch.server.replay.Replay`
(what a subscriber resuming with ``since`` missed).

Tasks: websockets owns one handler task per connection (and waits for them when it closes);
everything else - the fan-out task and the closing of slow consumers - belongs to the
``asyncio.TaskGroup`` of :meth:`Server.serve_forever`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import http
import ipaddress
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from chainwatch.config import Settings
from chainwatch.core import rpc
from chainwatch.core.model import Change
from chainwatch.core.protocol import (
    Outcome,
    Session,
    SessionLimits,
    Subscribe,
    Unsubscribe,
)
from chainwatch.core.sink import ChainStatus
from chainwatch.errors import Busy, ChainwatchError
from chainwatch.metrics import CONTENT_TYPE, Metrics
from chainwatch.server import http as httpcheck
from chainwatch.server.admission import Admission
from chainwatch.server.catalog import build_catalogs, contracts_json
from chainwatch.server.connection import Client, Connection
from chainwatch.server.fanout import Fanout
from chainwatch.server.hub import Hub, Recipient
from chainwatch.server.limits import Gate, LogLimiter, Refusal, file_budget
from chainwatch.server.replay import Replay
from chainwatch.store.tokens import TokenCache

if TYPE_CHECKING:
    from chainwatch.store import Store

__all__ = ["Server"]

log = logging.getLogger("chainwatch.server")

# The transport's write buffer above which a client counts as not keeping up: frames then wait
# in the client's own bounded queue.
WRITE_LIMIT = 64 * 1024
CLOSE_TIMEOUT = 5.0
# On SIGTERM, seconds the fan-out may take to route what is queued before clients are closed.
DRAIN_QUEUE = 2.0


class Server:
    """Serves ``[server]`` of ``settings``; an :class:`chainwatch.core.sink.EventSink`.

    ``stats`` counts malformed input and limit hits (``parse_error``, ``invalid_request``,
    ``method_not_found``, ``invalid_params``, ``rate_limited``, ``subscription_limit``,
    ``message_too_big``, ``slow_consumer``, ``unauthorized``, ``forbidden_origin``,
    ``not_found``, ``too_many_connections``), and connections and notifications.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        statuses: Mapping[int, ChainStatus],
        metrics: Metrics | None = None,
        health: Callable[[], tuple[int, bytes]] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        # /healthz: the daemon's own view (a gateway's comes from the store), else the chains'.
        self._health = health or (lambda: httpcheck.healthz(self.statuses))
        self.store = store
        self.statuses = statuses
        self.stats: collections.Counter[str] = collections.Counter()
        s = settings.server
        self._catalogs = build_catalogs(settings)
        self._contracts = contracts_json(settings, self._catalogs)
        self._chains = [(c.name, c.chain_id) for c in settings.chains]
        self._limits = SessionLimits(
            s.max_subscriptions,
            s.max_requests_per_second,
            max_batch_items=s.max_batch_items,
            max_batch_reply_bytes=s.max_batch_reply_bytes,
        )
        self._gate = Gate(s, s.max_connections)
        self._refusal_log = LogLimiter()
        self._hub = Hub(buffer_limit=s.max_queue_messages)
        tokens = TokenCache(store)
        self._fanout = Fanout(
            self._hub,
            tokens,
            statuses,
            metrics=self.metrics,
            stats=self.stats,
            chain_names={c.chain_id: c.name for c in settings.chains},
            flush=self._flush,
            overloaded=self._overloaded,
        )
        self._replay = Replay(
            store,
            self._hub,
            tokens,
            Admission(s.max_replays, s.max_queued_replays),
            head_number=self._fanout.head_number,
            stats=self.stats,
            flush=self._flush,
            close_client=self._close_client,
        )
        self._oldest_cursor = 0  # the oldest cursor a subscription may resume from
        self._ws: WsServer | None = None
        self._port: int | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._clients: set[Client] = set()

    # --- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind ``[server] host:port`` (port 0: any free port) and accept connections; events
        flow to them once :meth:`serve_forever` runs. Raises ChainwatchError if the port cannot
        be bound."""
        s = self.settings.server
        self._hub.last_cursor = await asyncio.to_thread(self.store.last_cursor)
        await self.refresh_oldest_cursor()
        for chain_id, head in (await asyncio.to_thread(self.store.heads)).items():
            status = self.statuses.get(chain_id)
            if status is not None and status.head is None:
                status.head = head  # what a gateway knows before the log brings a new one
        tls = self._tls_context()
        self._gate.max_connections, backlog = file_budget(s.max_connections)
        connection_class = type(
            "ServerConnection",
            (Connection,),
            {"owner": self, "max_header_bytes": s.max_header_bytes},
        )
        ws_logger = logging.getLogger("chainwatch.server.ws")
        if not any(isinstance(f, httpcheck.RedactTokens) for f in ws_logger.filters):
            ws_logger.addFilter(httpcheck.RedactTokens())
        if ws_logger.level == logging.NOTSET:
            # The library logs every refused handshake and closed connection at INFO: a client
            # in a loop would fill the log. Refusals are logged here, at a bounded rate.
            ws_logger.setLevel(logging.WARNING)
        try:
            self._ws = await serve(
                self._handle,
                s.host,
                s.port,
                compression="deflate" if s.compression else None,
                process_request=self._process_request,
                server_header="chainwatch",
                max_size=s.max_message_size,
                write_limit=WRITE_LIMIT,
                close_timeout=CLOSE_TIMEOUT,
                logger=ws_logger,
                create_connection=connection_class,
                ssl=tls,
                backlog=backlog,
                open_timeout=s.handshake_timeout,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ChainwatchError(f"cannot listen on {s.host}:{s.port}: {reason}") from None
        self._port = int(self._ws.sockets[0].getsockname()[1])
        scheme = "wss" if tls is not None else "ws"
        log.info(
            "serving %s://%s:%d (up to %d connections)",
            scheme, s.host, self.port, self._gate.max_connections,
        )  # fmt: skip
        if not s.tokens and not _loopback(s.host):
            log.warning(
                "listening on %s without tokens: anyone who can reach this port can subscribe "
                "(set [server] tokens)",
                s.host,
            )

    def _tls_context(self) -> ssl.SSLContext | None:
        s = self.settings.server
        if s.tls_cert is None or s.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(s.tls_cert, s.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ChainwatchError(
                f"cannot load the TLS certificate {s.tls_cert} and key {s.tls_key}: {exc}"
            ) from None
        return context

    @property
    def last_cursor(self) -> int:
        """The last cursor routed (where a reader of the log continues from)."""
        return self._hub.last_cursor

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`; still known once closed)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    async def serve_forever(self) -> None:
        """Accept connections and fan out events until cancelled (or :meth:`close`).

        Cancelled (SIGTERM), it drains: stops accepting, lets the fan-out route what is
        queued (up to DRAIN_QUEUE seconds), writes what each client has pending, then closes
        every connection with 1012 (service restart, RFC 6455 section 7.4.1 as registered
        by IANA) so that clients reconnect - to another gateway - with their cursor.
        """
        if self._ws is None:
            await self.start()
        ws = self._ws
        assert ws is not None
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            fanout = tasks.create_task(self._fanout.run(), name="server fan-out")
            try:
                if not ws.is_serving():
                    await ws.start_serving()
                await ws.wait_closed()
            except asyncio.CancelledError:
                await self._drain(ws)
                raise
            finally:
                self._tasks = None
                fanout.cancel()

    async def _drain(self, ws: WsServer) -> None:
        ws.server.close()  # stop accepting first: new clients go to another gateway
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_QUEUE):
                await self._fanout.join()
        self._flush(list(self._clients))
        ws.close(code=CloseCode.SERVICE_RESTART, reason="service restart")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT + 1):
                await ws.wait_closed()

    async def close(self) -> None:
        """Stop accepting, close every connection (1001, going away) and wait until they are
        gone."""
        if self._ws is not None:
            self._ws.close()
            await self._ws.wait_closed()

    # --- the change log ---------------------------------------------------------------------

    def on_changes(self, changes: Sequence[Change]) -> None:
        """Committed changes, in cursor order (the in-process hand-off, or a gateway's read of
        the log): queued for the fan-out task."""
        self._fanout.on_changes(changes)

    async def refresh_oldest_cursor(self) -> None:
        """Read again the oldest cursor a subscription may resume from (after a pruning)."""
        self._oldest_cursor = await asyncio.to_thread(self.store.oldest_cursor)

    def _overloaded(self) -> None:
        """The fan-out task is this far behind (the store stalls token lookups) and dropped what
        waited: close every client (1013), who resume from the log with their cursor."""
        log.error("fan-out queue full: closing %d client(s) to resume later", len(self._clients))
        for client in list(self._clients):
            self._close_client(client, CloseCode.TRY_AGAIN_LATER, "server overloaded")

    def _flush(self, recipients: Iterable[Recipient]) -> None:
        for client in cast("Iterable[Client]", recipients):
            if not client.flush():
                self._close_client(client, CloseCode.TRY_AGAIN_LATER, "slow consumer")

    def _close_client(self, client: Client, code: int, reason: str) -> None:
        if client.closing:
            return
        self._hub.drop(client)
        client.close_queue()
        if reason == "slow consumer":
            self.stats["slow_consumer"] += 1
            self.metrics.slow_consumer_closes.inc()
            log.warning("closing a slow consumer from %s", client.conn.peer)
        if self._tasks is not None:
            self._tasks.create_task(self._close_connection(client.conn, code, reason))
        else:
            client.conn.transport.abort()

    async def _close_connection(self, conn: Connection, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT + 1):
                await conn.close(code, reason)
        except TimeoutError:
            conn.transport.abort()

    # --- connections --------------------------------------------------------------------------

    def connection_made(self, connection: Connection) -> Refusal | None:
        self.stats["connections"] += 1
        return self._gate.admit(connection.peer)

    def handshake_done(self, connection: Connection) -> None:
        self._gate.handshake_done(connection.peer)

    def connection_lost(self, connection: Connection) -> None:
        self._gate.release(connection.peer, connection.handshaking)

    def refused(self, connection: Connection, refusal: Refusal) -> None:
        """A connection turned away before its request was read (see :mod:`.limits`)."""
        self.stats[refusal.stat] += 1
        self._log_refusal(refusal.status, "-", connection.peer, refusal.reason)

    def misbehaved(self, connection: Connection, reason: str) -> None:
        """A client broke a rule of the protocol's use (a ping flood): closed with 1008."""
        self.stats["policy_violation"] += 1
        self._log_refusal(1008, "-", connection.peer, reason)
        if connection.client is not None:
            self._close_client(connection.client, CloseCode.POLICY_VIOLATION, reason)
        else:
            connection.transport.abort()

    def _log_refusal(self, status: int, path: str, peer: str, reason: str) -> None:
        left_out = self._refusal_log.allow(time.monotonic())
        if left_out is None:
            return
        more = f" ({left_out} more refusals not logged)" if left_out else ""
        log.info("refused %s %s from %s: %s%s", status, path, peer, reason, more)

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """The HTTP checks before the upgrade (see :mod:`chainwatch.server.http`)."""
        assert isinstance(conn, Connection)
        s = self.settings.server
        if request.method not in ("GET", "HEAD"):
            response = self._refuse(conn, request, 405, "only GET")
            response.headers["Allow"] = "GET, HEAD"
            return response
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            status, body = self._health()
            return _response(status, body, "application/json", head=request.method == "HEAD")
        if path == "/metrics":
            body = self.metrics.render()
            return _response(200, body, CONTENT_TYPE, head=request.method == "HEAD")
        if request.method != "GET":
            return self._refuse(conn, request, 405, "a WebSocket handshake is a GET")
        if self._gate.over_per_ip(conn.peer):
            return self._refuse(conn, request, 429, "too many connections from this address")
        origins = request.headers.get_all("Origin")
        authorizations = request.headers.get_all("Authorization")
        if len(origins) > 1 or len(authorizations) > 1:
            return self._refuse(conn, request, 400, "repeated Origin or Authorization header")
        if s.tokens:
            authorization = authorizations[0] if authorizations else None
            token = httpcheck.request_token(request.path, authorization)
            if not httpcheck.token_valid(token, s.tokens):
                response = self._refuse(conn, request, 401, "a valid token is required")
                response.headers["WWW-Authenticate"] = 'Bearer realm="chainwatch"'
                return response
        origin = origins[0] if origins else None
        if not httpcheck.origin_allowed(origin, s.allowed_origins):
            return self._refuse(conn, request, 403, "origin not allowed")
        chain_id = httpcheck.chain_of_path(request.path, self._chains)
        if chain_id is None:
            known = ", ".join("/" + name for name, _ in self._chains)
            return self._refuse(conn, request, 404, f"no such chain (serving {known})")
        conn.chain_id = chain_id
        return None

    def _refuse(self, conn: Connection, request: Request, status: int, text: str) -> Response:
        name = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden_origin",
            404: "not_found",
            405: "method_not_allowed",
            429: "too_many_connections",
        }[status]
        self.stats[name] += 1
        path = httpcheck.path_for_log(request.path, self._chains)
        self._log_refusal(status, path, conn.peer, text)
        return _response(status, (text + "\n").encode(), "text/plain; charset=utf-8")

    async def _handle(self, conn: ServerConnection) -> None:
        assert isinstance(conn, Connection)
        if conn.request is not None:
            # The handshake's headers are not read again; they are about 2 KiB a connection.
            conn.request.headers.clear()
        s = self.settings.server
        client = Client(
            conn,
            max_messages=s.max_queue_messages,
            max_bytes=s.max_queue_bytes,
            framed=not s.compression,
        )
        conn.client = client
        self._clients.add(client)
        self.metrics.subscribers.inc()
        loop = asyncio.get_running_loop()
        session = Session(
            conn.chain_id,
            self._catalogs,
            head_number=self._fanout.head_number,
            contracts=self._contracts,
            limits=self._limits,
            now=loop.time(),
            budget=self._gate.budget(conn.peer),
            oldest_cursor=lambda: self._oldest_cursor,
        )
        try:
            async for message in conn:
                try:
                    outcome = session.receive(message, loop.time())
                except Exception:  # our bug, never the client's input: keep the connection
                    log.exception("internal error handling a request")
                    self.stats["internal_error"] += 1
                    reply = rpc.encode_error(None, rpc.INTERNAL_ERROR, "internal error")
                    outcome = Outcome(reply=reply)
                await self._apply(client, outcome)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                self.stats["message_too_big"] += 1
        except Busy as exc:  # no room for its replay: it resumes later with since
            self.stats["replay_refused"] += 1
            self._hub.drop(client)
            client.close_queue()
            # Closed here, before the handler returns (which would close with 1000).
            await self._close_connection(conn, CloseCode.TRY_AGAIN_LATER, str(exc))
        finally:
            session.close()
            self.metrics.subscribers.dec()
            self._clients.discard(client)
            self._hub.drop(client)
            client.close_queue()

    async def _apply(self, client: Client, outcome: Outcome) -> None:
        for name in outcome.counts:
            self.stats[name] += 1
        if outcome.reply is not None:
            client.push_reply(outcome.reply)
            self._flush((client,))
        for effect in outcome.effects:
            if client.closing:
                return
            if isinstance(effect, Unsubscribe):
                self._hub.unsubscribe(client, effect.id)
            elif isinstance(effect, Subscribe):
                sub = self._hub.subscribe(client, effect.id, effect.spec)
                self.stats["subscriptions"] += 1
                if sub.buffer is not None:
                    # Raises Busy when no replay slot will be free: see _handle.
                    await self._replay.run(client, sub, self._hub.last_cursor)


def _response(status: int, body: bytes, content_type: str, head: bool = False) -> Response:
    """A plain response; to a HEAD request, without its body (RFC 9110 section 9.3.2)."""
    code = http.HTTPStatus(status)
    headers = Headers(
        [
            ("Date", _http_date()),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(code.value, code.phrase, headers, b"" if head else body)


def _http_date() -> str:
    return email.utils.formatdate(usegmt=True)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
