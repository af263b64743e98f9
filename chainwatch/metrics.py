"""Prometheus metrics of one chainwatch process (the ``prometheus-client`` library).

Each process serves these at ``GET /metrics`` (``run`` and ``serve`` on the server's port,
``ingest`` on ``--http-port``). Every :class:`Metrics` has a registry of its own, so that
several daemons in one process (tests) never mix their counts.

- ``chainwatch_head_block{chain}`` (gauge): the newest canonical head stored (ingest) or read
  from the change log (gateway).
- ``chainwatch_events_stored_total{chain}`` (counter): events this process stored.
- ``chainwatch_reorgs_total{chain}`` (counter): reorgs this process repaired.
- ``chainwatch_provider_reconnects_total{chain}`` (counter): provider sessions that ended and
  were retried.
- ``chainwatch_leader{chain}`` (gauge): 1 where this process leads the chain's ingest.
- ``chainwatch_change_cursor`` (gauge): the last change-log cursor written or served.
- ``chainwatch_subscribers`` (gauge): downstream WebSocket connections.
- ``chainwatch_deliveries_total`` (counter): notifications queued to subscribers.
- ``chainwatch_slow_consumer_closes_total`` (counter): subscribers closed for reading too slowly.
- ``chainwatch_delivery_latency_seconds`` (histogram): from the commit of a change to its frames
  written to the subscribers' sockets (per batch of changes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from chainwatch.errors import ChainwatchError

__all__ = ["CONTENT_TYPE", "Metrics", "start_http"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The metrics of one process; :meth:`render` is the text a scrape gets."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.head_block = Gauge(
            "chainwatch_head_block", "Newest canonical head", ["chain"], registry=registry
        )
        self.events_stored = Counter(
            "chainwatch_events_stored", "Events stored", ["chain"], registry=registry
        )
        self.reorgs = Counter("chainwatch_reorgs", "Reorgs repaired", ["chain"], registry=registry)
        self.provider_reconnects = Counter(
            "chainwatch_provider_reconnects",
            "Provider sessions that ended and were retried",
            ["chain"],
            registry=registry,
        )
        self.leader = Gauge(
            "chainwatch_leader",
            "1 where this process leads the chain",
            ["chain"],
            registry=registry,
        )
        self.change_cursor = Gauge(
            "chainwatch_change_cursor",
            "Last change-log cursor written or served",
            registry=registry,
        )
        self.subscribers = Gauge(
            "chainwatch_subscribers", "Downstream WebSocket connections", registry=registry
        )
        self.deliveries = Counter(
            "chainwatch_deliveries", "Notifications queued to subscribers", registry=registry
        )
        self.slow_consumer_closes = Counter(
            "chainwatch_slow_consumer_closes",
            "Subscribers closed for reading too slowly",
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "chainwatch_delivery_latency_seconds",
            "From the commit of a change to its frames written to the subscribers",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news


def start_http(
    host: str, port: int, metrics: Metrics, health: Callable[[], tuple[int, bytes]]
) -> WSGIServer:
    """Serve ``GET /metrics`` and ``GET /healthz`` on ``host:port`` from a thread of its own
    (the standard library's WSGI server: a process with no WebSocket server, ``ingest``).
    Returns the server; ``shutdown()`` and ``server_close()`` it at exit."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body, status, kind = metrics.render(), 200, CONTENT_TYPE
        elif path == "/healthz":
            status, body = health()
            kind = "application/json"
        else:
            status, body, kind = 404, b"not found\n", "text/plain; charset=utf-8"
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "")
        start_response(
            f"{status} {reason}", [("Content-Type", kind), ("Content-Length", str(len(body)))]
        )
        return [body]

    try:
        server = make_server(host, port, app, _ThreadingServer, _QuietHandler)
    except OSError as exc:
        raise ChainwatchError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
