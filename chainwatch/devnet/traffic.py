"""Seeded random transactions to the sample contracts, one log each."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_typing import ChecksumAddress
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from hexbytes import HexBytes
from web3 import Web3
from web3.types import TxParams

from chainwatch.devnet.contracts import Deployed, SampleContracts, wait_mined

# Gas limits per kind of transaction, about twice the most the random values make them use:
# explicit limits spare an eth_estimateGas round trip per transaction.
_GAS_TOKEN = 120_000
_GAS_MULTI = 200_000
_GAS_ZOO = 200_000
_WORDS = ("alpha", "beta", "gamma", "zoo", "chainwatch", "événement", "🦊", "")
_MULTI_IDS = (1, 2, 3, 4, 5)
# How many Traffic streams were drawn for (head block hash, seed): see Traffic.
_streams: Counter[tuple[bytes, int]] = Counter()


class Traffic:
    """Seeded random transactions to the sample contracts, one log each.

    ``step()`` sends one transaction; each round of ``len(KINDS)`` steps does every kind once in
    a shuffled order. A kind that needs something not yet held (a token balance, an NFT) mints
    it instead, so the first round may lack some transfers; the rounds after it have them all.
    Senders are the first five dev accounts (unlocked: no signing); recipients are those and
    ``wallets``.

    Each instance only spends what it minted itself, so several instances (or one after
    another) can share the sample contracts without a transaction reverting; a reorg or revert
    that drops its transactions leaves it wrong, so make a new one then. The random stream
    depends on ``seed`` and on the chain's head at construction: on a fresh chain after
    :func:`deploy_sample`, the same seed sends the same transactions. A second instance made
    on the same head with the same seed draws another stream, so their NFT ids differ.

    Transactions are sent without waiting for each receipt (anvil answers
    ``eth_sendTransaction`` before it has mined, even when automining); ``run`` waits for them
    all at the end. ``counts`` tells how many of each kind were sent.
    """

    KINDS = (
        "erc20_mint",
        "erc20_transfer_tst",
        "erc20_transfer_usdc",
        "erc20_approve",
        "erc721_mint",
        "erc721_transfer",
        "erc721_approve",
        "erc1155_mint",
        "erc1155_transfer_single",
        "erc1155_transfer_batch",
        "zoo_dynamic",
        "zoo_arrays",
        "zoo_nested",
        "zoo_signed",
        "zoo_anon",
    )

    def __init__(
        self,
        w3: Web3,
        sample: SampleContracts,
        wallets: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        # No middleware: the default ValidationMiddleware asks eth_chainId before every
        # eth_sendTransaction, which would double the round trips.
        self._w3 = Web3(w3.provider, middleware=[])
        self.sample = sample
        accounts = tuple(w3.eth.accounts)
        self.senders: tuple[ChecksumAddress, ...] = accounts[:5]
        extra = [Web3.to_checksum_address(a) for a in wallets or ()]
        self.recipients: tuple[ChecksumAddress, ...] = self.senders + tuple(
            a for a in dict.fromkeys(extra) if a not in self.senders
        )
        head = w3.eth.get_block("latest")
        stream = (head["hash"], seed)
        self._rng = random.Random(f"{seed}/{head['number']}/{_streams[stream]}")
        _streams[stream] += 1
        self._schedule: list[str] = []
        self.counts: Counter[str] = Counter()
        # What this instance minted and where it went: the only balances it spends.
        self._erc20: dict[tuple[str, str], int] = {}  # (token address, holder) -> amount
        self._nfts: dict[int, ChecksumAddress] = {}  # token id -> owner
        self._multi: dict[tuple[str, int], int] = {}  # (holder, id) -> amount
        self._functions: dict[tuple[str, str], tuple[bytes, list[str]]] = {}
        self._actions: dict[str, Callable[[], HexBytes]] = {
            kind: getattr(self, f"_{kind}") for kind in self.KINDS
        }

    @staticmethod
    def forget_streams() -> None:
        """Forget which streams were drawn: for a chain started afresh, whose head can be the
        very block (same hash) an earlier chain had, so that the same seed draws the same
        stream again."""
        _streams.clear()

    def run(self, n: int, *, wait: bool = True) -> list[HexBytes]:
        """Send ``n`` transactions; their hashes, in order.

        With ``wait`` (the default), return once all are mined (see :func:`wait_mined`), so
        that their logs are in the chain; :meth:`step` never waits.
        """
        hashes = [self.step() for _ in range(n)]
        if wait:
            wait_mined(self._w3, hashes)
        return hashes

    def step(self) -> HexBytes:
        """Send one transaction, the next kind of the shuffled round; its hash."""
        if not self._schedule:
            self._schedule = list(self.KINDS)
            self._rng.shuffle(self._schedule)
        return self._actions[self._schedule.pop()]()

    # --- sending ----------------------------------------------------------------------------

    def _send(
        self, kind: str, sender: str, deployed: Deployed, fn: str, args: Sequence[Any], gas: int
    ) -> HexBytes:
        key = (deployed.address, fn)
        if key not in self._functions:
            (entry,) = (e for e in deployed.contract.abi if e.get("name") == fn)
            self._functions[key] = (
                function_abi_to_4byte_selector(entry),
                get_abi_input_types(entry),
            )
        selector, types = self._functions[key]
        tx: TxParams = {
            "from": Web3.to_checksum_address(sender),
            "to": deployed.address,
            # eth_abi directly: web3's encode_abi costs more than the round trip to anvil.
            "data": HexBytes(selector + abi_encode(types, args)),
            "gas": gas,
        }
        tx_hash = self._w3.eth.send_transaction(tx)
        self.counts[kind] += 1
        return tx_hash

    def _pick(self, options: Sequence[Any]) -> Any:
        return options[self._rng.randrange(len(options))]

    def _recipient(self, not_: str | None = None) -> ChecksumAddress:
        choices = [a for a in self.recipients if a != not_]
        return self._pick(choices)  # type: ignore[no-any-return]

    # --- ERC-20 -----------------------------------------------------------------------------

    def _erc20_mint(self, token: Deployed | None = None) -> HexBytes:
        token = token or self._pick((self.sample.token, self.sample.usdc))
        to = self._pick(self.senders)
        decimals = 18 if token is self.sample.token else 6
        amount = self._rng.randint(1, 1_000_000) * 10**decimals
        key = (token.address, to)
        self._erc20[key] = self._erc20.get(key, 0) + amount
        return self._send("erc20_mint", to, token, "mint", [to, amount], _GAS_TOKEN)

    def _erc20_transfer(self, token: Deployed, kind: str) -> HexBytes:
        holders = [s for s in self.senders if self._erc20.get((token.address, s), 0) > 0]
        if not holders:
            return self._erc20_mint(token)
        sender = self._pick(holders)
        to = self._recipient(not_=sender)
        amount = self._rng.randint(1, self._erc20[(token.address, sender)])
        self._erc20[(token.address, sender)] -= amount
        self._erc20[(token.address, to)] = self._erc20.get((token.address, to), 0) + amount
        return self._send(kind, sender, token, "transfer", [to, amount], _GAS_TOKEN)

    def _erc20_transfer_tst(self) -> HexBytes:
        return self._erc20_transfer(self.sample.token, "erc20_transfer_tst")

    def _erc20_transfer_usdc(self) -> HexBytes:
        return self._erc20_transfer(self.sample.usdc, "erc20_transfer_usdc")

    def _erc20_approve(self) -> HexBytes:
        token = self._pick((self.sample.token, self.sample.usdc))
        owner = self._pick(self.senders)
        spender = self._recipient(not_=owner)
        amount = self._pick((0, self._rng.getrandbits(64), 2**256 - 1))
        return self._send("erc20_approve", owner, token, "approve", [spender, amount], _GAS_TOKEN)

    # --- ERC-721 ----------------------------------------------------------------------------

    def _erc721_mint(self) -> HexBytes:
        to = self._pick(self.senders)
        token_id = self._rng.getrandbits(64)
        while token_id in self._nfts:
            token_id = self._rng.getrandbits(64)
        self._nfts[token_id] = to
        return self._send("erc721_mint", to, self.sample.nft, "mint", [to, token_id], _GAS_TOKEN)

    def _held_nft(self) -> tuple[int, ChecksumAddress] | None:
        held = sorted((i, o) for i, o in self._nfts.items() if o in self.senders)
        return self._pick(held) if held else None

    def _erc721_transfer(self) -> HexBytes:
        held = self._held_nft()
        if held is None:
            return self._erc721_mint()
        token_id, owner = held
        to = self._recipient(not_=owner)
        self._nfts[token_id] = to
        args = [owner, to, token_id]
        return self._send(
            "erc721_transfer", owner, self.sample.nft, "transferFrom", args, _GAS_TOKEN
        )

    def _erc721_approve(self) -> HexBytes:
        held = self._held_nft()
        if held is None:
            return self._erc721_mint()
        token_id, owner = held
        approved = self._recipient(not_=owner)
        args = [approved, token_id]
        return self._send("erc721_approve", owner, self.sample.nft, "approve", args, _GAS_TOKEN)

    # --- ERC-1155 ---------------------------------------------------------------------------

    def _erc1155_mint(self) -> HexBytes:
        to = self._pick(self.senders)
        multi = self.sample.multi_token
        if self._rng.random() < 0.5:
            token_id = self._pick(_MULTI_IDS)
            amount = self._rng.randint(1, 1000)
            self._multi[(to, token_id)] = self._multi.get((to, token_id), 0) + amount
            return self._send("erc1155_mint", to, multi, "mint", [to, token_id, amount], _GAS_MULTI)
        ids = sorted(self._rng.sample(_MULTI_IDS, self._rng.randint(2, 3)))
        amounts = [self._rng.randint(1, 1000) for _ in ids]
        for token_id, amount in zip(ids, amounts, strict=True):
            self._multi[(to, token_id)] = self._multi.get((to, token_id), 0) + amount
        args = [to, ids, amounts]
        return self._send("erc1155_mint", to, multi, "mintBatch", args, _GAS_MULTI)

    def _multi_holdings(self) -> dict[ChecksumAddress, list[int]]:
        holdings: dict[ChecksumAddress, list[int]] = {}
        for (holder, token_id), amount in sorted(self._multi.items()):
            if amount > 0 and holder in self.senders:
                holdings.setdefault(Web3.to_checksum_address(holder), []).append(token_id)
        return holdings

    def _move_multi(self, sender: str, to: str, token_id: int) -> int:
        amount = self._rng.randint(1, self._multi[(sender, token_id)])
        self._multi[(sender, token_id)] -= amount
        self._multi[(to, token_id)] = self._multi.get((to, token_id), 0) + amount
        return amount

    def _erc1155_transfer_single(self) -> HexBytes:
        holdings = self._multi_holdings()
        if not holdings:
            return self._erc1155_mint()
        sender = self._pick(sorted(holdings))
        token_id = self._pick(holdings[sender])
        to = self._recipient(not_=sender)
        amount = self._move_multi(sender, to, token_id)
        args = [sender, to, token_id, amount, self._rng.randbytes(self._rng.randint(0, 8))]
        return self._send(
            "erc1155_transfer_single",
            sender,
            self.sample.multi_token,
            "safeTransferFrom",
            args,
            _GAS_MULTI,
        )

    def _erc1155_transfer_batch(self) -> HexBytes:
        holdings = self._multi_holdings()
        if not holdings:
            return self._erc1155_mint()
        sender = self._pick(sorted(holdings))
        held = holdings[sender]
        ids = sorted(self._rng.sample(held, self._rng.randint(1, min(3, len(held)))))
        to = self._recipient(not_=sender)
        amounts = [self._move_multi(sender, to, token_id) for token_id in ids]
        args = [sender, to, ids, amounts, b""]
        return self._send(
            "erc1155_transfer_batch",
            sender,
            self.sample.multi_token,
            "safeBatchTransferFrom",
            args,
            _GAS_MULTI,
        )

    # --- EventZoo ---------------------------------------------------------------------------

    def _text(self) -> str:
        return " ".join(self._pick(_WORDS) for _ in range(self._rng.randint(0, 4)))

    def _order(self) -> tuple[ChecksumAddress, int, bytes, list[int]]:
        return (
            self._pick(self.recipients),
            self._rng.getrandbits(128),
            self._rng.randbytes(self._rng.randint(0, 40)),
            [self._rng.getrandbits(8), self._rng.getrandbits(8)],
        )

    def _zoo(self, kind: str, fn: str, args: Sequence[Any]) -> HexBytes:
        return self._send(kind, self._pick(self.senders), self.sample.zoo, fn, args, _GAS_ZOO)

    def _zoo_dynamic(self) -> HexBytes:
        blob = self._rng.randbytes(self._rng.randint(0, 70))
        return self._zoo("zoo_dynamic", "emitDynamic", [self._pick(_WORDS), self._text(), blob])

    def _zoo_arrays(self) -> HexBytes:
        values = [self._rng.getrandbits(256) for _ in range(self._rng.randint(0, 4))]
        fixed = [self._pick((*self.recipients, "0x" + "00" * 20)) for _ in range(3)]
        hashes = [self._rng.randbytes(32) for _ in range(self._rng.randint(0, 3))]
        return self._zoo("zoo_arrays", "emitArrays", [values, fixed, hashes])

    def _zoo_nested(self) -> HexBytes:
        orders = [self._order() for _ in range(self._rng.randint(0, 3))]
        args = [self._rng.getrandbits(64), self._order(), orders]
        return self._zoo("zoo_nested", "emitNested", args)

    def _zoo_signed(self) -> HexBytes:
        a = self._rng.randint(-(2**255), 2**255 - 1)
        b = self._rng.randint(-(2**7), 2**7 - 1)
        c = self._rng.randint(-(2**23), 2**23 - 1)
        return self._zoo("zoo_signed", "emitSigned", [a, b, c])

    def _zoo_anon(self) -> HexBytes:
        args = [self._pick(self.recipients), self._rng.getrandbits(256)]
        return self._zoo("zoo_anon", "emitAnon", args)
