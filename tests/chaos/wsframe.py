"""RFC 6455 framing for the fault proxy, with no I/O: bytes in, frames out.

The proxy has to see WebSocket frames to cut one in half (section 5.2, base framing) and to read
the JSON-RPC requests a client sends (client frames are masked, section 5.3; a message may be
fragmented into continuation frames, section 5.4, and its payload length may take 7, 16 or 64
bits). ``FrameReader`` is fed whatever the socket gave and returns every frame completed so far,
each with the exact bytes it arrived as, so a frame is forwarded untouched.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Opcodes, RFC 6455 section 5.2.
CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA


class FrameError(ValueError):
    """The byte stream is not RFC 6455 framing: the peer broke the protocol."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: header fields, the unmasked payload, and the bytes it was read from."""

    fin: bool
    opcode: int
    payload: bytes
    raw: bytes

    @property
    def is_control(self) -> bool:
        """Close, ping and pong (section 5.5) may arrive between the fragments of a message."""
        return self.opcode >= CLOSE


def unmask(payload: bytes, key: bytes) -> bytes:
    """Apply (or remove: it is an XOR) the 4-byte masking key, section 5.3."""
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    """One frame; ``mask`` (4 bytes) for a client's frame, none for a server's."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if mask is None:
        return bytes(head) + payload
    if len(mask) != 4:
        raise ValueError("a masking key is 4 bytes")
    return bytes(head) + mask + unmask(payload, mask)


class FrameReader:
    """Incremental parser of one direction of a WebSocket connection.

    ``receive_data(data)`` returns the frames completed by ``data`` (possibly none); a frame
    split across any number of reads is returned once, whole.
    """

    def __init__(self, *, max_payload: int = 1 << 30) -> None:
        self.max_payload = max_payload
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while (frame := self._next_frame()) is not None:
            frames.append(frame)
        return frames

    def _next_frame(self) -> Frame | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        if first & 0x70:
            # RSV bits: the proxy strips Sec-WebSocket-Extensions, so no extension may set them.
            raise FrameError(f"reserved bits set in {first:#04x}")
        opcode = first & 0x0F
        length = second & 0x7F
        offset = 2
        if length == 126:
            if len(buf) < 4:
                return None
            (length,) = struct.unpack_from("!H", buf, 2)
            offset = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            (length,) = struct.unpack_from("!Q", buf, 2)
            if length >> 63:
                raise FrameError("64-bit payload length with its most significant bit set")
            offset = 10
        if length > self.max_payload:
            raise FrameError(f"payload of {length} bytes is over {self.max_payload}")
        masked = bool(second & 0x80)
        key = b""
        if masked:
            if len(buf) < offset + 4:
                return None
            key = bytes(buf[offset : offset + 4])
            offset += 4
        end = offset + length
        if len(buf) < end:
            return None
        payload = bytes(buf[offset:end])
        raw = bytes(buf[:end])
        del buf[:end]
        return Frame(
            fin=bool(first & 0x80),
            opcode=opcode,
            payload=unmask(payload, key) if masked else payload,
            raw=raw,
        )


class MessageAssembler:
    """Groups data frames into messages (section 5.4); control frames pass straight through.

    ``add(frame)`` returns ``(opcode, payload, frames)`` when ``frame`` completes a message or is
    a control frame, ``None`` while a fragmented message is still arriving.
    """

    def __init__(self) -> None:
        self._opcode: int | None = None
        self._frames: list[Frame] = []

    def add(self, frame: Frame) -> tuple[int, bytes, list[Frame]] | None:
        if frame.is_control:
            return frame.opcode, frame.payload, [frame]
        if frame.opcode == CONTINUATION:
            if self._opcode is None:
                raise FrameError("continuation frame with no message started")
        elif self._opcode is not None:
            raise FrameError("new data frame inside a fragmented message")
        else:
            self._opcode = frame.opcode
        self._frames.append(frame)
        if not frame.fin:
            return None
        opcode, frames = self._opcode, self._frames
        self._opcode, self._frames = None, []
        return opcode, b"".join(f.payload for f in frames), frames
