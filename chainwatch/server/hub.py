"""Who gets what: the subscriptions of every client, and the routing of events to them.

No I/O and no event loop: the server feeds the hub stored events and heads, and the hub pushes
frames (as parts, see :mod:`chainwatch.server.frames`) to recipients, returning the ones it
touched so that the server writes each of them once per batch.

Subscriptions with the same filter share a :class:`Group`: the filter is evaluated once per
event per group, the result encoded once per event, and each subscriber costs four appended
references. With a thousand dashboards asking for the same thing, matching and encoding do
not grow with the number of clients.

When an event is sent (the finality rules of the spec):

* ``newHeads``: every head.
* ``logs`` and finality ``"new"``: when first seen (a stored event whose id the hub has not
  passed yet: ids grow, so "first seen" is ``id > high_water``), and again as removed when a
  reorg orphans it, to subscribers that could have seen it (subscribed before it appeared, or
  resuming from an id below it).
* finality ``"confirmed"``: when its status becomes ``confirmed``, and again as removed only if
  it had been confirmed (the hub remembers the confirmations of the last
  ``confirmed_window`` blocks: a reorg deeper than that is not a reorg a chain can have) and
  that subscriber could have been sent the confirmation.

A subscription resuming from ``since`` starts *buffering*: the server replays the store up to
``high_water`` while live events collect in the subscription's buffer (bounded by
``buffer_limit``: past it, the client is reported as overflowed), then
:meth:`Hub.end_replay` sends the buffer, skipping what the replay already sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from chainwatch.core.filters import EventFilter, LogFilter, erc20_value, scale_amount
from chainwatch.core.model import Head, Status, StoredEvent
from chainwatch.core.protocol import EventsSpec, HeadsSpec, LogsSpec, Spec, new_subscription_id
from chainwatch.server.frames import (
    Payload,
    event_result,
    head_result,
    log_result,
    notification_parts,
)

__all__ = ["Group", "Hub", "Recipient", "Subscription", "TokenInfo"]

TokenInfo = tuple[str | None, int | None]
PREFIX_LEN = len(notification_parts(new_subscription_id())[0])


class Recipient(Protocol):
    """A client as the hub sees it: frames are pushed to it, and it can be told it overflowed."""

    def push(self, header: bytes, prefix: bytes, data: bytes, suffix: bytes) -> None: ...

    def overflow(self) -> None: ...


class Subscription:
    """One subscription of one client."""

    __slots__ = ("buffer", "client", "floor", "group", "id", "prefix", "since", "start_seq",
                 "suffix")  # fmt: skip

    def __init__(
        self, sub_id: str, client: Recipient, group: Group, floor: int, start_seq: int,
        since: int | None,
    ) -> None:  # fmt: skip
        self.id = sub_id
        self.client = client
        self.group = group
        self.prefix, self.suffix = notification_parts(sub_id)
        self.floor = floor  # removals of events with ids above this one concern it
        self.start_seq = start_seq
        self.since = since
        # While replaying: (id, status, payload) of the live events, sent after the replay.
        self.buffer: list[tuple[int, Status, Payload]] | None = None


class Group:
    """Subscriptions of one chain with equal filters (or all newHeads ones)."""

    __slots__ = ("event_filter", "finality", "key", "kind", "log_filter", "subs")

    def __init__(
        self,
        key: tuple[Any, ...],
        kind: str,
        log_filter: LogFilter | None = None,
        event_filter: EventFilter | None = None,
    ) -> None:
        self.key = key
        self.kind = kind  # "heads", "logs" or "events"
        self.log_filter = log_filter
        self.event_filter = event_filter
        self.finality = event_filter.finality if event_filter is not None else "new"
        self.subs: dict[str, Subscription] = {}


class _Chain:
    """The groups of one chain: ``scan`` ones are tried on every event; ``indexed`` ones (a
    filter with ``[arg, "==", address]``, see ``EventFilter.equals``) only on events whose
    ``arg`` is that address - a thousand users each watching their own address cost a dict
    lookup per event, not a thousand filter evaluations."""

    __slots__ = ("confirmed", "groups", "heads", "index_args", "indexed", "kinds", "scan")

    def __init__(self) -> None:
        self.heads = Group(("heads",), "heads")
        self.groups: dict[tuple[Any, ...], Group] = {}
        self.scan: dict[tuple[Any, ...], Group] = {}
        self.indexed: dict[tuple[str, str], dict[tuple[Any, ...], Group]] = {}
        self.index_args: dict[str, int] = {}  # arg -> indexed groups on it
        # The argument kinds of the watched events (shared by every filter of the chain).
        self.kinds: Mapping[tuple[str | None, str | None], Mapping[str, Any]] | None = None
        # id -> (seq of the batch that confirmed it, block number), for recent blocks only.
        self.confirmed: dict[int, tuple[int, int]] = {}

    def forget_confirmed(self, horizon: int) -> None:
        """Forget confirmations of blocks below ``horizon``, oldest first. Events are confirmed
        in block order, so the dict is in block order but for the odd late one: the scan stops
        at the first entry still in the window (a late entry is kept a little longer, which
        only widens the window), and a head costs what it forgets, not the window's size."""
        confirmed = self.confirmed
        stale = []
        for event_id, (_, block) in confirmed.items():
            if block >= horizon:
                break
            stale.append(event_id)
        for event_id in stale:
            del confirmed[event_id]

    def add(self, group: Group) -> None:
        self.groups[group.key] = group
        equals = group.event_filter.equals if group.event_filter is not None else None
        if equals is None:
            self.scan[group.key] = group
        else:
            self.indexed.setdefault(equals, {})[group.key] = group
            self.index_args[equals[0]] = self.index_args.get(equals[0], 0) + 1
            if group.event_filter is not None:
                self.kinds = group.event_filter.kinds

    def remove(self, group: Group) -> None:
        del self.groups[group.key]
        equals = group.event_filter.equals if group.event_filter is not None else None
        if equals is None:
            del self.scan[group.key]
            return
        same = self.indexed[equals]
        del same[group.key]
        if not same:
            del self.indexed[equals]
        self.index_args[equals[0]] -= 1
        if not self.index_args[equals[0]]:
            del self.index_args[equals[0]]

    def candidates(self, event: StoredEvent, scan: list[Group]) -> list[Group]:
        """The groups that may want ``event``: every scanned one, and the indexed ones whose
        address the event carries (all of them for an event of a contract the catalog does not
        know, whose arguments have no known kinds)."""
        if not self.indexed:
            return scan
        args = event.args
        if args is None:
            return scan
        if self.kinds is not None and (event.contract, event.event) not in self.kinds:
            return scan + [g for same in self.indexed.values() for g in same.values()]
        found: list[Group] | None = None
        for arg in self.index_args:
            value = args.get(arg)
            if isinstance(value, str):
                same = self.indexed.get((arg, value.lower()))
                if same:
                    found = (found or [*scan]) + list(same.values())
        return found if found is not None else scan


class Hub:
    """The subscriptions of every client of every chain, and the routing of events to them."""

    def __init__(self, *, buffer_limit: int = 10_000, confirmed_window: int = 256) -> None:
        self.high_water = 0  # the greatest event id routed (or stored, at start)
        self.seq = 0  # batches routed
        self.buffer_limit = buffer_limit
        self.confirmed_window = confirmed_window
        self._chains: dict[int, _Chain] = {}
        self._by_client: dict[Recipient, dict[str, Subscription]] = {}

    # --- subscriptions ------------------------------------------------------------------------

    def subscribe(self, client: Recipient, sub_id: str, spec: Spec) -> Subscription:
        """Register a subscription. One whose filter has ``since`` starts buffering: the caller
        replays the store up to :attr:`high_water` (as it is now), then calls
        :meth:`end_replay`."""
        since = spec.filter.since if isinstance(spec, EventsSpec) else None
        chain = self._chains.get(spec.chain_id)
        if chain is None:
            chain = self._chains[spec.chain_id] = _Chain()
        if isinstance(spec, HeadsSpec):
            group = chain.heads
        else:
            if isinstance(spec, LogsSpec):
                key = (spec.chain_id, *spec.filter.key)
            else:
                assert isinstance(spec, EventsSpec)
                key = spec.filter.key
            group = chain.groups.get(key)  # type: ignore[assignment]
            if group is None:
                if isinstance(spec, LogsSpec):
                    group = Group(key, "logs", log_filter=spec.filter)
                else:
                    group = Group(key, "events", event_filter=spec.filter)
                chain.add(group)
        # Removals concern the events a client may hold: with `since`, every one it saw before
        # (ids up to `since` came on an earlier connection); without, only what comes now.
        floor = 0 if since is not None else self.high_water
        sub = Subscription(sub_id, client, group, floor, self.seq, since)
        if since is not None:
            sub.buffer = []
        group.subs[sub_id] = sub
        self._by_client.setdefault(client, {})[sub_id] = sub
        return sub

    def unsubscribe(self, client: Recipient, sub_id: str) -> bool:
        subs = self._by_client.get(client)
        sub = subs.pop(sub_id, None) if subs is not None else None
        if sub is None:
            return False
        self._forget(sub)
        return True

    def drop(self, client: Recipient) -> None:
        """Forget every subscription of ``client`` (it disconnected or is being closed)."""
        for sub in self._by_client.pop(client, {}).values():
            self._forget(sub)

    def _forget(self, sub: Subscription) -> None:
        group = sub.group
        group.subs.pop(sub.id, None)
        sub.buffer = None
        if not group.subs and group.kind != "heads":
            for chain in self._chains.values():
                if chain.groups.get(group.key) is group:
                    chain.remove(group)
                    break

    def subscriptions(self, client: Recipient) -> dict[str, Subscription]:
        return self._by_client.get(client, {})

    @property
    def clients(self) -> int:
        return len(self._by_client)

    # --- routing ------------------------------------------------------------------------------

    def route_head(self, chain_id: int, head: Head) -> set[Recipient]:
        """Send ``head`` to the chain's newHeads subscribers; forget old confirmations."""
        chain = self._chains.get(chain_id)
        if chain is None:
            return set()
        chain.forget_confirmed(head.number - self.confirmed_window)
        touched: set[Recipient] = set()
        if chain.heads.subs:
            payload = Payload(head_result(head), PREFIX_LEN)
            for sub in chain.heads.subs.values():
                self._deliver(sub, payload, 0, "new", touched)
        return touched

    def route_events(
        self,
        chain_id: int,
        events: Sequence[StoredEvent],
        *,
        head_number: int | None,
        token_of: Callable[[str], TokenInfo | None] = lambda address: None,
    ) -> set[Recipient]:
        """Send ``events`` (a batch from the sink, in its order) to whoever wants them."""
        self.seq += 1
        seq = self.seq
        chain = self._chains.get(chain_id)
        if chain is None:
            chain = self._chains[chain_id] = _Chain()
        scan = list(chain.scan.values())
        touched: set[Recipient] = set()
        high_water = self.high_water
        first_seen: set[int] = set()
        for event in events:
            event_id = event.id
            status = event.status
            first = event_id > high_water and event_id not in first_seen
            confirmed_at = chain.confirmed.get(event_id)
            groups = chain.candidates(event, scan)
            if groups:
                self._route_one(event, first, confirmed_at, groups, head_number, token_of, touched)
            if first:
                first_seen.add(event_id)
            if status == "confirmed":
                chain.confirmed[event_id] = (seq, event.log.block_number)
            elif status == "removed":
                chain.confirmed.pop(event_id, None)
        if first_seen:
            self.high_water = max(high_water, max(first_seen))
        return touched

    def _route_one(
        self,
        event: StoredEvent,
        first: bool,
        confirmed_at: tuple[int, int] | None,
        groups: list[Group],
        head_number: int | None,
        token_of: Callable[[str], TokenInfo | None],
        touched: set[Recipient],
    ) -> None:
        status = event.status
        log_payload: Payload | None = None
        event_payload: Payload | None = None
        enriched: tuple[Decimal | None, TokenInfo | None, str | None, bool] | None = None
        for group in groups:
            check: str | None = None
            if group.finality == "new":
                if status == "removed":
                    check = "floor"
                elif not first:
                    continue
            elif status == "confirmed":
                pass
            elif status == "removed" and confirmed_at is not None:
                check = "confirmed"
            else:
                continue
            if group.kind == "logs":
                assert group.log_filter is not None
                if not group.log_filter.matches(event.log):
                    continue
                if log_payload is None:
                    log_payload = Payload(log_result(event.log, status == "removed"), PREFIX_LEN)
                payload = log_payload
            else:
                assert group.event_filter is not None
                if enriched is None:
                    enriched = enrich(event, token_of)
                if not group.event_filter.matches(event, enriched[0]):
                    continue
                if event_payload is None:
                    _, token, amount, erc20 = enriched
                    data = event_result(event, head_number, token, amount, erc20)
                    event_payload = Payload(data, PREFIX_LEN)
                payload = event_payload
            deliver = self._deliver
            if check is None:
                for sub in group.subs.values():
                    deliver(sub, payload, event.id, status, touched)
            elif check == "floor":
                for sub in group.subs.values():
                    if event.id > sub.floor:
                        deliver(sub, payload, event.id, status, touched)
            else:
                assert confirmed_at is not None
                for sub in group.subs.values():
                    if confirmed_at[0] > sub.start_seq or (
                        sub.since is not None and event.id > sub.since
                    ):
                        deliver(sub, payload, event.id, status, touched)

    def _deliver(
        self, sub: Subscription, payload: Payload, event_id: int, status: Status,
        touched: set[Recipient],
    ) -> None:  # fmt: skip
        client = sub.client
        buffer = sub.buffer
        if buffer is None:
            client.push(payload.header_for(len(sub.prefix)), sub.prefix, payload.data, sub.suffix)
        else:
            buffer.append((event_id, status, payload))
            if len(buffer) > self.buffer_limit:
                client.overflow()
        touched.add(client)

    # --- replay -------------------------------------------------------------------------------

    def send(self, sub: Subscription, payload: Payload) -> None:
        """Push one frame to ``sub``'s client now (replayed events)."""
        sub.client.push(payload.header_for(len(sub.prefix)), sub.prefix, payload.data, sub.suffix)

    def end_replay(self, sub: Subscription, replayed_to: int, replayed: dict[int, Status]) -> int:
        """Send what was buffered during the replay and go live; returns how many were sent.

        A buffered event with an id the replay covered (``<= replayed_to``) is skipped when the
        replay sent (or skipped) it with that same status: the replay read it after the change.
        ``replayed`` holds the status the replay saw for the ids near ``replayed_to``; a status
        change of an older event cannot have raced with the replay's read of it.
        """
        buffer, sub.buffer = sub.buffer, None
        if buffer is None:
            return 0
        sent = 0
        for event_id, status, payload in buffer:
            if event_id <= replayed_to and replayed.get(event_id) == status:
                continue
            self.send(sub, payload)
            sent += 1
        return sent


def enrich(
    event: StoredEvent, token_of: Callable[[str], TokenInfo | None]
) -> tuple[Decimal | None, TokenInfo | None, str | None, bool]:
    """(amount for ``where``, token, amount text, is an ERC-20 transfer) of an event."""
    value = erc20_value(event)
    if value is None:
        return None, None, None, False
    token = token_of(event.log.address)
    decimals = token[1] if token is not None else None
    if decimals is None:
        return None, token, None, True
    amount = scale_amount(value, decimals)
    return Decimal(amount), token, amount, True


def tokens_needed(events: Iterable[StoredEvent]) -> set[str]:
    """Addresses of what may be ERC-20 transfers among ``events`` (whose token metadata is
    needed): a ``Transfer`` with three topics. Its value is not parsed here, once per copy of
    the event in a batch; a malformed one costs only a metadata lookup."""
    return {e.log.address for e in events if e.event == "Transfer" and len(e.log.topics) == 3}
