"""The alert body and the token enrichment (chainwatch.core.alert), no event loop."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainwatch.core.alert import (
    NOT_ERC20,
    Enrichment,
    TokenInfo,
    alert_body,
    enrich,
    tokens_needed,
)
from chainwatch.core.model import JSON, Log, Status, StoredEvent

CHAIN = 31337
TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
TRANSFER0 = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ALICE = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
BOB = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
ADDRESS_TOPIC = "0x" + "0" * 24


def transfer(
    value: JSON = "5",
    *,
    status: Status = "new",
    block: int = 10,
    topics: int = 3,
    event: str | None = "Transfer",
    historical: bool = False,
) -> StoredEvent:
    """A stored ERC-20 Transfer of ``value`` (as the JSON form writes it) in ``block``;
    ``topics`` 4 makes it an ERC-721 one (the value indexed)."""
    all_topics = (TRANSFER0, ADDRESS_TOPIC + ALICE[2:], ADDRESS_TOPIC + BOB[2:], "0x" + "00" * 32)
    log = Log(TOKEN, all_topics[:topics], "0x" + "00" * 32, block, f"0x{block:064x}",
              "0x" + "cc" * 32, 0, 2)  # fmt: skip
    args: dict[str, JSON] = {"from": ALICE, "to": BOB, "value": value}
    return StoredEvent(7, CHAIN, log, "Token", event, args, None, status, historical)


def body(event: StoredEvent, *args: Any, **kwargs: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(alert_body(event, *args, **kwargs))
    return out


# --- the body --------------------------------------------------------------------------------


def test_the_body_is_the_events_json_form_and_what_the_alert_adds() -> None:
    event = transfer()
    out = body(event, 12, cursor=41)
    assert {k: out.pop(k) for k in ("cursor", "confirmations", "historical")} == {
        "cursor": 41,
        "confirmations": 3,
        "historical": False,
    }
    assert out == event.to_json()
    assert alert_body(event, 12, cursor=41) == alert_body(event, 12, NOT_ERC20, 41)


@pytest.mark.parametrize(
    ("status", "block", "head", "confirmations"),
    [
        ("new", 10, 10, 1),  # the head's own block counts
        ("new", 10, 12, 3),
        ("confirmed", 10, 100, 91),
        ("new", 10, 9, 0),  # a head behind the event (a gateway's stale view): never negative
        ("new", 10, None, None),  # before the first head
        ("removed", 10, 12, 0),  # taken back by a reorg
        ("removed", 10, None, 0),
    ],
)
def test_confirmations(status: Status, block: int, head: int | None, confirmations: Any) -> None:
    assert body(transfer(status=status, block=block), head)["confirmations"] == confirmations


def test_without_a_cursor_there_is_no_cursor_key() -> None:
    assert "cursor" not in body(transfer(), 12)
    assert body(transfer(), 12, cursor=0)["cursor"] == 0


def test_historical_is_carried() -> None:
    assert body(transfer(historical=True), 12)["historical"] is True


def test_token_and_amount_only_for_an_erc20_transfer() -> None:
    known = Enrichment(Decimal("0.5"), ("TT", 1), "0.5", True)
    assert body(transfer(), 12, known)["token"] == {"symbol": "TT", "decimals": 1}
    assert body(transfer(), 12, known)["amount"] == "0.5"
    unknown = Enrichment(None, None, None, True)
    out = body(transfer(), 12, unknown)
    assert out["token"] is None and out["amount"] is None
    no_decimals = Enrichment(None, ("TT", None), None, True)
    assert body(transfer(), 12, no_decimals)["token"] == {"symbol": "TT", "decimals": None}
    assert "token" not in body(transfer(), 12) and "amount" not in body(transfer(), 12)


def test_an_integer_beyond_64_bits_in_the_args_still_encodes() -> None:
    big = 2**256 - 1
    assert body(transfer(value=big), 12)["args"]["value"] == big


# --- the enrichment --------------------------------------------------------------------------


def test_enrich_a_transfer_of_a_known_token() -> None:
    asked: list[str] = []

    def token_of(address: str) -> TokenInfo | None:
        asked.append(address)
        return ("USDC", 6)

    assert enrich(transfer("1234500000"), token_of) == Enrichment(
        Decimal("1234.5"), ("USDC", 6), "1234.5", True
    )
    assert asked == [TOKEN]


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (None, Enrichment(None, None, None, True)),  # metadata not known (yet)
        (("TT", None), Enrichment(None, ("TT", None), None, True)),  # no decimals()
        ((None, 0), Enrichment(Decimal(5), (None, 0), "5", True)),
    ],
)
def test_enrich_with_partial_metadata(token: TokenInfo | None, expected: Enrichment) -> None:
    assert enrich(transfer("5"), lambda address: token) == expected


@pytest.mark.parametrize(
    "event",
    [
        transfer(topics=4),  # ERC-721: the token id is indexed, not a value
        transfer(event="Approval"),
        transfer(event=None),  # did not decode
        transfer(value="0x05"),  # not the JSON form of an integer
        transfer(value=5),
        transfer(value=None),
    ],
)
def test_what_is_not_an_erc20_transfer_is_not_enriched(event: StoredEvent) -> None:
    def token_of(address: str) -> TokenInfo | None:
        raise AssertionError("no metadata is needed")

    assert enrich(event, token_of) is NOT_ERC20


@given(value=st.integers(min_value=0, max_value=2**256 - 1), decimals=st.integers(0, 36))
def test_enriched_amount_is_the_value_scaled_exactly(value: int, decimals: int) -> None:
    enrichment = enrich(transfer(str(value)), lambda address: ("T", decimals))
    assert enrichment.erc20 and enrichment.amount_text is not None
    assert Fraction(enrichment.amount_text) == Fraction(value, 10**decimals)
    assert enrichment.amount == Decimal(enrichment.amount_text)


def test_tokens_needed_are_the_addresses_of_three_topic_transfers() -> None:
    # A Transfer of another contract whose value did not decode still needs its metadata.
    log = Log(BOB, transfer().log.topics, "0x", 1, "0x" + "11" * 32, "0x" + "22" * 32, 0, 0)
    other = StoredEvent(8, CHAIN, log, None, "Transfer", None, None, "new")
    events = [transfer(), transfer(), other, transfer(topics=4), transfer(event="Approval")]
    assert tokens_needed(events) == {TOKEN, BOB}
    assert tokens_needed([]) == set()
