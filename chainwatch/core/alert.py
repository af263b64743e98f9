"""The alert: what every channel says about a change of an event, whatever carries it.

A WebSocket notification (``chainwatch_subscribe``), and later a webhook's POST body or a
Server-Sent Event's data, all carry the same JSON object: the event's JSON form (see
:meth:`chainwatch.core.model.StoredEvent.to_json`) and

* ``cursor``: the position in the change log of the change it reports (what a consumer
  resumes from);
* ``confirmations``: blocks from the event's block to the head, inclusive; 0 once removed,
  None before the first head;
* ``historical``: found by a backfill rather than seen live;
* for an ERC-20 transfer only, ``token`` (``{"symbol", "decimals"}``, or None while the token's
  metadata is unknown) and ``amount`` (the value scaled by the token's decimals, as a decimal
  string, or None without decimals).

The token metadata is looked up by the caller (the store has it; see
:class:`chainwatch.store.tokens.TokenCache`) and given here as a function: no I/O in this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import NamedTuple

from chainwatch.core import rpc
from chainwatch.core.filters import erc20_value, scale_amount
from chainwatch.core.model import StoredEvent

__all__ = ["NOT_ERC20", "Enrichment", "TokenInfo", "alert_body", "enrich", "tokens_needed"]

#: (symbol, decimals) of an ERC-20 token, either unknown when the contract did not say.
TokenInfo = tuple[str | None, int | None]


class Enrichment(NamedTuple):
    """What the token's metadata adds to an event."""

    #: The scaled value, for a filter's ``where`` on ``amount``; None without decimals.
    amount: Decimal | None
    #: The token's (symbol, decimals); None when unknown.
    token: TokenInfo | None
    #: ``amount`` as the alert writes it.
    amount_text: str | None
    #: The event is an ERC-20 transfer (the alert then has ``token`` and ``amount``).
    erc20: bool


NOT_ERC20 = Enrichment(None, None, None, False)


def enrich(event: StoredEvent, token_of: Callable[[str], TokenInfo | None]) -> Enrichment:
    """The amount and token of ``event`` when it is an ERC-20 transfer; ``token_of`` gives the
    metadata of a token by its address, None when unknown."""
    value = erc20_value(event)
    if value is None:
        return NOT_ERC20
    token = token_of(event.log.address)
    decimals = token[1] if token is not None else None
    if decimals is None:
        return Enrichment(None, token, None, True)
    amount = scale_amount(value, decimals)
    return Enrichment(Decimal(amount), token, amount, True)


def tokens_needed(events: Iterable[StoredEvent]) -> set[str]:
    """Addresses of what may be ERC-20 transfers among ``events`` (whose token metadata is
    needed): a ``Transfer`` with three topics. Its value is not parsed here, once per copy of
    the event in a batch; a malformed one costs only a metadata lookup."""
    return {e.log.address for e in events if e.event == "Transfer" and len(e.log.topics) == 3}


def alert_body(
    event: StoredEvent,
    head_number: int | None,
    enrichment: Enrichment = NOT_ERC20,
    cursor: int | None = None,
) -> bytes:
    """The alert for ``event`` as compact UTF-8 JSON (see the module's docstring), with the
    chain's head at ``head_number`` (None before the first head) and ``cursor`` the change's
    position in the log (left out when None)."""
    obj = event.to_json()
    if cursor is not None:
        obj["cursor"] = cursor
    if event.status == "removed":
        obj["confirmations"] = 0
    elif head_number is None:
        obj["confirmations"] = None
    else:
        obj["confirmations"] = max(0, head_number - event.log.block_number + 1)
    obj["historical"] = event.historical
    if enrichment.erc20:
        token = enrichment.token
        obj["token"] = {"symbol": token[0], "decimals": token[1]} if token is not None else None
        obj["amount"] = enrichment.amount_text
    return rpc.dumps_bytes(obj)
