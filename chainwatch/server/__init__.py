"""The downstream WebSocket server: filtered alerts to subscribers, safe to expose.

JSON-RPC 2.0 over WebSocket, node-compatible (``eth_subscribe`` newHeads/logs) plus chainwatch's
own decoded-event subscriptions (``chainwatch_subscribe``); see
:mod:`chainwatch.core.protocol` for the methods and :mod:`chainwatch.server.http` for the
handshake checks.
"""

from chainwatch.server.app import Server

__all__ = ["Server"]
