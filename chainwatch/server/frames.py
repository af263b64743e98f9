"""Notifications as WebSocket frames, built once and shared by every subscriber.

A notification is ``{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":ID,
"result":RESULT}}``. RESULT is the same for every subscriber of an event, so it is encoded once
(:class:`Payload`); only ID differs, and it is a per-subscription constant (``prefix``). A
server's frames are not masked (RFC 6455 section 5.1), so a frame is ``header + prefix +
result + suffix`` where the header depends only on the total length: with the fixed-length ids
of :func:`chainwatch.core.protocol.new_subscription_id`, one header serves every subscriber.
Delivering to a subscriber is then four references appended to its pending list, and a whole
block's notifications leave in one ``transport.write``. The RESULT of a ``chainwatch_subscribe``
notification is the alert body every channel shares (:func:`chainwatch.core.alert.alert_body`).

No I/O here: these are bytes in, bytes out.
"""

from __future__ import annotations

import struct

from chainwatch.core import rpc
from chainwatch.core.model import JSON, Head, Log

__all__ = [
    "Payload",
    "head_result",
    "log_result",
    "notification_parts",
    "text_frame",
    "text_frame_header",
]

_OP_TEXT_FIN = 0x81  # FIN + opcode 0x1 (text), RFC 6455 section 5.2


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked, final text frame of ``length`` payload bytes (RFC 6455 5.2)."""
    if length < 126:
        return bytes((_OP_TEXT_FIN, length))
    if length < 65536:
        return struct.pack("!BBH", _OP_TEXT_FIN, 126, length)
    return struct.pack("!BBQ", _OP_TEXT_FIN, 127, length)


def text_frame(data: bytes) -> bytes:
    """A whole unmasked text frame (for replies, which are sent once)."""
    return text_frame_header(len(data)) + data


def notification_parts(subscription: str) -> tuple[bytes, bytes]:
    """The bytes before and after RESULT in a notification for ``subscription``; the same as
    :func:`chainwatch.core.rpc.encode_notification` produces, by construction."""
    before, after = rpc.encode_notification(subscription, "\0").split("\0")
    return before.encode(), after.encode()


class Payload:
    """An encoded RESULT and the frame header for it with a prefix of a given length."""

    __slots__ = ("data", "header", "prefix_len", "suffix_len")

    def __init__(self, data: bytes, prefix_len: int = 104, suffix_len: int = 2) -> None:
        self.data = data
        self.prefix_len = prefix_len
        self.suffix_len = suffix_len
        self.header = text_frame_header(prefix_len + len(data) + suffix_len)

    def header_for(self, prefix_len: int) -> bytes:
        if prefix_len == self.prefix_len:
            return self.header
        return text_frame_header(prefix_len + len(self.data) + self.suffix_len)


# --- results -------------------------------------------------------------------------------


def head_result(head: Head) -> bytes:
    """A newHeads result: the node's own header object as the daemon received it."""
    raw: dict[str, JSON] = head.raw or {
        "number": hex(head.number),
        "hash": head.hash,
        "parentHash": head.parent_hash,
        "timestamp": hex(head.timestamp),
    }
    return rpc.dumps_bytes(raw)


def log_result(log: Log, removed: bool) -> bytes:
    """A logs result in the node's format; ``removed`` true when a reorg orphaned the log."""
    obj = log.to_rpc()
    obj["removed"] = removed
    return rpc.dumps_bytes(obj)
