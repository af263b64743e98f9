"""The HTTP side of the port: the handshake checks and ``GET /healthz``, as plain functions.

Checked in this order before the WebSocket upgrade, each refusal a plain HTTP response:

1. ``/healthz``: answered at once (200 or 503, JSON; ``HEAD`` without the body), no token
   needed: load balancers poll it. Another method than GET: 405.
2. too many connections from this address: 429.
3. no valid token (when tokens are set): 401, before anything else is told: an anonymous
   client learns nothing of the allowed origins or the chains. The token is read from
   ``Authorization: Bearer`` or, for browsers that cannot set headers, the ``token`` query
   parameter (URL-decoded); it is compared in constant time with every configured token, and
   never logged (:func:`redact` decodes before it hides; :func:`path_for_log` shows only a
   chain's name).
4. ``Origin`` not in ``allowed_origins`` (when set): 403. Browsers always send ``Origin`` on a
   WebSocket handshake; a handshake without one comes from a program, which could send any
   Origin it likes, so it is not refused for that (tokens are what keep programs out).
5. a path that names no chain: 404.

Nothing here raises on what a client sends: a malformed path or query is simply no token and
no chain.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, unquote_plus

from chainwatch.core.sink import ChainStatus

__all__ = [
    "RedactTokens",
    "chain_of_path",
    "healthz",
    "origin_allowed",
    "path_for_log",
    "redact",
    "request_token",
    "token_valid",
]

_TOKEN_IN_TEXT = re.compile(r"((?:[?&]|\b)token=)[^&\s\"']*", re.IGNORECASE)
_AUTH_IN_TEXT = re.compile(r"(authorization:\s*\w+\s+)\S+", re.IGNORECASE)


# Percent-decoding passes before redacting: "%2574oken" is "%74oken" is "token".
_DECODE_PASSES = 4


def redact(text: str) -> str:
    """Hide token values in a path, a header dump or a log message, however they are
    percent-encoded (the text is decoded first, as a query parser would)."""
    for _ in range(_DECODE_PASSES):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return _AUTH_IN_TEXT.sub(r"\1***", _TOKEN_IN_TEXT.sub(r"\1***", text))


def path_for_log(path: str, chains: Sequence[tuple[str, int]]) -> str:
    """What a log line may show of a request path: the chain it names, else nothing of it
    (a token put in the path, by mistake or on purpose, must not reach the log)."""
    route = path.split("?", 1)[0]
    if route in ("", "/", "/healthz"):
        return route or "/"
    name = route[1:].rstrip("/")
    return route if any(name == chain for chain, _ in chains) else "/<other>"


class RedactTokens(logging.Filter):
    """A logging filter that redacts tokens from every record it sees (the websockets library
    logs request lines and headers at DEBUG level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def request_token(path: str, authorization: str | None) -> str | None:
    """The token a client presents: ``Authorization: Bearer T``, else ``?token=T``."""
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    _, _, query = path.partition("?")
    for field in query.split("&"):
        name, _, value = field.partition("=")
        if unquote_plus(name) == "token":
            return unquote_plus(value)
    return None


def token_valid(candidate: str | None, tokens: Sequence[str]) -> bool:
    """Whether ``candidate`` is one of ``tokens``, in time independent of where they differ.

    Every token is compared (no early exit), so the time does not tell which one came close.
    """
    if candidate is None:
        return False
    given = candidate.encode("utf-8", "surrogateescape")
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given, token.encode("utf-8", "surrogateescape"))
    return found


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    if not allowed or origin is None:
        return True
    return origin in allowed


def chain_of_path(path: str, chains: Sequence[tuple[str, int]]) -> int | None:
    """The chain id a request path selects: ``/`` the first chain, ``/<name>`` a named one."""
    route = path.split("?", 1)[0].rstrip("/")
    if not chains:
        return None
    if route == "":
        return chains[0][1]
    name = route[1:]
    for chain_name, chain_id in chains:
        if chain_name == name:
            return chain_id
    return None


def healthz(statuses: Mapping[int, ChainStatus], now: float | None = None) -> tuple[int, bytes]:
    """(HTTP status, JSON body): per chain, the head block, the seconds since the last head and
    the providers connected; 200 when every chain has a connected provider, else 503."""
    now = time.monotonic() if now is None else now
    chains: dict[str, Any] = {}
    healthy = bool(statuses)
    for status in statuses.values():
        connected = status.providers_connected
        healthy = healthy and connected > 0
        chains[status.name] = {
            "chain_id": status.chain_id,
            "head": status.head.number if status.head is not None else None,
            "seconds_since_head": (
                round(now - status.last_head_at, 3) if status.last_head_at else None
            ),
            "providers_connected": connected,
            "providers": len(status.providers),
        }
    body = {"status": "ok" if healthy else "unavailable", "chains": chains}
    return (200 if healthy else 503), json.dumps(body, separators=(",", ":")).encode()
