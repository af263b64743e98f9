"""The JSON-RPC session of one downstream connection, with no I/O.

A :class:`Session` takes each message a client sends (text or bytes, exactly as received) and
returns an :class:`Outcome`: the reply to send (one response, or one batch answered as a batch,
JSON-RPC 2.0 section 6), the subscription changes for the server to apply *after* sending the
reply (so that a subscription's first notification never overtakes the id it is announced by),
and the names of the counters to bump. It never raises on client input.

Methods (node-compatible first, so web3.py, ethers.js and viem work unchanged):

=========================  ==============================================================
``eth_chainId``            the chain of the connection's path, ``0x``-hex
``net_version``            the same, decimal
``eth_blockNumber``        the latest head the daemon has seen
``eth_subscribe``          ``["newHeads"]`` or ``["logs", {address?, topics?}]``
``eth_unsubscribe``        ``[id]`` -> true or false
``chainwatch_subscribe``   ``[filter]``: decoded events, see :mod:`chainwatch.core.filters`
``chainwatch_unsubscribe`` ``[id]`` -> true or false
``chainwatch_contracts``   ``[]``: what is watched, per chain
=========================  ==============================================================

Any other ``eth_*`` method is answered -32601, saying that chainwatch serves subscriptions
only. Errors: -32700 invalid JSON, -32600 not a request, -32601 unknown method, -32602 bad
params (the message names the field), -32005 over the rate or subscription limit (EIP-1474).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chainwatch.core import rpc
from chainwatch.core.filters import (
    Catalog,
    EventFilter,
    FilterError,
    LogFilter,
    parse_event_filter,
    parse_log_filter,
)
from chainwatch.core.model import JSON
from chainwatch.core.ratelimit import Budget, TokenBucket
from chainwatch.errors import ChainwatchError

__all__ = [
    "EventsSpec",
    "HeadsSpec",
    "LogsSpec",
    "Outcome",
    "Session",
    "SessionLimits",
    "Spec",
    "Subscribe",
    "Unsubscribe",
    "new_subscription_id",
    "subscription_cost",
]

CLIENT_VERSION = "chainwatch/0.1.0"

# Counter names, as the server's ``stats`` shows them.
PARSE_ERROR = "parse_error"
INVALID_REQUEST = "invalid_request"
METHOD_NOT_FOUND = "method_not_found"
INVALID_PARAMS = "invalid_params"
RATE_LIMITED = "rate_limited"
SUBSCRIPTION_LIMIT = "subscription_limit"
CURSOR_EXPIRED_COUNT = "cursor_expired"
#: JSON-RPC "server error" range (-32000 to -32099): a resume cursor older than the log keeps.
CURSOR_EXPIRED = -32000
MATCH_BUDGET = "match_budget"
BATCH_LIMIT = "batch_limit"

# Refusals answered without reading the request (so with a null id, JSON-RPC 2.0 section 5).
_RATE_LIMITED_REPLY = rpc.encode_error(None, rpc.LIMIT_EXCEEDED, "rate limited")
_BATCH_FULL_REPLY = rpc.encode_error(None, rpc.LIMIT_EXCEEDED, "batch reply too large")

_SUBSCRIPTIONS_ONLY = (
    "chainwatch serves subscriptions only (eth_subscribe, chainwatch_subscribe); "
    "{method} is not available"
)


# No request nests deeper, and none holds more arrays and objects. The JSON parser recurses in
# C once per level: these bounds, checked in one pass before parsing, keep a 64 KiB message of
# "[" from exhausting the stack (see :func:`chainwatch.core.rpc.nesting`).
MAX_DEPTH = 32
MAX_CONTAINERS = 4096


def new_subscription_id() -> str:
    """A subscription id like a node's: 16 random bytes in 0x-hex (34 characters)."""
    return "0x" + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class HeadsSpec:
    """``eth_subscribe("newHeads")``."""

    chain_id: int


@dataclass(frozen=True, slots=True)
class LogsSpec:
    """``eth_subscribe("logs", filter)``."""

    chain_id: int
    filter: LogFilter


@dataclass(frozen=True, slots=True)
class EventsSpec:
    """``chainwatch_subscribe(filter)``."""

    filter: EventFilter

    @property
    def chain_id(self) -> int:
        return self.filter.chain_id


Spec = HeadsSpec | LogsSpec | EventsSpec


@dataclass(frozen=True, slots=True)
class Subscribe:
    id: str
    spec: Spec


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    id: str


Effect = Subscribe | Unsubscribe


@dataclass(slots=True)
class Outcome:
    """What to do after one client message: send ``reply`` (if any), then apply ``effects``."""

    reply: str | None = None
    effects: list[Effect] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """What one connection may ask (``[server]``, see the README's "Safe to expose").

    ``max_requests_per_second`` is charged before any work: a message takes one request of the
    budget before it is parsed (refused unparsed when there is none), and each further item of
    a batch takes one more, valid or not. A batch holds at most ``max_batch_items`` requests,
    and its replies at most ``max_batch_reply_bytes``: the items past that are answered with a
    short -32005 and not run.
    """

    max_subscriptions: int = 100
    max_requests_per_second: float = 50.0
    max_batch_items: int = 100
    max_batch_reply_bytes: int = 1024 * 1024


# Listed values (addresses, topics, names, ``in`` values) that cost one unit: sets, looked up
# in constant time, but held in memory for as long as the subscription lives.
VALUES_PER_UNIT = 100


def subscription_cost(spec: Spec) -> int:
    """The matching work of a subscription, in units of one test on every event of its chain:
    1, plus 1 per ``where`` clause or topic position, plus 1 per VALUES_PER_UNIT values it
    lists. What :class:`chainwatch.core.ratelimit.Budget` counts per address."""
    if isinstance(spec, HeadsSpec):
        return 1
    if isinstance(spec, LogsSpec):
        f = spec.filter
        values = len(f.addresses or ()) + sum(len(t or ()) for t in f.topics)
        return 1 + len(f.topics) + values // VALUES_PER_UNIT
    e = spec.filter
    values = len(e.names or ()) + len(e.addresses or ()) + len(e.events or ())
    values += sum(len(w.value) for w in e.where if w.op == "in" and isinstance(w.value, list))
    return 1 + len(e.where) + values // VALUES_PER_UNIT


class _Error(ChainwatchError):
    """A request's error response, raised inside dispatch and answered by ``_one``."""

    def __init__(self, code: int, message: str, count: str, data: JSON = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.count = count
        self.data = data


class Session:
    """Per-connection state: the chain of the path, the client's subscriptions, its rate.

    ``head_number(chain_id)`` reads the latest head seen (None before the first);
    ``oldest_cursor()`` the oldest change-log cursor a subscription may resume from;
    ``contracts`` is the (shared, precomputed) result of ``chainwatch_contracts``.
    """

    __slots__ = ("bucket", "budget", "catalogs", "chain_id", "contracts", "head_number",
                 "limits", "new_id", "oldest_cursor", "subscriptions")  # fmt: skip

    def __init__(
        self,
        chain_id: int,
        catalogs: Mapping[int, Catalog],
        *,
        head_number: Callable[[int], int | None],
        contracts: JSON = None,
        limits: SessionLimits | None = None,
        now: float = 0.0,
        new_id: Callable[[], str] = new_subscription_id,
        budget: Budget | None = None,
        oldest_cursor: Callable[[], int] = lambda: 0,
    ) -> None:
        self.chain_id = chain_id
        self.oldest_cursor = oldest_cursor
        self.catalogs = catalogs
        self.head_number = head_number
        self.contracts = contracts if contracts is not None else []
        self.limits = limits or SessionLimits()
        rate = self.limits.max_requests_per_second
        self.bucket = TokenBucket(rate, max(1.0, rate), now=now)
        self.new_id = new_id
        self.budget = budget  # shared with the other sessions of the same address
        self.subscriptions: dict[str, Spec] = {}

    def close(self) -> None:
        """The connection is gone: give its subscriptions' cost back to the budget."""
        if self.budget is not None:
            for spec in self.subscriptions.values():
                self.budget.give(subscription_cost(spec))
        self.subscriptions.clear()

    # --- entry point --------------------------------------------------------------------------

    def receive(self, message: str | bytes, now: float) -> Outcome:
        """Handle one WebSocket message; never raises on what the client sent."""
        outcome = Outcome()
        if not self.bucket.take(now):
            # Charged before the work: a client over its rate is not parsed at all.
            outcome.counts.append(RATE_LIMITED)
            outcome.reply = _RATE_LIMITED_REPLY
            return outcome
        try:
            text = message.decode("utf-8") if isinstance(message, bytes) else message
            too_big = rpc.nesting_error(text, MAX_DEPTH, MAX_CONTAINERS)
            if too_big is not None:
                raise ValueError(too_big)
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            # UnicodeDecodeError is a ValueError; RecursionError: a safety net, as deep nesting
            # is refused before parsing. Garbage cost its sender a request of its budget.
            outcome.counts.append(PARSE_ERROR)
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            outcome.reply = rpc.encode_error(None, rpc.PARSE_ERROR, f"parse error: {reason}")
            return outcome
        if isinstance(obj, list):
            if not obj:
                outcome.counts.append(INVALID_REQUEST)
                outcome.reply = rpc.encode_error(None, rpc.INVALID_REQUEST, "empty batch")
                return outcome
            outcome.reply = self._batch(obj, now, outcome)
            return outcome
        outcome.reply = self._one(obj, outcome)
        return outcome

    def _batch(self, batch: list[JSON], now: float, outcome: Outcome) -> str | None:
        """JSON-RPC 2.0 section 6, within the batch limits; the message paid for one item."""
        limits = self.limits
        if len(batch) > limits.max_batch_items:
            outcome.counts.append(BATCH_LIMIT)
            return rpc.encode_error(
                None,
                rpc.INVALID_REQUEST,
                f"batch of {len(batch)} requests (at most {limits.max_batch_items})",
            )
        replies: list[str] = []
        size = 0
        for n, item in enumerate(batch):
            if n and not self.bucket.take(now):
                outcome.counts.append(RATE_LIMITED)
                reply: str | None = _RATE_LIMITED_REPLY
            elif size > limits.max_batch_reply_bytes:
                outcome.counts.append(BATCH_LIMIT)
                reply = _BATCH_FULL_REPLY
            else:
                reply = self._one(item, outcome)
            if reply is not None:
                replies.append(reply)
                size += len(reply)
        return "[" + ",".join(replies) + "]" if replies else None

    def _one(self, obj: JSON, outcome: Outcome) -> str | None:
        """Answer one request object, already paid for (None for a notification, which gets
        no response)."""
        try:
            request = rpc.parse_request(obj)
        except rpc.InvalidRequest as exc:
            outcome.counts.append(INVALID_REQUEST)
            return rpc.encode_error(_safe_id(exc.request_id), rpc.INVALID_REQUEST, str(exc))
        try:
            result = self._dispatch(request, outcome)
        except _Error as exc:
            outcome.counts.append(exc.count)
            if request.is_notification:
                return None
            return rpc.encode_error(request.id, exc.code, exc.message, exc.data)
        if request.is_notification:
            return None
        return rpc.encode_result(request.id, result)

    # --- methods ------------------------------------------------------------------------------

    def _dispatch(self, request: rpc.Request, outcome: Outcome) -> JSON:
        method = request.method
        handler = _METHODS.get(method)
        if handler is None:
            if method.startswith(("eth_", "net_", "web3_", "debug_", "txpool_", "trace_")):
                raise _Error(
                    rpc.METHOD_NOT_FOUND,
                    _SUBSCRIPTIONS_ONLY.format(method=_short(method)),
                    METHOD_NOT_FOUND,
                )
            raise _Error(
                rpc.METHOD_NOT_FOUND, f"method not found: {_short(method)}", METHOD_NOT_FOUND
            )
        return handler(self, request.params, outcome)

    def _chain_id(self, params: JSON, outcome: Outcome) -> JSON:
        return hex(self.chain_id)

    def _net_version(self, params: JSON, outcome: Outcome) -> JSON:
        return str(self.chain_id)

    def _client_version(self, params: JSON, outcome: Outcome) -> JSON:
        return CLIENT_VERSION

    def _block_number(self, params: JSON, outcome: Outcome) -> JSON:
        number = self.head_number(self.chain_id)
        if number is None:
            # EIP-1474 -32002 "resource unavailable": no head yet, better than a made-up 0x0.
            raise _Error(-32002, "no block seen yet on this chain", "no_head")
        return hex(number)

    def _eth_subscribe(self, params: JSON, outcome: Outcome) -> JSON:
        args = _array(params, 1, 2)
        kind = args[0]
        spec: Spec
        if kind == "newHeads":
            if len(args) > 1 and args[1] is not None:
                raise _invalid("params[1]: newHeads takes no filter")
            spec = HeadsSpec(self.chain_id)
        elif kind == "logs":
            try:
                log_filter = parse_log_filter(args[1] if len(args) > 1 else None)
            except FilterError as exc:
                raise _invalid(f"logs filter: {exc}") from None
            spec = LogsSpec(self.chain_id, log_filter)
        else:
            raise _invalid(
                f"params[0]: unsupported subscription {_short(kind)} "
                "(chainwatch serves newHeads and logs)"
            )
        return self._subscribe(spec, outcome)

    def _chainwatch_subscribe(self, params: JSON, outcome: Outcome) -> JSON:
        args = _array(params, 0, 1)
        try:
            event_filter = parse_event_filter(
                args[0] if args else None, self.catalogs, self.chain_id
            )
        except FilterError as exc:
            raise _invalid(f"filter: {exc}") from None
        since = event_filter.since
        if since is not None and since < (oldest := self.oldest_cursor()):
            raise _Error(
                CURSOR_EXPIRED,
                f"cursor {since} is older than the change log keeps (oldest cursor accepted: "
                f"{oldest}): resync from the store, then resume from a newer cursor",
                CURSOR_EXPIRED_COUNT,
                {"oldest_cursor": oldest},
            )
        return self._subscribe(EventsSpec(event_filter), outcome)

    def _subscribe(self, spec: Spec, outcome: Outcome) -> str:
        if len(self.subscriptions) >= self.limits.max_subscriptions:
            raise _Error(
                rpc.LIMIT_EXCEEDED,
                f"subscription limit reached ({self.limits.max_subscriptions} per connection)",
                SUBSCRIPTION_LIMIT,
            )
        cost = subscription_cost(spec)
        if self.budget is not None and not self.budget.take(cost):
            raise _Error(
                rpc.LIMIT_EXCEEDED,
                f"matching budget spent: this filter costs {cost} of the {self.budget.limit} "
                f"units per address ({self.budget.used} in use); unsubscribe first",
                MATCH_BUDGET,
            )
        sub_id = self.new_id()
        while sub_id in self.subscriptions:  # pragma: no cover - 128 random bits
            sub_id = self.new_id()
        self.subscriptions[sub_id] = spec
        outcome.effects.append(Subscribe(sub_id, spec))
        return sub_id

    def _unsubscribe(self, params: JSON, outcome: Outcome) -> JSON:
        args = _array(params, 1, 1)
        sub_id = args[0]
        if not isinstance(sub_id, str):
            raise _invalid(f"params[0]: expected a subscription id, got {_short(sub_id)}")
        spec = self.subscriptions.pop(sub_id, None)
        if spec is None:
            return False
        if self.budget is not None:
            self.budget.give(subscription_cost(spec))
        outcome.effects.append(Unsubscribe(sub_id))
        return True

    def _contracts(self, params: JSON, outcome: Outcome) -> JSON:
        _array(params, 0, 0)
        return self.contracts


_Handler = Callable[[Session, Any, Outcome], JSON]
_METHODS: dict[str, _Handler] = {
    "eth_chainId": Session._chain_id,
    "net_version": Session._net_version,
    "web3_clientVersion": Session._client_version,
    "eth_blockNumber": Session._block_number,
    "eth_subscribe": Session._eth_subscribe,
    "eth_unsubscribe": Session._unsubscribe,
    "chainwatch_subscribe": Session._chainwatch_subscribe,
    "chainwatch_unsubscribe": Session._unsubscribe,
    "chainwatch_contracts": Session._contracts,
}


def _invalid(message: str) -> _Error:
    return _Error(rpc.INVALID_PARAMS, f"invalid params: {message}", INVALID_PARAMS)


def _array(params: JSON, least: int, most: int) -> list[JSON]:
    if not isinstance(params, list):
        raise _invalid("params: expected an array")
    if not least <= len(params) <= most:
        expected = str(least) if least == most else f"{least} to {most}"
        raise _invalid(f"params: expected {expected} item(s), got {len(params)}")
    return params


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def _safe_id(request_id: Any) -> rpc.RequestId:
    """JSON-RPC 2.0: the id of an invalid request is echoed when it could be read, else null."""
    if isinstance(request_id, (int, str)) and not isinstance(request_id, bool):
        return request_id
    return None
