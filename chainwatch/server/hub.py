"""Who gets what: the subscriptions of every client, and the routing of events to them.

No I/O and no event loop: the server feeds the hub stored events and heads, and the hub pushes
frames (as parts, see :mod:`chainwatch.server.frames`) to recipients, returning the ones it
touched so that the server writes each of them once per batch.

Subscriptions with the same filter share a :class:`Group`: the filter is evaluated once per
event per group, the result encoded once per event, and each subscriber costs four appended
references. With a thousand dashboards asking for the same thing, matching and encoding do
not grow with the number of clients.

What is sent is defined by the store's change log alone: the hub routes
:class:`~chainwatch.core.model.Change` entries, each with its cursor, in cursor order. The rules
(the finality rules of the spec):

* ``newHeads``: every ``head`` change.
* ``logs`` and finality ``"new"``: every ``new`` change, and every ``removed`` change of an
  event the subscriber could have been sent: one whose ``new`` change (its id) came after the
  subscription's ``floor`` (the last cursor routed when it subscribed; 0 for a subscription
  resuming with ``since``, whose earlier connections may have seen anything).
* finality ``"confirmed"``: every ``confirmed`` change, and the ``removed`` change of an event
  that had been confirmed when the subscriber could have been sent that confirmation (the hub
  remembers the confirmation cursors of the last ``confirmed_window`` blocks; a removal whose
  confirmation it does not remember concerns only resuming subscribers).

Every ``chainwatch_subscribe`` notification carries its change's ``cursor``. A subscription
resuming from ``since`` (a cursor) starts *buffering*: the server replays the log from ``since``
up to :attr:`Hub.last_cursor` (as it was when the subscription came) while live changes collect
in the subscription's buffer (bounded by ``buffer_limit``: past it, the client is reported as
overflowed), then :meth:`Hub.end_replay` sends the buffered changes after what the replay
covered. Cursors make the seam exact: nothing twice, nothing missed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from chainwatch.core.alert import Enrichment, TokenInfo, alert_body, enrich
from chainwatch.core.filters import EventFilter, LogFilter
from chainwatch.core.model import Change, StoredEvent
from chainwatch.core.protocol import EventsSpec, HeadsSpec, LogsSpec, Spec, new_subscription_id
from chainwatch.server.frames import Payload, head_result, log_result, notification_parts

__all__ = ["Group", "Hub", "Recipient", "Subscription"]

#: A floor below which only subscriptions resuming with ``since`` lie (their floor is 0): for a
#: removal whose confirmation this hub never routed, so no live subscriber can have been sent.
RESUMING_ONLY = 1
PREFIX_LEN = len(notification_parts(new_subscription_id())[0])


class Recipient(Protocol):
    """A client as the hub sees it: frames are pushed to it, and it can be told it overflowed."""

    def push(self, header: bytes, prefix: bytes, data: bytes, suffix: bytes) -> None: ...

    def overflow(self) -> None: ...


class Subscription:
    """One subscription of one client."""

    __slots__ = ("buffer", "client", "floor", "group", "id", "prefix", "since", "skip_to",
                 "suffix")  # fmt: skip

    def __init__(
        self, sub_id: str, client: Recipient, group: Group, floor: int, since: int | None
    ) -> None:
        self.id = sub_id
        self.client = client
        self.group = group
        self.prefix, self.suffix = notification_parts(sub_id)
        self.floor = floor  # changes after this cursor may have been sent to it
        self.since = since
        # Changes up to this cursor are the client's already: a gateway whose reading of the
        # log is behind the cursor a client resumes from must not send them again.
        self.skip_to = since or 0
        # While replaying: (cursor, payload) of the live changes, sent after the replay.
        self.buffer: list[tuple[int, Payload]] | None = None


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
        # id -> (cursor of its confirmation, block number), for recent blocks only.
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
        self.last_cursor = 0  # the greatest cursor routed (or in the log, at start)
        self.deliveries = 0  # notifications pushed or buffered (the server reads and resets it)
        self.buffer_limit = buffer_limit
        self.confirmed_window = confirmed_window
        self._chains: dict[int, _Chain] = {}
        self._by_client: dict[Recipient, dict[str, Subscription]] = {}

    # --- subscriptions ------------------------------------------------------------------------

    def subscribe(self, client: Recipient, sub_id: str, spec: Spec) -> Subscription:
        """Register a subscription. One whose filter has ``since`` starts buffering: the caller
        replays the log after ``since`` up to :attr:`last_cursor` (as it is now), then calls
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
        # (on an earlier connection); without, only what comes now.
        floor = 0 if since is not None else self.last_cursor
        sub = Subscription(sub_id, client, group, floor, since)
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

    def route(
        self,
        changes: Sequence[Change],
        *,
        head_number: Callable[[int], int | None],
        token_of: Callable[[int, str], TokenInfo | None] = lambda chain_id, address: None,
    ) -> set[Recipient]:
        """Send ``changes`` (committed, in cursor order) to whoever wants them."""
        touched: set[Recipient] = set()
        for change in changes:
            if change.cursor <= self.last_cursor:
                continue  # routed already (a gateway's read overlapping the last one)
            self.last_cursor = change.cursor
            chain = self._chains.get(change.chain_id)
            if chain is None:
                chain = self._chains[change.chain_id] = _Chain()
            if change.head is not None:
                self._route_head(chain, change, touched)
                continue
            event = change.event
            assert event is not None
            kind = change.kind
            confirmed_at = chain.confirmed.get(event.id)
            groups = chain.candidates(event, list(chain.scan.values()))
            if groups:
                self._route_one(
                    change, confirmed_at, groups, head_number(change.chain_id), token_of, touched
                )
            if kind == "confirmed":
                chain.confirmed[event.id] = (change.cursor, event.log.block_number)
            elif kind == "removed":
                chain.confirmed.pop(event.id, None)
        return touched

    def _route_head(self, chain: _Chain, change: Change, touched: set[Recipient]) -> None:
        head = change.head
        assert head is not None
        chain.forget_confirmed(head.number - self.confirmed_window)
        if chain.heads.subs:
            payload = Payload(head_result(head), PREFIX_LEN)
            for sub in chain.heads.subs.values():
                self._deliver(sub, payload, change.cursor, touched)

    def _route_one(
        self,
        change: Change,
        confirmed_at: tuple[int, int] | None,
        groups: list[Group],
        head_number: int | None,
        token_of: Callable[[int, str], TokenInfo | None],
        touched: set[Recipient],
    ) -> None:
        event = change.event
        assert event is not None
        kind = change.kind
        cursor = change.cursor
        log_payload: Payload | None = None
        event_payload: Payload | None = None
        enriched: Enrichment | None = None
        for group in groups:
            # Which subscribers of the group: all, those whose floor is below the event's
            # first sighting (its id), or those that could have been sent its confirmation.
            floor_below: int | None = None
            if group.finality == "new":
                if kind == "removed":
                    floor_below = event.id
                elif kind != "new":
                    continue
            elif kind == "removed":
                if change.prior == "new":
                    continue  # never confirmed: no confirmed subscriber holds it
                # Unknown confirmation (before this hub's memory): resuming subscribers only.
                floor_below = confirmed_at[0] if confirmed_at is not None else RESUMING_ONLY
            elif kind != "confirmed":
                continue
            if group.kind == "logs":
                assert group.log_filter is not None
                if not group.log_filter.matches(event.log):
                    continue
                if log_payload is None:
                    log_payload = Payload(log_result(event.log, kind == "removed"), PREFIX_LEN)
                payload = log_payload
            else:
                assert group.event_filter is not None
                if enriched is None:
                    enriched = enrich(event, lambda a: token_of(event.chain_id, a))
                if not group.event_filter.matches(event, enriched.amount):
                    continue
                if event_payload is None:
                    data = alert_body(event, head_number, enriched, cursor)
                    event_payload = Payload(data, PREFIX_LEN)
                payload = event_payload
            deliver = self._deliver
            if floor_below is None:
                for sub in group.subs.values():
                    deliver(sub, payload, cursor, touched)
            else:
                for sub in group.subs.values():
                    if sub.floor < floor_below:
                        deliver(sub, payload, cursor, touched)

    def _deliver(
        self, sub: Subscription, payload: Payload, cursor: int, touched: set[Recipient]
    ) -> None:
        if cursor <= sub.skip_to:
            return
        client = sub.client
        buffer = sub.buffer
        self.deliveries += 1
        if buffer is None:
            client.push(payload.header_for(len(sub.prefix)), sub.prefix, payload.data, sub.suffix)
        else:
            buffer.append((cursor, payload))
            if len(buffer) > self.buffer_limit:
                client.overflow()
        touched.add(client)

    # --- replay -------------------------------------------------------------------------------

    def send(self, sub: Subscription, payload: Payload) -> None:
        """Push one frame to ``sub``'s client now (replayed events)."""
        sub.client.push(payload.header_for(len(sub.prefix)), sub.prefix, payload.data, sub.suffix)

    def end_replay(self, sub: Subscription, replayed_to: int) -> int:
        """Send what was buffered during the replay and go live; returns how many were sent.

        The replay covered the log up to ``replayed_to``: a buffered change at or below it was
        sent by the replay (or did not concern the subscription), and is skipped.
        """
        buffer, sub.buffer = sub.buffer, None
        if buffer is None:
            return 0
        sent = 0
        for cursor, payload in buffer:
            if cursor <= replayed_to:
                continue
            self.send(sub, payload)
            sent += 1
        return sent
