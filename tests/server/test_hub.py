"""Routing (chainwatch.server.hub) and frame building (chainwatch.server.frames), no event loop.

The hub routes the store's change log: changes are built here with explicit cursors (``change``
and ``head``), as the store numbers them: an event's id is the cursor of its ``new`` change.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from chainwatch.core import rpc
from chainwatch.core.alert import TokenInfo, alert_body
from chainwatch.core.filters import Catalog, ContractSchema, EventSchema, parse_event_filter
from chainwatch.core.filters import parse_log_filter as log_filter
from chainwatch.core.model import Change, Head, Log, Status, StoredEvent
from chainwatch.core.protocol import EventsSpec, HeadsSpec, LogsSpec
from chainwatch.server.frames import Payload, notification_parts, text_frame_header
from chainwatch.server.hub import PREFIX_LEN, Hub

CHAIN = 31337
TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
TRANSFER0 = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ALICE = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
BOB = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CATALOGS = {
    CHAIN: Catalog(
        CHAIN,
        "dev",
        (
            ContractSchema(
                "Token",
                TOKEN,
                (EventSchema("Transfer", {"from": "address", "to": "address", "value": "int"}),),
            ),
        ),
    )
}


class Recorder:
    """A recipient that parses what it is sent."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.datas: list[bytes] = []
        self.overflowed = 0

    def push(self, header: bytes, prefix: bytes, data: bytes, suffix: bytes) -> None:
        self.parts.append(header + prefix + data + suffix)
        self.datas.append(data)

    def overflow(self) -> None:
        self.overflowed += 1

    def take(self) -> list[dict[str, Any]]:
        out = [json.loads(_payload(frame)) for frame in self.parts]
        self.parts.clear()
        return out

    def results(self) -> list[tuple[Any, Any]]:
        """(id, status) of event notifications, (logIndex, removed) of logs ones."""
        return [(r[1], r[2]) if len(r) == 3 else r for r in self.seen()]

    def seen(self) -> list[tuple[Any, ...]]:
        """(cursor, id, status) of event notifications, (logIndex, removed) of logs ones."""
        out: list[tuple[Any, ...]] = []
        for message in self.take():
            result = message["params"]["result"]
            if "id" in result:
                out.append((result["cursor"], result["id"], result["status"]))
            else:
                assert "cursor" not in result  # logs keep the node's own format
                out.append((int(result["logIndex"], 16), result["removed"]))
        return out


def _payload(frame: bytes) -> bytes:
    length = frame[1] & 0x7F
    offset = 2
    if length == 126:
        length, offset = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, offset = int.from_bytes(frame[2:10], "big"), 10
    assert frame[0] == 0x81 and len(frame) == offset + length
    return frame[offset:]


def stored(event_id: int, status: Status = "new", value: int = 5, block: int = 10) -> StoredEvent:
    topics = (TRANSFER0, "0x" + "0" * 24 + ALICE[2:].lower(), "0x" + "0" * 24 + BOB[2:].lower())
    log = Log(TOKEN, topics, f"0x{value:064x}", block, f"0x{block:064x}", "0x" + "cc" * 32, 0,
              event_id)  # fmt: skip
    args = {"from": ALICE, "to": BOB, "value": str(value)}
    return StoredEvent(event_id, CHAIN, log, "Token", "Transfer", args, None, status)


def change(
    cursor: int,
    kind: Status = "new",
    event_id: int | None = None,
    *,
    prior: Status | None = None,
    value: int = 5,
    block: int = 10,
) -> Change:
    """An event change; a ``new`` one is of the event whose id is its cursor."""
    if event_id is None:
        assert kind == "new", "a confirmation or removal names its event"
        event_id = cursor
    event = stored(event_id, kind, value=value, block=block)
    return Change(cursor, CHAIN, kind, event=event, prior=prior)


def head(
    cursor: int, number: int, chain_id: int = CHAIN, raw: dict[str, Any] | None = None
) -> Change:
    block = Head(number, f"0x{number:064x}", f"0x{number - 1:064x}", raw=raw or {})
    return Change(cursor, chain_id, "head", head=block)


def events_spec(obj: dict[str, Any] | None = None) -> EventsSpec:
    return EventsSpec(parse_event_filter(obj or {}, CATALOGS, CHAIN))


def route(
    hub: Hub,
    *changes: Change,
    head_number: int | None = 10,
    tokens: dict[str, TokenInfo] | None = None,
) -> set[Any]:
    def head_of(chain_id: int) -> int | None:
        assert chain_id == CHAIN
        return head_number

    def token_of(chain_id: int, address: str) -> TokenInfo | None:
        assert chain_id == CHAIN
        return (tokens or {}).get(address)

    return hub.route(list(changes), head_number=head_of, token_of=token_of)


def replayed(event: StoredEvent, cursor: int) -> Payload:
    """What the server's replay sends for a change it read from the log."""
    return Payload(alert_body(event, 10, cursor=cursor), PREFIX_LEN)


# --- frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 1 << 20])
def test_frame_header_is_rfc6455(length: int) -> None:
    data = b"x" * length
    expected = Frame(Opcode.TEXT, data).serialize(mask=False)
    assert text_frame_header(length) + data == expected


def test_notification_parts_match_the_rpc_encoder() -> None:
    before, after = notification_parts("0xabc")
    result = '{"a":[1,2]}'
    assert (before + result.encode() + after).decode() == rpc.encode_notification("0xabc", result)
    parsed = rpc.parse_incoming(before + result.encode() + after)
    assert parsed == rpc.Notification("0xabc", {"a": [1, 2]})


# --- routing ---------------------------------------------------------------------------------


def test_heads_go_to_newheads_subscribers_of_the_chain() -> None:
    hub = Hub()
    alice, other, events = Recorder(), Recorder(), Recorder()
    hub.subscribe(alice, "0x" + "1" * 32, HeadsSpec(CHAIN))
    hub.subscribe(other, "0x" + "2" * 32, HeadsSpec(1))
    hub.subscribe(events, "0x" + "3" * 32, events_spec())
    assert route(hub, head(1, 11, raw={"number": "0xb", "x": "y"})) == {alice}
    (message,) = alice.take()
    assert message["params"] == {"subscription": "0x" + "1" * 32,
                                 "result": {"number": "0xb", "x": "y"}}  # fmt: skip
    assert other.take() == [] and events.take() == []
    assert route(hub, head(2, 7, chain_id=1)) == {other}
    (message,) = other.take()
    assert message["params"]["result"]["number"] == "0x7"  # the header, no cursor in it
    assert "cursor" not in message["params"]["result"]
    assert alice.take() == []


def test_equal_filters_share_one_group_and_one_encoding() -> None:
    hub = Hub()
    clients = [Recorder() for _ in range(3)]
    for i, client in enumerate(clients):
        hub.subscribe(client, f"0x{i:032x}", events_spec({"events": ["Transfer"]}))
    hub.subscribe(clients[0], "0x" + "f" * 32, events_spec({"where": [["value", ">", "100"]]}))
    groups = {sub.group for client in clients for sub in hub.subscriptions(client).values()}
    assert len(groups) == 2
    assert route(hub, change(1)) == set(clients)
    # Encoded once: every subscriber of the group is handed the very same bytes.
    assert len({id(c.datas[0]) for c in clients}) == 1
    for client in clients:
        assert client.results() == [(1, "new")]


def test_filters_select() -> None:
    hub = Hub()
    big, small, logs = Recorder(), Recorder(), Recorder()
    hub.subscribe(big, "0x1", events_spec({"where": [["value", ">=", "100"]]}))
    hub.subscribe(small, "0x2", events_spec({"where": [["value", "<", "100"]]}))
    hub.subscribe(logs, "0x3", LogsSpec(CHAIN, log_filter({"address": TOKEN})))
    assert route(hub, change(1, value=5), change(2, value=500)) == {big, small, logs}
    assert big.results() == [(2, "new")]
    assert small.results() == [(1, "new")]
    assert logs.results() == [(1, False), (2, False)]
    assert route(hub, change(3, value=500)) == {big, logs}  # only the clients it concerns
    assert small.results() == []


def test_finality_new() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec())
    route(hub, change(1), change(2))
    assert route(hub, change(3, "confirmed", 1)) == set()  # not sent again
    route(hub, change(4, "removed", 2, prior="new"))  # sent again, removed
    route(hub, change(5, "removed", 1, prior="confirmed"))  # and after its confirmation
    assert client.seen() == [(1, 1, "new"), (2, 2, "new"), (4, 2, "removed"), (5, 1, "removed")]


def test_an_event_first_seen_then_confirmed_is_sent_once_to_each() -> None:
    hub = Hub()
    new, confirmed = Recorder(), Recorder()
    hub.subscribe(new, "0x1", events_spec())
    hub.subscribe(confirmed, "0x2", events_spec({"finality": "confirmed"}))
    # One commit with the insert and its immediate confirmation (confirmations = 1).
    route(hub, change(1), change(2, "confirmed", 1), change(3), change(4, "confirmed", 3))
    assert new.seen() == [(1, 1, "new"), (3, 3, "new")]
    assert confirmed.seen() == [(2, 1, "confirmed"), (4, 3, "confirmed")]


def test_logs_are_sent_once_and_again_when_removed() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", LogsSpec(CHAIN, log_filter(None)))
    route(hub, change(1))
    route(hub, change(2, "confirmed", 1))
    route(hub, change(3, "removed", 1, prior="confirmed"))
    assert client.results() == [(1, False), (1, True)]


def test_removal_only_to_those_who_could_have_seen_it() -> None:
    hub = Hub()
    early, middle, late = Recorder(), Recorder(), Recorder()
    early_sub = hub.subscribe(early, "0x1", events_spec())
    route(hub, change(1))
    middle_sub = hub.subscribe(middle, "0x2", events_spec())
    route(hub, change(2))
    late_sub = hub.subscribe(late, "0x3", LogsSpec(CHAIN, log_filter(None)))
    assert (early_sub.floor, middle_sub.floor, late_sub.floor) == (0, 1, 2)
    route(hub, change(3, "removed", 1, prior="new"), change(4, "removed", 2, prior="new"))
    assert early.results() == [(1, "new"), (2, "new"), (1, "removed"), (2, "removed")]
    assert middle.results() == [(2, "new"), (2, "removed")]
    assert late.results() == []


def test_finality_confirmed() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec({"finality": "confirmed"}))
    route(hub, change(1), change(2))
    assert client.results() == []
    route(hub, change(3, "confirmed", 1))
    route(hub, change(4, "removed", 2, prior="new"))  # a confirmed subscriber never saw it
    route(hub, change(5, "removed", 1, prior="confirmed"))  # a deeper reorg: it was sent
    assert client.seen() == [(3, 1, "confirmed"), (5, 1, "removed")]


def test_confirmed_removal_needs_the_confirmation_to_have_been_sendable() -> None:
    hub = Hub()
    before, between, after, resumed = Recorder(), Recorder(), Recorder(), Recorder()
    hub.subscribe(before, "0x1", events_spec({"finality": "confirmed"}))
    route(hub, change(1))
    hub.subscribe(between, "0x2", events_spec({"finality": "confirmed"}))
    route(hub, change(2, "confirmed", 1))
    hub.subscribe(after, "0x3", events_spec({"finality": "confirmed"}))
    sub = hub.subscribe(resumed, "0x4", events_spec({"finality": "confirmed", "since": 0}))
    assert hub.end_replay(sub, hub.last_cursor) == 0
    route(hub, change(3, "removed", 1, prior="confirmed"))
    assert before.results() == [(1, "confirmed"), (1, "removed")]
    assert between.results() == [(1, "confirmed"), (1, "removed")]
    assert after.results() == []
    assert resumed.results() == [(1, "removed")]  # since 0: the replay would have sent it


def test_a_never_confirmed_removal_never_goes_to_confirmed_subscribers() -> None:
    hub = Hub()
    route(hub, change(1), change(2))  # before the subscriptions: confirmations unknown
    plain, resumed = Recorder(), Recorder()
    hub.subscribe(plain, "0x1", events_spec({"finality": "confirmed"}))
    sub = hub.subscribe(resumed, "0x2", events_spec({"finality": "confirmed", "since": 0}))
    hub.end_replay(sub, hub.last_cursor)
    route(hub, change(3, "removed", 1, prior="new"))  # even one that may hold anything
    # A confirmation this hub never routed: only a resuming subscriber may hold it.
    route(hub, change(4, "removed", 2, prior="confirmed"))
    assert plain.results() == []
    assert resumed.seen() == [(4, 2, "removed")]


def test_confirmations_are_forgotten_after_the_window() -> None:
    hub = Hub(confirmed_window=10)
    client, resumed = Recorder(), Recorder()
    route(hub, change(1, block=10))
    hub.subscribe(client, "0x1", events_spec({"finality": "confirmed"}))
    route(hub, change(2, "confirmed", 1, block=10))
    hub.subscribe(resumed, "0x2", events_spec({"finality": "confirmed", "since": 0}))
    hub.end_replay(hub.subscriptions(resumed)["0x2"], hub.last_cursor)
    route(hub, head(3, 21))  # the window: blocks 11 and up
    route(hub, change(4, "removed", 1, prior="confirmed", block=10))
    assert client.results() == [(1, "confirmed")]
    assert resumed.results() == [(1, "removed")]


def test_a_head_forgets_only_the_confirmations_below_the_window() -> None:
    hub = Hub(confirmed_window=10)
    route(hub, *(change(n, block=n) for n in range(5, 15)))
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec({"finality": "confirmed"}))
    route(hub, *(change(n + 10, "confirmed", n, block=n) for n in range(5, 15)))
    route(hub, head(25, 21))  # window: 11 and up
    route(hub, *(change(n + 21, "removed", n, prior="confirmed", block=n) for n in range(5, 15)))
    removed = [r for r in client.results() if r[1] == "removed"]
    assert removed == [(n, "removed") for n in range(11, 15)]


def test_buffering_then_end_replay_sends_only_cursors_after_replayed_to() -> None:
    hub = Hub()
    client = Recorder()
    route(hub, change(1), change(2))
    sub = hub.subscribe(client, "0x1", events_spec({"since": 0}))
    assert sub.buffer == [] and hub.last_cursor == 2
    # Live, while the replay runs: 2 removed, 3 new, 3 confirmed (a finality-new subscriber
    # does not want the confirmation, so it is not buffered).
    assert route(hub, change(3, "removed", 2, prior="new"), change(4), change(5, "confirmed", 4))
    assert client.results() == []
    assert [cursor for cursor, _ in sub.buffer] == [3, 4]
    # The replay read the log up to cursor 3 (it raced with the removal): 1, 2, 2 removed.
    for event, cursor in [(stored(1), 1), (stored(2), 2), (stored(2, "removed"), 3)]:
        hub.send(sub, replayed(event, cursor))
    assert hub.end_replay(sub, 3) == 1
    assert sub.buffer is None
    assert client.seen() == [(1, 1, "new"), (2, 2, "new"), (3, 2, "removed"), (4, 4, "new")]
    route(hub, change(6))
    assert client.seen() == [(6, 6, "new")]
    assert hub.end_replay(sub, 6) == 0  # once live, nothing more to send


def test_end_replay_sends_a_change_the_replay_missed() -> None:
    hub = Hub()
    client = Recorder()
    route(hub, change(1))
    sub = hub.subscribe(client, "0x1", events_spec({"since": 0}))
    route(hub, change(2, "removed", 1, prior="new"))
    hub.send(sub, replayed(stored(1), 1))
    assert hub.end_replay(sub, 1) == 1  # the replay read the log before the removal
    assert client.seen() == [(1, 1, "new"), (2, 1, "removed")]


def test_buffer_overflow_is_reported() -> None:
    hub = Hub(buffer_limit=3)
    client, other = Recorder(), Recorder()
    hub.subscribe(client, "0x1", events_spec({"since": 0}))
    hub.subscribe(other, "0x2", events_spec())
    route(hub, *(change(i) for i in range(1, 4)))
    assert not client.overflowed
    # Touched although nothing was pushed: the server sees it overflowed when it flushes.
    assert route(hub, change(4)) == {client, other}
    assert client.overflowed and client.take() == []
    assert not other.overflowed and len(other.results()) == 4


def test_unsubscribe_and_drop_forget_everything() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec())
    hub.subscribe(client, "0x2", LogsSpec(CHAIN, log_filter(None)))
    hub.subscribe(client, "0x3", HeadsSpec(CHAIN))
    assert hub.unsubscribe(client, "0x1") is True
    assert hub.unsubscribe(client, "0x1") is False
    assert set(hub.subscriptions(client)) == {"0x2", "0x3"}
    route(hub, change(1))
    assert client.results() == [(1, False)]
    hub.drop(client)
    assert hub.clients == 0 and hub.subscriptions(client) == {}
    assert hub.unsubscribe(client, "0x2") is False
    assert route(hub, change(2), head(3, 3)) == set()
    assert client.take() == []


def test_erc20_amount_and_token_in_results() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec({"where": [["amount", ">=", "0.5"]]}))
    route(hub, change(1, value=5), change(2, value=4), head_number=12, tokens={TOKEN: ("TT", 1)})
    (message,) = client.take()
    result = message["params"]["result"]
    assert result["id"] == 1 and result["cursor"] == 1
    assert result["token"] == {"symbol": "TT", "decimals": 1}
    assert result["amount"] == "0.5"
    assert result["confirmations"] == 3
    assert result["historical"] is False
    assert result["args"]["value"] == "5"
    route(hub, change(3, "removed", 1, prior="new"), head_number=12, tokens={TOKEN: ("TT", 1)})
    (message,) = client.take()
    assert message["params"]["result"]["confirmations"] == 0
    assert message["params"]["result"]["amount"] == "0.5"


def test_address_filters_are_indexed_and_still_exact() -> None:
    hub = Hub()
    to_bob, to_alice, everything = Recorder(), Recorder(), Recorder()
    hub.subscribe(to_bob, "0x1", events_spec({"where": [["to", "==", BOB.lower()]]}))
    hub.subscribe(to_alice, "0x2", events_spec({"where": [["to", "==", ALICE]]}))
    hub.subscribe(everything, "0x3", events_spec())
    route(hub, change(1), change(2))  # both to BOB
    assert to_bob.results() == [(1, "new"), (2, "new")]
    assert to_alice.results() == []
    assert everything.results() == [(1, "new"), (2, "new")]
    # An event of a contract the catalog does not know is still tried on indexed filters.
    stray = StoredEvent(3, CHAIN, stored(3).log, "Renamed", "Transfer",
                        {"from": ALICE, "to": BOB.upper().replace("0X", "0x"), "value": "1"},
                        None, "new")  # fmt: skip
    route(hub, Change(3, CHAIN, "new", event=stray))
    assert to_bob.results() == [(3, "new")]
    assert to_alice.results() == [] and everything.results() == [(3, "new")]
    assert hub.unsubscribe(to_bob, "0x1")
    route(hub, change(4))
    assert to_bob.results() == [] and everything.results() == [(4, "new")]


# --- cursors ---------------------------------------------------------------------------------


def test_every_event_notification_carries_its_change_cursor() -> None:
    hub = Hub()
    new, confirmed = Recorder(), Recorder()
    hub.subscribe(new, "0x1", events_spec())
    hub.subscribe(confirmed, "0x2", events_spec({"finality": "confirmed"}))
    route(hub, change(1), head(2, 11), change(3))
    route(hub, change(7, "confirmed", 1), change(8, "confirmed", 3))  # cursors may skip
    route(hub, change(9, "removed", 3, prior="confirmed"))
    assert new.seen() == [(1, 1, "new"), (3, 3, "new"), (9, 3, "removed")]
    assert confirmed.seen() == [(7, 1, "confirmed"), (8, 3, "confirmed"), (9, 3, "removed")]
    assert hub.last_cursor == 9


def test_a_change_at_or_below_last_cursor_is_not_routed_twice() -> None:
    hub = Hub()
    client, heads = Recorder(), Recorder()
    hub.subscribe(client, "0x1", events_spec())
    hub.subscribe(heads, "0x2", HeadsSpec(CHAIN))
    route(hub, change(1), head(2, 10))
    # A read of the log overlapping the last one.
    assert route(hub, change(1), head(2, 10), change(3)) == {client}
    assert hub.last_cursor == 3
    assert route(hub, change(2, "removed", 1, prior="new"), head(3, 10)) == set()
    assert client.seen() == [(1, 1, "new"), (3, 3, "new")]
    assert len(heads.take()) == 1
    assert hub.last_cursor == 3


def test_last_cursor_moves_with_every_change_and_sets_new_floors() -> None:
    hub = Hub()
    route(hub, change(1), head(4, 10, chain_id=1))  # nobody watches: still routed
    assert hub.last_cursor == 4
    sub = hub.subscribe(Recorder(), "0x1", events_spec())
    assert sub.floor == 4 and sub.since is None and sub.buffer is None


def test_resuming_subscriptions_have_floor_0_and_get_removals_of_what_they_saw_before() -> None:
    hub = Hub()
    route(hub, change(1), change(2), change(3, "confirmed", 1), change(4))
    plain, resumed, resumed_confirmed = Recorder(), Recorder(), Recorder()
    plain_sub = hub.subscribe(plain, "0x1", events_spec())
    sub = hub.subscribe(resumed, "0x2", events_spec({"since": 3}))
    sub_confirmed = hub.subscribe(
        resumed_confirmed, "0x3", events_spec({"finality": "confirmed", "since": 3})
    )
    assert (plain_sub.floor, sub.floor, sub_confirmed.floor) == (4, 0, 0)
    assert sub.since == 3 and sub.group is plain_sub.group  # `since` aside, the same filter
    hub.send(sub, replayed(stored(4), 4))  # the replay: the log after cursor 3
    assert hub.end_replay(sub, 4) == 0
    assert hub.end_replay(sub_confirmed, 4) == 0
    # A reorg of events seen on an earlier connection (ids at or below `since` included).
    route(
        hub,
        change(5, "removed", 1, prior="confirmed"),
        change(6, "removed", 2, prior="new"),
        change(7, "removed", 4, prior="new"),
    )
    assert plain.results() == []
    assert resumed.seen() == [(4, 4, "new"), (5, 1, "removed"), (6, 2, "removed"),
                              (7, 4, "removed")]  # fmt: skip
    assert resumed_confirmed.seen() == [(5, 1, "removed")]


# --- the property ----------------------------------------------------------------------------

addresses_st = st.sampled_from([ALICE, BOB, ALICE.lower(), "0x" + "ab" * 20])
clauses_st = st.one_of(
    st.tuples(st.sampled_from(["from", "to"]), st.sampled_from(["==", "!="]), addresses_st),
    st.tuples(st.just("value"), st.sampled_from(["==", ">", "<"]), st.integers(0, 6).map(str)),
).map(list)
filters_st = st.fixed_dictionaries(
    {},
    optional={
        "where": st.lists(clauses_st, max_size=3),
        "events": st.just(["Transfer"]),
        "finality": st.sampled_from(["new", "confirmed"]),
        "since": st.just(0),
    },
)
# What happens to each event after it is stored: its later statuses, in order.
FATES: list[tuple[Status, ...]] = [(), ("confirmed",), ("removed",), ("confirmed", "removed")]
events_st = st.lists(
    st.tuples(addresses_st, addresses_st, st.integers(0, 6), st.booleans(), st.sampled_from(FATES)),
    max_size=8,
)


def change_log(raw: list[Any], rand: Any) -> list[Change]:
    """The changes of ``raw`` events: each event's in order, the events' interleaved."""
    pending: list[list[tuple[int, Status, Status | None]]] = []
    for i, (*_, fate) in enumerate(raw):
        statuses: list[Status] = ["new", *fate]
        priors: list[Status | None] = [None, *statuses[:-1]]
        pending.append([(i, s, p) for s, p in zip(statuses, priors, strict=True)])
    ids: dict[int, int] = {}
    changes: list[Change] = []
    while any(pending):
        i, status, prior = rand.choice([p for p in pending if p]).pop(0)
        cursor = len(changes) + 1
        frm, to, value, known, _ = raw[i]
        event_id = ids.setdefault(i, cursor)
        log = stored(event_id, value=value).log
        args = {"from": frm, "to": to, "value": str(value)}
        event = StoredEvent(event_id, CHAIN, log, "Token" if known else "Renamed", "Transfer",
                            args, None, status)  # fmt: skip
        changes.append(Change(cursor, CHAIN, status, event=event, prior=prior))
    return changes


def owed(changes: list[Change], event_filter: Any, start: int, last: int, floor: int) -> list[Any]:
    """The module docstring's rules: what a subscription made when ``last`` was the last cursor
    routed, with ``floor``, is sent, as (cursor, id, status), by a hub started at ``start``."""
    confirmed_at = {c.event.id: c.cursor for c in changes if c.kind == "confirmed" and c.event}
    out = []
    for c in changes:
        event = c.event
        assert event is not None
        if c.cursor <= last or not event_filter.matches(event):
            continue
        if event_filter.finality == "new":
            wanted = c.kind == "new" or (c.kind == "removed" and event.id > floor)
        elif c.kind == "removed" and c.prior == "confirmed":
            confirmation = confirmed_at[event.id]
            # One the hub did not route: only a resuming subscription may hold it.
            wanted = floor == 0 if confirmation <= start else confirmation > floor
        else:
            wanted = c.kind == "confirmed"
        if wanted:
            out.append((c.cursor, event.id, c.kind))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(filters_st, min_size=1, max_size=6), events_st, st.randoms(), st.data())
def test_routing_delivers_exactly_what_filters_match(
    filters: list[Any], raw: list[Any], rand: Any, data: st.DataObject
) -> None:
    """The hub starts with part of the log behind it; subscriptions come between batches
    (resuming ones buffer through the next batch), and batches overlap: each subscription is
    sent exactly what its filter matches among what it is owed."""
    changes = change_log(raw, rand)
    start = data.draw(st.integers(0, len(changes)), label="start")
    cuts = sorted(data.draw(st.lists(st.integers(start, len(changes)), min_size=len(filters),
                                     max_size=len(filters)), label="cuts"))  # fmt: skip
    hub = Hub()
    hub.last_cursor = start  # as the server starts it: the last cursor in the log
    subs: list[tuple[Recorder, Any, int, int]] = []
    replaying: list[tuple[Any, int]] = []  # (subscription, the cursor its replay reads to)
    done = start
    for i, (obj, cut) in enumerate(zip(filters, cuts, strict=True)):
        route(hub, *changes[max(0, done - 2) : cut])  # reads of the log may overlap
        for sub, upto in replaying:
            hub.end_replay(sub, upto)
        replaying.clear()
        done = cut
        client = Recorder()
        spec = events_spec(obj)
        sub = hub.subscribe(client, f"0x{i:032x}", spec)
        floor = 0 if "since" in obj else hub.last_cursor  # what may be held: all, or the new
        subs.append((client, spec.filter, hub.last_cursor, floor))
        if sub.buffer is not None:
            replaying.append((sub, hub.last_cursor))
    route(hub, *changes[max(0, done - 2) :])
    for sub, upto in replaying:
        hub.end_replay(sub, upto)
    for client, event_filter, last, floor in subs:
        assert client.seen() == owed(changes, event_filter, start, last, floor)


def test_a_resume_from_beyond_what_the_hub_has_routed_sends_nothing_twice() -> None:
    # A gateway whose reading of the log is behind: the client resumes from cursor 4, the hub
    # has routed up to 2. The replay finds nothing yet; what the hub routes next up to 4 is
    # the client's already.
    hub = Hub()
    route(hub, change(1), change(2))
    client = Recorder()
    sub = hub.subscribe(client, "0x1", events_spec({"since": 4}))
    assert hub.end_replay(sub, hub.last_cursor) == 0
    route(hub, change(3), change(4), change(5), change(6, "removed", 3, prior="new"))
    assert client.seen() == [(5, 5, "new"), (6, 3, "removed")]
