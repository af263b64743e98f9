"""Downstream filters: parsing (errors name the field) and matching, with no event loop."""

from __future__ import annotations

import contextlib
from decimal import Context, Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainwatch.core.filters import (
    Catalog,
    ContractSchema,
    EventSchema,
    FilterError,
    arg_kind,
    erc20_value,
    parse_event_filter,
    parse_log_filter,
    parse_where_expr,
    scale_amount,
)
from chainwatch.core.model import Log, Status, StoredEvent

TRANSFER0 = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
APPROVAL0 = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
POOL = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512"
ALICE = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
BOB = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def topic_of(address: str) -> str:
    return "0x" + "0" * 24 + address.lower()[2:]


ERC20_EVENTS = (
    EventSchema("Transfer", {"from": "address", "to": "address", "value": "int"}),
    EventSchema("Approval", {"owner": "address", "spender": "address", "value": "int"}),
)
POOL_EVENTS = (
    EventSchema("Swap", {"sender": "address", "amount0In": "int", "to": "address"}),
    EventSchema("Sync", {"reserve0": "int", "reserve1": "int"}),
    EventSchema("Flag", {"on": "bool", "note": "string", "tag": "bytes", "path": "json"}),
    EventSchema("Rate", {"rate": "decimal"}),
)
CATALOG = Catalog(
    1,
    "mainnet",
    (
        ContractSchema("USDC", TOKEN, ERC20_EVENTS),
        ContractSchema("Pool", POOL, POOL_EVENTS),
        ContractSchema("ERC20", None, ERC20_EVENTS),
    ),
)
NO_WALLETS = Catalog(5, "goerli", (ContractSchema("Pool", POOL, POOL_EVENTS),))
CATALOGS = {1: CATALOG, 5: NO_WALLETS}


def log(address: str = TOKEN, topics: tuple[str, ...] = (TRANSFER0,)) -> Log:
    return Log(address, topics, "0x", 10, "0x" + "aa" * 32, "0x" + "bb" * 32, 0, 0)


def event(
    args: dict[str, Any] | None,
    *,
    contract: str | None = "USDC",
    name: str | None = "Transfer",
    address: str = TOKEN,
    topics: tuple[str, ...] = (TRANSFER0, topic_of(ALICE), topic_of(BOB)),
    status: Status = "new",
) -> StoredEvent:
    return StoredEvent(1, 1, log(address, topics), contract, name, args, None, status)


def transfer(value: int, frm: str = ALICE, to: str = BOB, **kw: Any) -> StoredEvent:
    return event({"from": frm, "to": to, "value": str(value)}, **kw)


def parse(obj: Any, default_chain: int = 1) -> Any:
    return parse_event_filter(obj, CATALOGS, default_chain)


def error_of(obj: Any) -> str:
    with pytest.raises(FilterError) as info:
        parse(obj)
    return str(info.value)


# --- scale_amount ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (1234500000, 6, "1234.5"),
        (0, 18, "0"),
        (1, 18, "0.000000000000000001"),
        (10**18, 18, "1"),
        (10**24 + 5, 18, "1000000.000000000000000005"),
        (42, 0, "42"),
        (2**256 - 1, 18, "115792089237316195423570985008687907853269984665640564039457."
                         "584007913129639935"),
        (-15, 1, "-1.5"),
    ],
)  # fmt: skip
def test_scale_amount(value: int, decimals: int, expected: str) -> None:
    assert scale_amount(value, decimals) == expected


@given(st.integers(min_value=0, max_value=2**256 - 1), st.integers(min_value=0, max_value=80))
def test_scale_amount_is_exact(value: int, decimals: int) -> None:
    text = scale_amount(value, decimals)
    with localcontext(Context(prec=200)):
        assert Decimal(text) * (Decimal(10) ** decimals) == value
    assert "e" not in text.lower()
    assert not (("." in text) and text.endswith("0"))


def test_erc20_value() -> None:
    assert erc20_value(transfer(5)) == 5
    four_topics = (TRANSFER0, topic_of(ALICE), topic_of(BOB), "0x" + "00" * 32)
    assert erc20_value(transfer(5, topics=four_topics)) is None  # ERC-721
    assert erc20_value(transfer(5, name="Approval")) is None
    assert erc20_value(event(None, name=None, contract=None)) is None


@pytest.mark.parametrize(
    ("abi_type", "hashed", "kind"),
    [
        ("uint256", False, "int"),
        ("int8", False, "int"),
        ("address", False, "address"),
        ("bool", False, "bool"),
        ("string", False, "string"),
        ("string", True, "bytes"),
        ("bytes32", False, "bytes"),
        ("bytes", False, "bytes"),
        ("ufixed128x18", False, "decimal"),
        ("uint256[]", False, "json"),
        ("tuple", False, "json"),
        ("tuple[2]", False, "json"),
    ],
)
def test_arg_kind(abi_type: str, hashed: bool, kind: str) -> None:
    assert arg_kind(abi_type, hashed) == kind


# --- node log filters ---------------------------------------------------------------------------

A_TOPIC = topic_of(ALICE)
B_TOPIC = topic_of(BOB)


@pytest.mark.parametrize(
    ("spec", "address", "topics", "matches"),
    [
        (None, TOKEN, (TRANSFER0,), True),
        ({}, TOKEN, (), True),
        ({"address": TOKEN.upper().replace("0X", "0x")}, TOKEN, (TRANSFER0,), True),
        ({"address": [POOL, TOKEN]}, TOKEN, (TRANSFER0,), True),
        ({"address": [POOL]}, TOKEN, (TRANSFER0,), False),
        ({"address": []}, TOKEN, (TRANSFER0,), True),
        ({"topics": [TRANSFER0]}, TOKEN, (TRANSFER0, A_TOPIC), True),
        ({"topics": [APPROVAL0]}, TOKEN, (TRANSFER0, A_TOPIC), False),
        ({"topics": [None, A_TOPIC]}, TOKEN, (TRANSFER0, A_TOPIC), True),
        ({"topics": [None, B_TOPIC]}, TOKEN, (TRANSFER0, A_TOPIC), False),
        ({"topics": [[TRANSFER0, APPROVAL0]]}, TOKEN, (APPROVAL0,), True),
        ({"topics": [[], A_TOPIC]}, TOKEN, (TRANSFER0, A_TOPIC), True),
        ({"topics": [[None, APPROVAL0]]}, TOKEN, (TRANSFER0,), True),
        # More positions than the log has topics: no match, even for wildcards (go-ethereum).
        ({"topics": [TRANSFER0, None, None]}, TOKEN, (TRANSFER0, A_TOPIC), False),
        ({"topics": [None]}, TOKEN, (), False),
        ({"topics": [TRANSFER0.upper().replace("0X", "0x")]}, TOKEN, (TRANSFER0,), True),
        ({"address": TOKEN, "topics": [TRANSFER0], "fromBlock": "latest"}, TOKEN, (TRANSFER0,),
         True),
    ],
)  # fmt: skip
def test_log_filter(spec: Any, address: str, topics: tuple[str, ...], matches: bool) -> None:
    assert parse_log_filter(spec).matches(log(address, topics)) is matches


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("0x00", "params[1]"),
        ({"address": "0x1234"}, "address"),
        ({"address": [TOKEN, 7]}, "address[1]"),
        ({"address": 7}, "address"),
        ({"topics": "0x00"}, "topics"),
        ({"topics": [None] * 5}, "topics"),
        ({"topics": ["0x12"]}, "topics[0]"),
        ({"topics": [None, [TRANSFER0, "zz"]]}, "topics[1][1]"),
        ({"topics": [{"a": 1}]}, "topics[0]"),
        ({"fromBlock": "0x1"}, "fromBlock"),
        ({"blockHash": "0x00"}, '"blockHash"'),
    ],
)
def test_log_filter_errors_name_the_field(spec: Any, field: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_log_filter(spec)
    assert str(info.value).startswith(field + ":")


def test_log_filter_key_is_order_insensitive() -> None:
    one = parse_log_filter({"address": [TOKEN, POOL], "topics": [[TRANSFER0, APPROVAL0]]})
    two = parse_log_filter({"address": [POOL.upper().replace("0X", "0x"), TOKEN],
                            "topics": [[APPROVAL0, TRANSFER0]]})  # fmt: skip
    assert one.key == two.key
    assert one.key != parse_log_filter({"address": [TOKEN]}).key


hex32 = st.sampled_from([TRANSFER0, APPROVAL0, A_TOPIC, B_TOPIC])
position = st.one_of(st.none(), hex32, st.lists(st.one_of(hex32, st.none()), max_size=3))


@given(
    addresses=st.one_of(st.none(), st.lists(st.sampled_from([TOKEN, POOL]), max_size=2)),
    topics=st.lists(position, max_size=4),
    log_address=st.sampled_from([TOKEN, POOL]),
    log_topics=st.lists(hex32, max_size=4),
)
def test_log_filter_matches_like_a_node(
    addresses: list[str] | None,
    topics: list[Any],
    log_address: str,
    log_topics: list[str],
) -> None:
    spec: dict[str, Any] = {"topics": topics}
    if addresses is not None:
        spec["address"] = addresses
    # The reference: go-ethereum's filterLogs, written out plainly.
    expected = True
    if addresses and log_address not in addresses:
        expected = False
    if len(topics) > len(log_topics):
        expected = False
    else:
        for wanted, have in zip(topics, log_topics, strict=False):
            alternatives = wanted if isinstance(wanted, list) else [wanted]
            if None in alternatives or not alternatives:
                continue
            if have not in alternatives:
                expected = False
    got = parse_log_filter(spec).matches(log(log_address, tuple(log_topics)))
    assert got is expected


# --- chainwatch filters: parsing -----------------------------------------------------------------


def test_empty_filter_selects_everything_on_the_default_chain() -> None:
    f = parse({})
    assert f.chain_id == 1 and f.finality == "new" and f.since is None
    assert f.matches(transfer(1))
    assert f.matches(event(None, name=None, contract=None))  # undecoded logs too
    assert parse(None).key == f.key
    assert parse({}, default_chain=5).chain_id == 5


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ([], "params[0]"),
        ({"chain": 1}, '"chain"'),
        ({"chain_id": 99}, "chain_id"),
        ({"chain_id": "1"}, "chain_id"),
        ({"chain_id": True}, "chain_id"),
        ({"finality": "safe"}, "finality"),
        ({"since": -1}, "since"),
        ({"since": "5"}, "since"),
        ({"since": False}, "since"),
        ({"contracts": "USDC"}, "contracts"),
        ({"contracts": ["USDC", 3]}, "contracts[1]"),
        ({"contracts": ["Nope"]}, "contracts[0]"),
        ({"contracts": [""]}, "contracts[0]"),
        ({"events": ["Mint"]}, "events[0]"),
        ({"contracts": ["Pool"], "events": ["Transfer"]}, "events[0]"),
        ({"where": {"value": 1}}, "where"),
        ({"where": [["value", ">"]]}, "where[0]"),
        ({"where": [[1, ">", 1]]}, "where[0][0]"),
        ({"where": [["value", "=~", 1]]}, "where[0][1]"),
        ({"where": [["value", "in", 1]]}, "where[0][2]"),
        ({"where": [["nope", "==", 1]]}, "where[0][0]"),
        ({"events": ["Transfer"], "where": [["spender", "==", ALICE]]}, "where[0][0]"),
        ({"events": ["Transfer"], "where": [["value", ">", "ten"]]}, "where[0][2]"),
        ({"events": ["Transfer"], "where": [["value", ">", 1.5]]}, "where[0][2]"),
        ({"events": ["Transfer"], "where": [["value", "in", [1, "x"]]]}, "where[0][2][1]"),
        ({"events": ["Transfer"], "where": [["to", "<", ALICE]]}, "where[0][1]"),
        ({"events": ["Transfer"], "where": [["to", "==", "0x12"]]}, "where[0][2]"),
        ({"events": ["Flag"], "where": [["on", "==", 1]]}, "where[0][2]"),
        ({"events": ["Flag"], "where": [["note", ">", "a"]]}, "where[0][1]"),
        ({"events": ["Transfer"], "where": [["amount", ">=", "NaN"]]}, "where[0][2]"),
        ({"events": ["Transfer"], "where": [["amount", ">=", "1e999999"]]}, "where[0][2]"),
        ({"where": [["value", "==", 1]] * 65}, "where"),
    ],
)
def test_errors_name_the_field(obj: Any, field: str) -> None:
    assert error_of(obj).startswith(field + ":")


def test_error_messages_say_what_is_wrong() -> None:
    assert "no argument 'spender'" in error_of(
        {"events": ["Transfer"], "where": [["spender", "==", ALICE]]}
    )
    assert "watched: USDC, Pool, ERC20" in error_of({"contracts": ["Nope"]})
    assert "operator < does not apply to address" in error_of(
        {"events": ["Transfer"], "where": [["to", "<", ALICE]]}
    )
    with pytest.raises(FilterError, match="is not watched on chain goerli"):
        parse({"contracts": [TOKEN]}, 5)


def test_where_on_an_argument_some_events_have_is_fine_without_events() -> None:
    # Pool's Sync has no amount0In, but Swap does: the filter selects Swaps.
    f = parse({"contracts": ["Pool"], "where": [["amount0In", ">", "0"]]})
    swap = event({"sender": ALICE, "amount0In": "5", "to": BOB}, contract="Pool", name="Swap",
                 address=POOL)  # fmt: skip
    sync = event({"reserve0": "1", "reserve1": "2"}, contract="Pool", name="Sync", address=POOL)
    assert f.matches(swap) and not f.matches(sync)


def test_where_an_event_of_the_named_set_lacks_is_refused() -> None:
    assert error_of({"events": ["Swap", "Sync"], "where": [["reserve0", ">", 1]]}).startswith(
        "where[0][0]: event Swap has no argument"
    )


def test_unknown_address_is_accepted_with_wallet_watches() -> None:
    other = "0x" + "12" * 20
    f = parse({"contracts": [other], "events": ["Transfer"], "where": [["value", ">", 1]]})
    assert f.addresses == frozenset({other})
    assert f.matches(transfer(2, address=other, contract="ERC20"))
    assert not f.matches(transfer(2))


def test_keys_group_equal_filters() -> None:
    a = parse({"contracts": ["USDC", TOKEN.upper().replace("0X", "0x")], "events": ["Transfer"],
               "where": [["value", ">", "5"], ["to", "==", BOB]]})  # fmt: skip
    b = parse({"events": ["Transfer"], "contracts": [TOKEN, "USDC"], "since": 4,
               "where": [["to", "==", BOB], ["value", ">", "5"]]})  # fmt: skip
    assert a.key == b.key
    assert a.key != parse({"events": ["Transfer"], "finality": "confirmed"}).key


# --- chainwatch filters: matching ----------------------------------------------------------------


def test_contracts_by_name_or_address_case_insensitive() -> None:
    assert parse({"contracts": ["USDC"]}).matches(transfer(1))
    assert parse({"contracts": [TOKEN.upper().replace("0X", "0x")]}).matches(transfer(1))
    assert not parse({"contracts": ["Pool"]}).matches(transfer(1))
    assert parse({"contracts": ["Pool", "USDC"]}).matches(transfer(1))


def test_events() -> None:
    f = parse({"events": ["Approval"]})
    assert not f.matches(transfer(1))
    assert f.matches(event({"owner": ALICE, "spender": BOB, "value": "1"}, name="Approval"))


@pytest.mark.parametrize(
    ("clause", "value", "matches"),
    [
        (["value", "==", "1000"], 1000, True),
        (["value", "==", 1000], 1000, True),
        (["value", "==", "0x3e8"], 1000, True),
        (["value", "!=", "1000"], 1000, False),
        (["value", ">", "999"], 1000, True),
        (["value", ">", "1000"], 1000, False),
        (["value", ">=", "1000"], 1000, True),
        (["value", "<", "1001"], 1000, True),
        (["value", "<=", "999"], 1000, False),
        (["value", "in", ["1", "1000", 7]], 1000, True),
        (["value", "in", []], 1000, False),
        # Integers of any size, compared as integers, not as text or floats.
        (["value", ">", str(2**255)], 2**256 - 1, True),
        (["value", "==", str(2**256 - 1)], 2**256 - 1, True),
        (["value", "==", str(2**53 + 1)], 2**53, False),
        (["value", ">", "9"], 10, True),  # "10" > "9" as text would be False
    ],
)
def test_integer_clauses(clause: list[Any], value: int, matches: bool) -> None:
    f = parse({"events": ["Transfer"], "where": [clause]})
    assert f.matches(transfer(value)) is matches


@pytest.mark.parametrize(
    ("clause", "matches"),
    [
        (["to", "==", BOB], True),
        (["to", "==", BOB.lower()], True),
        (["to", "==", BOB.upper().replace("0X", "0x")], True),
        (["to", "!=", BOB], False),
        (["from", "in", [BOB.lower(), ALICE.lower()]], True),
        (["from", "in", [BOB]], False),
    ],
)
def test_address_clauses(clause: list[Any], matches: bool) -> None:
    assert parse({"where": [clause], "events": ["Transfer"]}).matches(transfer(1)) is matches


def test_other_kinds() -> None:
    flag = event({"on": True, "note": "hi", "tag": "0xABcd", "path": [1, {"a": "2"}]},
                 contract="Pool", name="Flag", address=POOL)  # fmt: skip
    rate = event({"rate": "1.50"}, contract="Pool", name="Rate", address=POOL)
    cases = [
        ({"events": ["Flag"], "where": [["on", "==", True]]}, flag, True),
        ({"events": ["Flag"], "where": [["on", "!=", True]]}, flag, False),
        ({"events": ["Flag"], "where": [["note", "==", "hi"]]}, flag, True),
        ({"events": ["Flag"], "where": [["note", "in", ["x", "hi"]]]}, flag, True),
        ({"events": ["Flag"], "where": [["tag", "==", "0xabCD"]]}, flag, True),
        ({"events": ["Flag"], "where": [["path", "==", [1, {"a": "2"}]]]}, flag, True),
        ({"events": ["Flag"], "where": [["path", "==", [1]]]}, flag, False),
        ({"events": ["Rate"], "where": [["rate", ">", "1.4999"]]}, rate, True),
        ({"events": ["Rate"], "where": [["rate", "==", 1.5]]}, rate, True),
    ]
    for obj, ev, expected in cases:
        assert parse(obj).matches(ev) is expected, obj


def test_several_clauses_all_hold() -> None:
    f = parse({"events": ["Transfer"], "where": [["value", ">", "5"], ["to", "==", BOB]]})
    assert f.matches(transfer(6))
    assert not f.matches(transfer(5))
    assert not f.matches(transfer(6, to=ALICE))


def test_amount_compares_scaled_decimals_exactly() -> None:
    f = parse({"where": [["amount", ">=", "1000000"]]})
    usdc = transfer(1_000_000 * 10**6)
    assert f.matches(usdc, Decimal("1000000"))
    assert not f.matches(usdc, Decimal("999999.999999"))
    assert not f.matches(usdc, None)  # token decimals unknown: no amount, no match
    exact = parse({"where": [["amount", "==", "0.000000000000000001"]]})
    assert exact.matches(transfer(1), Decimal(scale_amount(1, 18)))
    assert parse({"where": [["amount", ">", 0.1]]}).matches(transfer(1), Decimal("0.10000001"))


def test_where_fails_closed_on_odd_values() -> None:
    f = parse({"events": ["Transfer"], "where": [["value", ">", "5"]]})
    assert not f.matches(event({"from": ALICE, "to": BOB, "value": "lots"}))
    assert not f.matches(event({"from": ALICE, "to": BOB}))
    assert not f.matches(event(None))


def test_unknown_contracts_compare_by_what_values_look_like() -> None:
    # A stored event of a contract no longer in the config: no ABI, compare sensibly anyway.
    f = parse({"where": [["value", ">", "9"]]})
    old = event({"value": "10"}, contract="Renamed", name="Transfer")
    assert f.matches(old)
    assert not f.matches(event({"value": "8"}, contract="Renamed", name="Transfer"))
    g = parse({"where": [["to", "==", BOB.lower()]]})
    assert g.matches(event({"to": BOB}, contract="Renamed", name="Transfer"))


def test_parse_where_expr() -> None:
    assert parse_where_expr("value >= 1000") == ["value", ">=", "1000"]
    assert parse_where_expr("amount>1.5") == ["amount", ">", "1.5"]
    assert parse_where_expr(f"to == {BOB}") == ["to", "==", BOB]
    assert parse_where_expr("on == true") == ["on", "==", True]
    assert parse_where_expr("note == hello world") == ["note", "==", "hello world"]
    assert parse_where_expr("to in 0xA, 0xB") == ["to", "in", ["0xA", "0xB"]]
    assert parse_where_expr('to in ["0xA"]') == ["to", "in", ["0xA"]]
    for bad in ("value", "value >=", ">= 5", ""):
        with pytest.raises(ValueError):
            parse_where_expr(bad)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20))  # fmt: skip
def test_parse_never_raises_anything_but_filter_error(obj: Any) -> None:
    for candidate in (obj, {"where": obj}, {"where": [obj]}, {"where": [["value", "==", obj]]},
                      {"contracts": obj}, {"events": obj}, {"since": obj}):  # fmt: skip
        try:
            f = parse(candidate)
        except FilterError:
            continue
        f.matches(transfer(3))
    with contextlib.suppress(FilterError):
        parse_log_filter(obj)


def test_equals_is_the_address_clause_routing_can_index() -> None:
    assert parse({"where": [["to", "==", BOB]]}).equals == ("to", BOB.lower())
    assert parse({"where": [["value", ">", "1"], ["from", "==", ALICE]]}).equals == (
        "from",
        ALICE.lower(),
    )
    assert parse({"where": [["value", "==", "1"]]}).equals is None
    assert parse({"where": [["to", "!=", BOB]]}).equals is None
    assert parse({"where": [["to", "in", [BOB]]]}).equals is None
    assert parse({}).equals is None
