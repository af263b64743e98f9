"""``chainwatch tail``: subscribe to a running daemon and print its alerts as they come.

One ``chainwatch_subscribe`` over WebSocket; each event is printed as one readable line (or one
JSON object with ``--json``). When the connection drops, the client reconnects by itself (with
:mod:`chainwatch.core.backoff`) and resubscribes with ``since`` set to the last cursor it
printed, so nothing is missed and nothing printed twice. A refused token, a bad filter or a URL
that is not a chainwatch server stop it with a one-line :class:`ChainwatchError`.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from chainwatch.config import redact_url
from chainwatch.core.backoff import INITIAL_DELAY, backoff
from chainwatch.core.filters import parse_where_expr
from chainwatch.core.model import JSON
from chainwatch.errors import ChainwatchError
from chainwatch.render import event_line, json_line

__all__ = ["build_filter", "run_tail"]

_REFUSALS = {
    401: "a valid token is required",
    403: "origin not allowed",
    404: "no such chain on this server",
    429: "too many connections from this address",
}


def build_filter(
    contracts: Sequence[str] = (),
    events: Sequence[str] = (),
    wheres: Sequence[str] = (),
    finality: str | None = None,
    since: int | None = None,
) -> dict[str, JSON]:
    """The ``chainwatch_subscribe`` filter for the command-line options; ChainwatchError for a
    ``--where`` that does not read as ``ARG OP VALUE``."""
    out: dict[str, JSON] = {}
    if contracts:
        out["contracts"] = list(contracts)
    if events:
        out["events"] = list(events)
    clauses = []
    for text in wheres:
        try:
            clauses.append(parse_where_expr(text))
        except ValueError as exc:
            raise ChainwatchError(f"--where {text!r}: {exc}") from None
    if clauses:
        out["where"] = clauses
    if finality is not None:
        out["finality"] = finality
    if since is not None:
        out["since"] = since
    return out


class _Tail:
    def __init__(
        self,
        subscribe_filter: dict[str, JSON],
        json_output: bool,
        out: TextIO,
        err: TextIO,
        shown: str,
    ) -> None:
        self.filter = subscribe_filter
        self.json_output = json_output
        self.out = out
        self.err = err
        self.shown = shown
        self.last_id: int | None = subscribe_filter.get("since")
        self.ids = itertools.count(1)

    async def session(self, ws: ClientConnection) -> None:
        """Subscribe, then print until the connection ends (ConnectionClosed propagates)."""
        params = dict(self.filter)
        if self.last_id is not None:
            params["since"] = self.last_id
        request_id = next(self.ids)
        await ws.send(
            json.dumps(
                {"jsonrpc": "2.0", "id": request_id, "method": "chainwatch_subscribe",
                 "params": [params]}
            )
        )  # fmt: skip
        subscription: str | None = None
        async for message in ws:
            try:
                obj: Any = json.loads(message)
            except ValueError:
                raise ChainwatchError("the server sent something that is not JSON") from None
            if not isinstance(obj, dict):
                continue
            if obj.get("id") == request_id:
                if "error" in obj:
                    error = obj["error"]
                    message_text = error.get("message") if isinstance(error, dict) else error
                    raise ChainwatchError(f"the server refused the subscription: {message_text}")
                subscription = obj.get("result")
                since = f" (since cursor {self.last_id})" if self.last_id is not None else ""
                self.err.write(f"chainwatch tail: subscribed to {self.shown}{since}\n")
                self.err.flush()
                continue
            params_obj = obj.get("params")
            if obj.get("method") != "eth_subscription" or not isinstance(params_obj, dict):
                continue
            if params_obj.get("subscription") != subscription:
                continue
            self.show(params_obj.get("result"))

    def show(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        # The change's cursor is what resumes exactly (confirmations and removals have their
        # own); a daemon older than the change log sent only the event id, the same thing for
        # a first sighting.
        cursor = event.get("cursor", event.get("id"))
        if isinstance(cursor, int):
            self.last_id = cursor if self.last_id is None else max(self.last_id, cursor)
        self.out.write((json_line(event) if self.json_output else event_line(event)) + "\n")
        self.out.flush()


async def run_tail(
    url: str,
    token: str | None,
    contracts: Sequence[str],
    events: Sequence[str],
    wheres: Sequence[str],
    finality: str | None,
    since: int | None,
    json_output: bool,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    retry_delay: float = INITIAL_DELAY,
) -> None:
    """Print the events of a chainwatch server matching the filter until cancelled.

    Reconnects after ``retry_delay`` seconds or a little less (jitter), then backs off while
    the server stays unreachable (:func:`chainwatch.core.backoff.backoff`).
    """
    errors = err or sys.stderr
    headers = {"Authorization": f"Bearer {token}"} if token else None
    shown = redact_url(url)
    subscribe_filter = build_filter(contracts, events, wheres, finality, since)
    tail = _Tail(subscribe_filter, json_output, out or sys.stdout, errors, shown)
    try:
        async for ws in connect(
            url,
            additional_headers=headers,
            open_timeout=10,
            reconnect_delays=lambda: backoff(retry_delay),
        ):
            try:
                await tail.session(ws)
                reason = "closed by the server"
            except ConnectionClosed as exc:
                reason = f"lost ({exc})"
            resume = f" from cursor {tail.last_id}" if tail.last_id is not None else ""
            errors.write(f"chainwatch tail: connection to {shown} {reason}; reconnecting{resume}\n")
            errors.flush()
    except InvalidStatus as exc:
        status = exc.response.status_code
        reason = _REFUSALS.get(status, exc.response.reason_phrase)
        raise ChainwatchError(f"{shown}: refused with HTTP {status}: {reason}") from None
    except (InvalidURI, InvalidHandshake) as exc:
        raise ChainwatchError(f"{shown}: not a chainwatch server: {exc}") from None
