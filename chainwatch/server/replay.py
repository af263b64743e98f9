"""The replay: what a subscriber resuming with ``since`` missed, read from the change log.

A ``chainwatch_subscribe`` with ``since`` (a cursor) starts buffering in the hub; the replay then
reads the log after ``since`` up to the last cursor the hub had routed when the subscription
came, in pages of at most ``REPLAY_PAGE`` changes (and half the client's queue), sends what the
hub's rules for a resuming subscriber give it, waiting for the client to drain between pages,
and ends with :meth:`Hub.end_replay <chainwatch.server.hub.Hub.end_replay>`, which sends the
live changes buffered meanwhile. Replays run at most ``max_replays`` at once, with a bounded
queue of waiting ones (:class:`~chainwatch.server.admission.Admission`): past it, the
subscriber is refused (:class:`~chainwatch.errors.Busy`) and resumes later.

A cursor the log no longer keeps (pruned during the replay) closes the client with 1008 (policy
violation); a store that cannot answer closes it with 1011 (internal error).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable

from websockets.frames import CloseCode

from chainwatch.core.alert import alert_body, enrich
from chainwatch.errors import CursorExpired, StoreError
from chainwatch.server.admission import Admission
from chainwatch.server.connection import Client
from chainwatch.server.frames import Payload
from chainwatch.server.hub import PREFIX_LEN, Hub, Recipient, Subscription
from chainwatch.store.store import Store
from chainwatch.store.tokens import TokenCache

__all__ = ["Replay"]

log = logging.getLogger("chainwatch.server")

#: Events per page when replaying from the store.
REPLAY_PAGE = 500


class Replay:
    """Replays the log to resuming subscriptions; ``stats`` (the server's counters) gets
    ``replayed`` and ``replay_buffered``."""

    def __init__(
        self,
        store: Store,
        hub: Hub,
        tokens: TokenCache,
        admission: Admission,
        *,
        head_number: Callable[[int], int | None],
        stats: collections.Counter[str],
        flush: Callable[[Iterable[Recipient]], None],
        close_client: Callable[[Client, int, str], None],
    ) -> None:
        self.store = store
        self.hub = hub
        self.tokens = tokens
        self.admission = admission
        self.stats = stats
        self._head_number = head_number
        self._flush = flush
        self._close_client = close_client

    async def run(self, client: Client, sub: Subscription, upto: int) -> None:
        """Replay to ``sub`` once a replay slot is free; raises Busy when none will be."""
        async with self.admission.slot():
            await self._replay(client, sub, upto)

    async def _replay(self, client: Client, sub: Subscription, upto: int) -> None:
        """Send the changes of the log with ``since < cursor <= upto`` that ``sub`` is owed
        (the hub's rules for a resuming subscriber), then what arrived meanwhile (see
        :meth:`Hub.end_replay`)."""
        event_filter = sub.group.event_filter
        assert event_filter is not None and sub.since is not None
        chain_id = event_filter.chain_id
        confirmed_only = event_filter.finality == "confirmed"
        wanted = ("confirmed", "removed") if confirmed_only else ("new", "removed")
        page_size = max(1, min(REPLAY_PAGE, client.max_messages // 2))
        cursor = sub.since
        while cursor < upto:
            try:
                page = await asyncio.to_thread(
                    self.store.changes_after, cursor, limit=page_size, chain_id=chain_id
                )
            except CursorExpired as exc:
                log.info("replay from an expired cursor: %s", exc)
                self._close_client(client, CloseCode.POLICY_VIOLATION, "cursor expired")
                return
            except StoreError as exc:
                log.error("replay failed: %s", exc)
                self._close_client(client, CloseCode.INTERNAL_ERROR, "store unavailable")
                return
            if client.closing or sub.buffer is None:
                return  # disconnected, or unsubscribed
            if not page:
                break
            await self.tokens.ensure(page)
            head_number = self._head_number(chain_id)
            for change in page:
                if change.cursor > upto:
                    cursor = upto
                    break
                cursor = change.cursor
                event = change.event
                if event is None or change.kind not in wanted:
                    continue
                if confirmed_only and change.kind == "removed" and change.prior == "new":
                    continue  # never confirmed: nothing to take back
                enrichment = enrich(event, lambda a: self.tokens.get(chain_id, a))
                if not event_filter.matches(event, enrichment.amount):
                    continue
                data = alert_body(event, head_number, enrichment, cursor)
                self.hub.send(sub, Payload(data, PREFIX_LEN))
                self.stats["replayed"] += 1
            self._flush((client,))
            await client.writable()
            if client.closing or sub.buffer is None:
                return
        self.stats["replay_buffered"] += self.hub.end_replay(sub, upto)
        self._flush((client,))
