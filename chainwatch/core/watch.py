"""What one chain's ingest watches, and how a log from that chain becomes a ``DecodedEvent``.

A ``WatchSet`` is compiled once from the settings of one chain:

- watched contracts: address -> (name, compiled ABI decoder, selected events, ``from_block``);
- wallet watches: ERC-20/721 ``Transfer`` and ERC-1155 ``TransferSingle``/``TransferBatch`` with
  a watched wallet in the ``from`` or ``to`` topic, on ANY contract.

It produces the node-side log filters (``eth_subscribe("logs", f)`` / ``eth_getLogs``), as few as
the filter language allows, and routes each log the node sends back: node filters are coarser
than what is watched (a topic0 selected for one contract matches every listed address), so
``route`` is the exact test and returns None for a log that is not watched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chainwatch.core.abi import AbiEvent
from chainwatch.core.decoder import AbiDecoder
from chainwatch.core.model import JSON, DecodedEvent, Log
from chainwatch.core.standards import (
    TRANSFER_BATCH_TOPIC0,
    TRANSFER_SINGLE_TOPIC0,
    TRANSFER_TOPIC0,
    standard_decoder,
)
from chainwatch.errors import DecodeError


@dataclass(frozen=True, slots=True)
class WatchedContract:
    name: str
    address: str  # lowercase 0x-hex
    decoder: AbiDecoder
    topic0s: frozenset[str] | None  # selected events' topic0s; None: every log of the address
    from_block: int | None = None


def wallet_topic(address: str) -> str:
    """An address as it stands in an indexed topic: left-padded to 32 bytes."""
    return "0x" + "0" * 24 + address.lower()[2:]


class WatchSet:
    def __init__(
        self,
        chain_id: int,
        contracts: Iterable[WatchedContract] = (),
        wallets: Iterable[str] = (),
        standards: Iterable[str] = (),
        wallets_from_block: int | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.contracts = {c.address: c for c in contracts}
        self.wallet_topics = frozenset(wallet_topic(a) for a in wallets)
        self.standards = frozenset(standards) if self.wallet_topics else frozenset()
        self.wallets_from_block = wallets_from_block
        self._standard = standard_decoder(sorted(self.standards)) if self.standards else None

    @classmethod
    def build(
        cls,
        chain_id: int,
        contracts: Sequence[tuple[str, str, list[AbiEvent], Sequence[str] | None, int | None]],
        wallets: Sequence[tuple[Sequence[str], Sequence[str], int | None]] = (),
    ) -> WatchSet:
        """From (name, address, abi events, selected events or None, from_block) per contract and
        (addresses, standards, from_block) per wallet watch."""
        watched = []
        for name, address, events, only, from_block in contracts:
            decoder = AbiDecoder(events, only)
            # The decoder's own selection: ``only`` may name events by signature as well.
            anonymous = decoder.has_anonymous
            topic0s = None if anonymous or only is None else frozenset(decoder.topic0s)
            watched.append(WatchedContract(name, address.lower(), decoder, topic0s, from_block))
        addresses = [a for addrs, _, _ in wallets for a in addrs]
        standards = {s for _, stds, _ in wallets for s in stds}
        starts = [fb for _, _, fb in wallets if fb is not None]
        return cls(chain_id, watched, addresses, standards, min(starts) if starts else None)

    @property
    def empty(self) -> bool:
        return not self.contracts and not self.wallet_topics

    def start_block(self) -> int | None:
        """The lowest ``from_block`` configured, or None when only live events are wanted."""
        starts = [c.from_block for c in self.contracts.values() if c.from_block is not None]
        if self.wallets_from_block is not None:
            starts.append(self.wallets_from_block)
        return min(starts) if starts else None

    def log_filters(self) -> list[dict[str, JSON]]:
        """Node log filters (no block range) whose union covers everything watched."""
        filters: list[dict[str, JSON]] = []
        if self.contracts:
            addresses = sorted(self.contracts)
            topic0s: set[str] = set()
            everything = False
            for c in self.contracts.values():
                if c.topic0s is None:
                    everything = True
                else:
                    topic0s |= c.topic0s
            flt: dict[str, JSON] = {"address": addresses if len(addresses) > 1 else addresses[0]}
            if not everything:
                flt["topics"] = [sorted(topic0s)]
            filters.append(flt)
        # Without a standard a wallet watch matches nothing; its filters would have an empty
        # topic0 list, which nodes read as "any topic0".
        if self.wallet_topics and self.standards:
            wallets = sorted(self.wallet_topics)
            t20_721 = [TRANSFER_TOPIC0] if self.standards & {"erc20", "erc721"} else []
            t1155 = (
                [TRANSFER_SINGLE_TOPIC0, TRANSFER_BATCH_TOPIC0]
                if "erc1155" in self.standards
                else []
            )
            if t20_721:  # Transfer(from, to, ...): from is topic 1
                filters.append({"topics": [t20_721, wallets]})
            # Transfer's `to` and ERC-1155's `from` both stand in topic 2.
            filters.append({"topics": [sorted(t20_721 + t1155), None, wallets]})
            if t1155:  # TransferSingle/Batch(operator, from, to, ...): to is topic 3
                filters.append({"topics": [t1155, None, None, wallets]})
        return filters

    def route(self, log: Log, *, historical: bool = False) -> DecodedEvent | None:
        """Decode a log if it is watched; None if no watch covers it.

        A watched log that does not decode comes back with ``error`` set, to be stored raw.
        """
        contract = self.contracts.get(log.address)
        if contract is not None and self._covers(contract, log):
            try:
                event, args = contract.decoder.decode(log.topics, log.data)
            except DecodeError as exc:
                return DecodedEvent(
                    self.chain_id, log, contract.name, None, None, str(exc), historical
                )
            return DecodedEvent(self.chain_id, log, contract.name, event, args, None, historical)
        name = self._wallet_standard(log)
        if name is None or self._standard is None:
            return None
        if self.wallets_from_block is not None and log.block_number < self.wallets_from_block:
            return None
        try:
            event, args = self._standard.decode(log.topics, log.data)
        except DecodeError as exc:
            return DecodedEvent(self.chain_id, log, name, None, None, str(exc), historical)
        return DecodedEvent(self.chain_id, log, name, event, args, None, historical)

    @staticmethod
    def _covers(contract: WatchedContract, log: Log) -> bool:
        if contract.from_block is not None and log.block_number < contract.from_block:
            return False
        if contract.topic0s is None:
            return True
        return bool(log.topics) and log.topics[0] in contract.topic0s

    def _wallet_standard(self, log: Log) -> str | None:
        """ "ERC20"/"ERC721"/"ERC1155" when a wallet watch covers this log, else None."""
        topics = log.topics
        if not topics or not self.wallet_topics:
            return None
        t0 = topics[0]
        wallets = self.wallet_topics
        if t0 == TRANSFER_TOPIC0:
            if len(topics) == 3 and "erc20" in self.standards:
                name = "ERC20"
            elif len(topics) == 4 and "erc721" in self.standards:
                name = "ERC721"
            else:
                return None
            return name if topics[1] in wallets or topics[2] in wallets else None
        is_1155 = t0 in (TRANSFER_SINGLE_TOPIC0, TRANSFER_BATCH_TOPIC0) and len(topics) == 4
        if (
            is_1155
            and "erc1155" in self.standards
            and (topics[2] in wallets or topics[3] in wallets)
        ):
            return "ERC1155"
        return None
