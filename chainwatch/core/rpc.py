"""JSON-RPC 2.0 messages (https://www.jsonrpc.org/specification), with no I/O.

Both sides of chainwatch speak it: as a client to node providers (requests out, responses and
``eth_subscription`` notifications in) and as a server to downstream subscribers (requests in,
responses and notifications out). This module turns text into typed messages and back; the
adapters move the text.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from dataclasses import dataclass
from typing import Any

import orjson

from chainwatch.errors import RemoteProtocolError

JSON = Any

# Error codes: JSON-RPC 2.0 section 5.1, and EIP-1474 for -32005.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
LIMIT_EXCEEDED = -32005

RequestId = int | str | None


@dataclass(frozen=True, slots=True)
class Request:
    """A call or, when ``is_notification``, a notification without an id."""

    method: str
    params: list[JSON] | dict[str, JSON]
    id: RequestId = None
    is_notification: bool = False


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to a request: ``result`` or ``error`` (code, message, data)."""

    id: RequestId
    result: JSON = None
    error: dict[str, JSON] | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """An ``eth_subscription`` push: ``params.subscription`` and ``params.result``."""

    subscription: str
    result: JSON


def dumps(obj: JSON) -> str:
    """Compact JSON text, as sent on the wire."""
    return dumps_bytes(obj).decode()


def dumps_bytes(obj: JSON) -> bytes:
    """Compact JSON as UTF-8, at C speed: orjson, which is several times faster than the json
    module on the hot paths (fan-out frames, stored args). What orjson refuses and the json
    module takes (an integer above 64 bits, a lone surrogate) goes through the json module."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(obj, separators=(",", ":")).encode()


# Nesting: text that could nest deeper than MAX_JSON_DEPTH is measured before it is parsed.
# The json module (client requests, files) recurses in C once per nesting level, checked
# against the interpreter's recursion limit. Some libraries raise that limit to 100,000 at
# import (py_ecc, which web3 brings): a peer sending 64 KiB of "[" would then overflow the C
# stack and kill the process. The daemon brings the limit back under SAFE_RECURSION_LIMIT.
MAX_JSON_DEPTH = 256
SAFE_RECURSION_LIMIT = 10_000

# One step of the nesting scan: what is not a bracket (runs of other characters, and whole
# strings with their escapes), then the run of brackets that follows. Every quantifier is
# possessive and the scan is anchored where the last step ended, so no character is read twice:
# a string that never closes ends the scan there (the parser fails at it), where a searching
# pattern would try again from every later quote - quadratic in a message of escaped quotes.
_STEP = re.compile(r'(?:[^"\[\]{}]++|"(?:[^"\\]++|\\.)*+")*+([\[\]{}]*+)', re.DOTALL)
_LEVEL = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting(text: str, max_depth: int, max_containers: int | None = None) -> tuple[int, int]:
    """How deep ``text`` nests and how many arrays and objects it opens, in one pass.

    For JSON text the answer is exact. For other text it is at least what a parser reads
    before it fails (the scan stops where the text stops being JSON: an unmatched closing
    bracket, a string that never closes). The scan also stops once the depth passes
    ``max_depth`` or the count passes ``max_containers``, so an answer above a limit says
    "over it", not by how much. Time is linear in ``len(text)``: the one pattern above reads
    each character once, and runs of brackets are summed at C speed.
    """
    containers_limit = len(text) if max_containers is None else max_containers
    depth = deepest = containers = 0
    pos, end = 0, len(text)
    step, level = _STEP.match, _LEVEL.__getitem__
    while pos < end:
        match = step(text, pos)
        assert match is not None  # every part of the pattern is optional
        run = match[1]
        pos = match.end()
        if not run:
            break  # the end, or a string that never closes
        levels = list(itertools.accumulate(map(level, run), initial=depth))
        lowest = min(levels)
        if lowest < 0:  # a bracket closes what was never opened: the parser stops there
            levels = levels[: levels.index(lowest)]
        deepest = max(deepest, *levels)
        containers += run.count("[") + run.count("{")
        depth = levels[-1]
        if lowest < 0 or deepest > max_depth or containers > containers_limit:
            break
    return deepest, containers


def nesting_error(text: str, max_depth: int, max_containers: int | None = None) -> str | None:
    """Why ``text`` nests too deep or holds too many arrays and objects to be parsed, or
    None. The one guard of both paths: node messages (:func:`loads`) and client requests
    (:mod:`chainwatch.core.protocol`)."""
    opens = text.count("[") + text.count("{")  # at C speed: most messages stop here
    if opens <= max_depth and (max_containers is None or opens <= max_containers):
        return None
    depth, containers = nesting(text, max_depth, max_containers)
    if depth > max_depth:
        return f"JSON nested deeper than {max_depth} levels"
    if max_containers is not None and containers > max_containers:
        return f"JSON with more than {max_containers} arrays and objects"
    return None


def loads(text: str | bytes) -> JSON:
    """Parse a node's message: no NaN/Infinity, nesting at most MAX_JSON_DEPTH.

    Raises ValueError (or UnicodeDecodeError) for anything that is not such JSON. orjson
    parses (three times faster than the json module; it never recurses on the C stack and
    refuses NaN and Infinity). It reads an integer above 64 bits as a float, which is harmless
    here: every quantity a node sends is a hex string. Client requests, whose filters may hold
    such integers, are parsed by the json module (:mod:`chainwatch.core.protocol`).
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    too_deep = nesting_error(text, MAX_JSON_DEPTH)
    if too_deep is not None:
        raise ValueError(too_deep)
    return orjson.loads(text)  # orjson.JSONDecodeError is a ValueError


def cap_recursion_limit() -> None:
    """Bring the recursion limit back under SAFE_RECURSION_LIMIT if an import raised it, so
    that parsing a peer's deeply nested JSON fails cleanly (the daemon calls this at start)."""
    if sys.getrecursionlimit() > SAFE_RECURSION_LIMIT:
        sys.setrecursionlimit(SAFE_RECURSION_LIMIT)


# --- client side -----------------------------------------------------------------------------


def encode_request(request_id: int, method: str, params: list[JSON]) -> str:
    return dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def parse_incoming(text: str | bytes) -> Response | Notification:
    """Parse one message a node sent us: a response or a subscription notification.

    Raises RemoteProtocolError for anything else (bad JSON, a batch we never sent, a
    notification of another method, a response without ``result`` or ``error``).
    """
    try:
        msg = loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nesting deeper than the parser recurses is the peer's fault too.
        raise RemoteProtocolError(f"invalid JSON from peer: {exc}") from None
    if not isinstance(msg, dict):
        raise RemoteProtocolError(f"expected a JSON object, got {type(msg).__name__}")
    if msg.get("jsonrpc") != "2.0":
        raise RemoteProtocolError("missing jsonrpc: 2.0")
    if "method" in msg:
        if msg["method"] != "eth_subscription":
            raise RemoteProtocolError(f"unexpected notification method {msg['method']!r:.60}")
        params = msg.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("subscription"), str):
            raise RemoteProtocolError("eth_subscription without params.subscription")
        if "result" not in params:
            raise RemoteProtocolError("eth_subscription without params.result")
        return Notification(params["subscription"], params["result"])
    if "id" not in msg:
        raise RemoteProtocolError("message is neither a response nor a notification")
    if "error" in msg:
        error = msg["error"]
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            raise RemoteProtocolError("error member is not an error object")
        return Response(msg["id"], error=error)
    if "result" not in msg:
        raise RemoteProtocolError("response without result or error")
    return Response(msg["id"], result=msg["result"])


# --- server side -----------------------------------------------------------------------------


def error_object(code: int, message: str, data: JSON = None) -> dict[str, JSON]:
    err: dict[str, JSON] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return err


def encode_result(request_id: RequestId, result: JSON) -> str:
    return dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


def encode_error(request_id: RequestId, code: int, message: str, data: JSON = None) -> str:
    return dumps({"jsonrpc": "2.0", "id": request_id, "error": error_object(code, message, data)})


def encode_notification(subscription: str, result_json: str) -> str:
    """An ``eth_subscription`` envelope around an already encoded result (encode once)."""
    return (
        '{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":'
        + json.dumps(subscription)
        + ',"result":'
        + result_json
        + "}}"
    )


class InvalidRequest(RemoteProtocolError, ValueError):
    """A single request in a client's message is not valid JSON-RPC 2.0 (answered -32600)."""

    def __init__(self, request_id: RequestId, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id


def parse_request(obj: JSON) -> Request:
    """Validate one decoded request object; raises InvalidRequest (-32600)."""
    if not isinstance(obj, dict):
        raise InvalidRequest(None, "request must be a JSON object")
    request_id = obj.get("id")
    if request_id is not None and (
        not isinstance(request_id, (int, str)) or isinstance(request_id, bool)
    ):
        raise InvalidRequest(None, "id must be a string, a number or null")
    if obj.get("jsonrpc") != "2.0":
        raise InvalidRequest(request_id, 'jsonrpc must be "2.0"')
    method = obj.get("method")
    if not isinstance(method, str):
        raise InvalidRequest(request_id, "method must be a string")
    params = obj.get("params", [])
    if not isinstance(params, (list, dict)):
        raise InvalidRequest(request_id, "params must be an array or an object")
    return Request(method, params, request_id, is_notification="id" not in obj)
