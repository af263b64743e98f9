"""Routing (chainwatch.server.hub) and frame building (chainwatch.server.frames), no event loop."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from chainwatch.core import rpc
from chainwatch.core.filters import Catalog, ContractSchema, EventSchema, parse_event_filter
from chainwatch.core.filters import parse_log_filter as log_filter
from chainwatch.core.model import Head, Log, Status, StoredEvent
from chainwatch.core.protocol import EventsSpec, HeadsSpec, LogsSpec
from chainwatch.server.frames import notification_parts, text_frame_header
from chainwatch.server.hub import Hub

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
        self.overflowed = False

    def push(self, header: bytes, prefix: bytes, data: bytes, suffix: bytes) -> None:
        self.parts.append(header + prefix + data + suffix)
        self.datas.append(data)

    def overflow(self) -> None:
        self.overflowed = True

    def take(self) -> list[dict[str, Any]]:
        out = [json.loads(_payload(frame)) for frame in self.parts]
        self.parts.clear()
        return out

    def results(self) -> list[tuple[int, str]]:
        """(id, status) of event notifications, ("log", removed) pairs for logs."""
        out: list[tuple[Any, Any]] = []
        for message in self.take():
            result = message["params"]["result"]
            if "id" in result:
                out.append((result["id"], result["status"]))
            else:
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


def events_spec(obj: dict[str, Any] | None = None) -> EventsSpec:
    return EventsSpec(parse_event_filter(obj or {}, CATALOGS, CHAIN))


def route(hub: Hub, *events: StoredEvent, head: int | None = 10) -> set[Any]:
    return hub.route_events(CHAIN, list(events), head_number=head)


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
    alice, other = Recorder(), Recorder()
    hub.subscribe(alice, "0x" + "1" * 32, HeadsSpec(CHAIN))
    hub.subscribe(other, "0x" + "2" * 32, HeadsSpec(1))
    head = Head(11, "0x" + "ab" * 32, "0x" + "cd" * 32, 5, raw={"number": "0xb", "x": "y"})
    assert hub.route_head(CHAIN, head) == {alice}
    (message,) = alice.take()
    assert message["params"] == {"subscription": "0x" + "1" * 32,
                                 "result": {"number": "0xb", "x": "y"}}  # fmt: skip
    assert other.take() == []


def test_equal_filters_share_one_group_and_one_encoding() -> None:
    hub = Hub()
    clients = [Recorder() for _ in range(3)]
    for i, client in enumerate(clients):
        hub.subscribe(client, f"0x{i:032x}", events_spec({"events": ["Transfer"]}))
    hub.subscribe(clients[0], "0x" + "f" * 32, events_spec({"where": [["value", ">", "100"]]}))
    assert route(hub, stored(1)) == set(clients)
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
    route(hub, stored(1, value=5), stored(2, value=500))
    assert big.results() == [(2, "new")]
    assert small.results() == [(1, "new")]
    assert logs.results() == [(1, False), (2, False)]


def test_finality_new() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec())
    route(hub, stored(1), stored(2))
    route(hub, stored(1, "confirmed"))  # not sent again
    route(hub, stored(2, "removed"))  # sent again, removed
    assert client.results() == [(1, "new"), (2, "new"), (2, "removed")]


def test_event_seen_first_as_confirmed_is_sent_once() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec())
    # One sink call with both the insert and its immediate confirmation (confirmations = 1).
    route(hub, stored(1), stored(1, "confirmed"), stored(2, "confirmed"))
    assert client.results() == [(1, "new"), (2, "confirmed")]


def test_logs_are_sent_once_and_again_when_removed() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", LogsSpec(CHAIN, log_filter(None)))
    route(hub, stored(1))
    route(hub, stored(1, "confirmed"))
    route(hub, stored(1, "removed"))
    assert client.results() == [(1, False), (1, True)]


def test_removal_only_to_those_who_could_have_seen_it() -> None:
    hub = Hub()
    early, late = Recorder(), Recorder()
    hub.subscribe(early, "0x1", events_spec())
    route(hub, stored(1))
    hub.subscribe(late, "0x2", events_spec())
    route(hub, stored(1, "removed"))
    assert early.results() == [(1, "new"), (1, "removed")]
    assert late.results() == []


def test_finality_confirmed() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec({"finality": "confirmed"}))
    route(hub, stored(1), stored(2))
    assert client.results() == []
    route(hub, stored(1, "confirmed"))
    route(hub, stored(2, "removed"))  # never confirmed: a confirmed subscriber never saw it
    route(hub, stored(1, "removed"))  # a deeper reorg: it was sent as confirmed
    assert client.results() == [(1, "confirmed"), (1, "removed")]


def test_confirmed_removal_needs_the_confirmation_to_have_been_sendable() -> None:
    hub = Hub()
    before, after, resumed = Recorder(), Recorder(), Recorder()
    hub.subscribe(before, "0x1", events_spec({"finality": "confirmed"}))
    route(hub, stored(1), stored(1, "confirmed"))
    hub.subscribe(after, "0x2", events_spec({"finality": "confirmed"}))
    sub = hub.subscribe(resumed, "0x3", events_spec({"finality": "confirmed", "since": 0}))
    hub.end_replay(sub, hub.high_water, {})
    route(hub, stored(1, "removed"))
    assert before.results() == [(1, "confirmed"), (1, "removed")]
    assert after.results() == []
    assert resumed.results() == [(1, "removed")]  # since 0: the replay would have sent it


def test_confirmations_are_forgotten_after_the_window() -> None:
    hub = Hub(confirmed_window=10)
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec({"finality": "confirmed"}))
    route(hub, stored(1, "confirmed", block=10))
    hub.route_head(CHAIN, Head(21, "0x" + "11" * 32, "0x" + "22" * 32))
    route(hub, stored(1, "removed", block=10))
    assert client.results() == [(1, "confirmed")]


def test_a_head_forgets_only_the_confirmations_below_the_window() -> None:
    hub = Hub(confirmed_window=10)
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec({"finality": "confirmed"}))
    route(hub, *(stored(n, "confirmed", block=n) for n in range(5, 15)))
    hub.route_head(CHAIN, Head(21, "0x" + "11" * 32, "0x" + "22" * 32))  # window: 11 and up
    route(hub, *(stored(n, "removed", block=n) for n in range(5, 15)))
    removed = [r for r in client.results() if r[1] == "removed"]
    assert removed == [(n, "removed") for n in range(11, 15)]


def test_buffering_then_end_replay_skips_what_the_replay_sent() -> None:
    hub = Hub()
    client = Recorder()
    route(hub, stored(1), stored(2))
    sub = hub.subscribe(client, "0x1", events_spec({"since": 0}))
    upto = hub.high_water
    assert upto == 2
    # Live, while the replay runs: 2 removed (replay read it before), 3 new.
    route(hub, stored(2, "removed"), stored(3))
    assert client.results() == []
    # The replay read 1 as new, 2 as removed (skipped) -- it raced with the removal.
    hub.send(sub, _payload_of(stored(1)))
    sent = hub.end_replay(sub, upto, {1: "new", 2: "removed"})
    assert sent == 1
    assert client.results() == [(1, "new"), (3, "new")]
    route(hub, stored(4))
    assert client.results() == [(4, "new")]


def test_end_replay_sends_a_change_the_replay_missed() -> None:
    hub = Hub()
    client = Recorder()
    route(hub, stored(1))
    sub = hub.subscribe(client, "0x1", events_spec({"since": 0}))
    route(hub, stored(1, "removed"))
    hub.send(sub, _payload_of(stored(1)))
    hub.end_replay(sub, 1, {1: "new"})  # the replay read it before the removal
    assert client.results() == [(1, "new"), (1, "removed")]


def test_buffer_overflow_is_reported() -> None:
    hub = Hub(buffer_limit=3)
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec({"since": 0}))
    route(hub, *(stored(i) for i in range(1, 4)))
    assert not client.overflowed
    route(hub, stored(4))
    assert client.overflowed


def test_unsubscribe_and_drop_forget_everything() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec())
    hub.subscribe(client, "0x2", LogsSpec(CHAIN, log_filter(None)))
    hub.subscribe(client, "0x3", HeadsSpec(CHAIN))
    assert hub.unsubscribe(client, "0x1") is True
    assert hub.unsubscribe(client, "0x1") is False
    route(hub, stored(1))
    assert client.results() == [(1, False)]
    hub.drop(client)
    assert hub.clients == 0
    assert route(hub, stored(2)) == set()
    assert hub.route_head(CHAIN, Head(3, "0x" + "11" * 32, "0x" + "22" * 32)) == set()


def test_erc20_amount_and_token_in_results() -> None:
    hub = Hub()
    client = Recorder()
    hub.subscribe(client, "0x1", events_spec({"where": [["amount", ">=", "0.5"]]}))
    tokens = {TOKEN: ("TT", 1)}
    hub.route_events(CHAIN, [stored(1, value=5), stored(2, value=4)], head_number=12,
                     token_of=tokens.get)  # fmt: skip
    (message,) = client.take()
    result = message["params"]["result"]
    assert result["id"] == 1
    assert result["token"] == {"symbol": "TT", "decimals": 1}
    assert result["amount"] == "0.5"
    assert result["confirmations"] == 3
    assert result["historical"] is False
    assert result["args"]["value"] == "5"


def _payload_of(event: StoredEvent) -> Any:
    from chainwatch.server.frames import Payload, event_result
    from chainwatch.server.hub import PREFIX_LEN

    return Payload(event_result(event, 10), PREFIX_LEN)


def test_address_filters_are_indexed_and_still_exact() -> None:
    hub = Hub()
    to_bob, to_alice, everything = Recorder(), Recorder(), Recorder()
    hub.subscribe(to_bob, "0x1", events_spec({"where": [["to", "==", BOB.lower()]]}))
    hub.subscribe(to_alice, "0x2", events_spec({"where": [["to", "==", ALICE]]}))
    hub.subscribe(everything, "0x3", events_spec())
    route(hub, stored(1), stored(2))  # both to BOB
    assert to_bob.results() == [(1, "new"), (2, "new")]
    assert to_alice.results() == []
    assert everything.results() == [(1, "new"), (2, "new")]
    # An event of a contract the catalog does not know is still tried on indexed filters.
    stray = StoredEvent(3, CHAIN, stored(3).log, "Renamed", "Transfer",
                        {"from": ALICE, "to": BOB.upper().replace("0X", "0x"), "value": "1"},
                        None, "new")  # fmt: skip
    route(hub, stray)
    assert to_bob.results() == [(3, "new")]
    assert to_alice.results() == [] and everything.results() == [(3, "new")]
    assert hub.unsubscribe(to_bob, "0x1")
    route(hub, stored(4))
    assert to_bob.results() == [] and everything.results() == [(4, "new")]


addresses_st = st.sampled_from([ALICE, BOB, ALICE.lower(), "0x" + "ab" * 20])
clauses_st = st.one_of(
    st.tuples(st.sampled_from(["from", "to"]), st.sampled_from(["==", "!="]), addresses_st),
    st.tuples(st.just("value"), st.sampled_from(["==", ">", "<"]), st.integers(0, 6).map(str)),
).map(list)
filters_st = st.fixed_dictionaries(
    {}, optional={"where": st.lists(clauses_st, max_size=3), "events": st.just(["Transfer"])}
)
events_st = st.lists(
    st.tuples(addresses_st, addresses_st, st.integers(0, 6), st.booleans()), max_size=8
)


@settings(max_examples=200, deadline=None)
@given(st.lists(filters_st, min_size=1, max_size=6), events_st)
def test_routing_delivers_exactly_what_filters_match(filters: list[Any], raw: list[Any]) -> None:
    hub = Hub()
    subs = []
    for i, obj in enumerate(filters):
        client = Recorder()
        spec = events_spec(obj)
        hub.subscribe(client, f"0x{i:032x}", spec)
        subs.append((client, spec.filter))
    events = []
    for i, (frm, to, value, known) in enumerate(raw):
        base = stored(i + 1, value=value)
        args = {"from": frm, "to": to, "value": str(value)}
        contract = "Token" if known else "Renamed"
        events.append(StoredEvent(i + 1, CHAIN, base.log, contract, "Transfer", args, None,
                                  "new"))  # fmt: skip
    route(hub, *events)
    for client, event_filter in subs:
        expected = [e.id for e in events if event_filter.matches(e)]
        assert [event_id for event_id, _ in client.results()] == expected
