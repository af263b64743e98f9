"""Chaos scenarios against the real daemon: "never lose an event, never invent one".

``chainwatch run`` runs as a subprocess and reaches anvil only through fault proxies. After each
scenario the promise is checked against anvil itself: the store's events that are not
``removed`` are exactly the logs anvil's ``eth_getLogs`` returns for what the config watches
(worked out here, independently of chainwatch), no event is stored twice, and every stored
event of a block that is no longer canonical is ``removed``.

A short version of each scenario runs by default; ``CHAINWATCH_CHAOS=long`` runs more
iterations, and the ``chaos_long`` ones only then.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from chainwatch.core.standards import TRANSFER_BATCH_TOPIC0, TRANSFER_SINGLE_TOPIC0, TRANSFER_TOPIC0
from chainwatch.devnet import Anvil, SampleContracts, Traffic, deploy_sample, write_devnet_config
from chainwatch.store import Store
from tests.chaos.conftest import LONG
from tests.chaos.faultproxy import FaultProxy
from tests.chaos.follower import Follower
from tests.helpers import CHAINWATCH, free_port, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600 if LONG else 150)]

CATCH_UP = 90 if LONG else 45  # seconds for the daemon to reach anvil's head after a fault


def iterations(short: int, long: int) -> int:
    return long if LONG else short


# --- what the store must hold, from anvil alone -------------------------------------------------


def _topic_of(address: str) -> str:
    return "0x" + "0" * 24 + address.lower()[2:]


def expected_keys(w3: Web3, watched: set[str], wallet: str) -> set[tuple[str, int]]:
    """(block_hash, log_index) of every canonical log the config watches."""
    wallet_topic = _topic_of(wallet)
    keys = set()
    for entry in w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest"}):
        topics = ["0x" + bytes(t).hex() for t in entry["topics"]]
        first = topics[0] if topics else None
        wallet_transfer = (
            first == TRANSFER_TOPIC0 and len(topics) in (3, 4) and wallet_topic in topics[1:3]
        ) or (
            first in (TRANSFER_SINGLE_TOPIC0, TRANSFER_BATCH_TOPIC0)
            and len(topics) == 4
            and wallet_topic in topics[2:4]
        )
        if entry["address"].lower() in watched or wallet_transfer:
            keys.add(("0x" + bytes(entry["blockHash"]).hex(), int(entry["logIndex"])))
    return keys


@dataclass
class Figures:
    """What one scenario did and what the check found."""

    name: str
    faults: dict[str, int] = field(default_factory=dict)
    checked: int = 0
    lost: int = 0
    duplicated: int = 0
    phantom: int = 0
    not_removed: int = 0
    subscriber: str = ""

    def add_faults(self, counts: dict[str, int]) -> None:
        for fault, n in counts.items():
            if fault != "connections":
                self.faults[fault] = self.faults.get(fault, 0) + n

    def show(self) -> str:
        injected = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return (
            f"[chaos] {self.name}: faults injected: {injected}; events checked {self.checked}, "
            f"lost {self.lost}, duplicated {self.duplicated}, phantom {self.phantom}, "
            f"stale not removed {self.not_removed}"
            + (f"; {self.subscriber}" if self.subscriber else "")
        )


# --- the harness --------------------------------------------------------------------------------


class Harness:
    """anvil with the sample contracts, fault proxies in front of it, and the daemon."""

    def __init__(self, tmp_path: Path, anvil: Anvil, proxies: int = 1, max_range: int = 5):
        self.tmp_path = tmp_path
        self.anvil = anvil
        self.w3 = anvil.w3
        self.sample: SampleContracts = deploy_sample(self.w3)
        self.wallet = anvil.accounts[1]
        self.seed = 0
        self.traffic = self.new_traffic()
        self.proxies = [FaultProxy(anvil.port).start() for _ in range(proxies)]
        self.config = tmp_path / "chainwatch.toml"
        self.log_path = tmp_path / "daemon.log"
        storage_url = f"sqlite:///{tmp_path / 'chainwatch.db'}"
        # A fixed port, so that the follower finds the daemon again after a restart.
        self.server_port = free_port()
        write_devnet_config(
            self.config, anvil, self.sample, storage_url, server_port=self.server_port
        )
        text = self.config.read_text()
        urls = ", ".join(json.dumps(p.url) for p in self.proxies)
        # The provider list goes through the proxies; short pings so that a stall is noticed.
        text, n = re.subn(
            r"(?m)^providers = .*$",
            f"providers = [{urls}]\ngetlogs_max_range = {max_range}\n"
            "ping_interval = 1.0\nping_timeout = 2.0",
            text,
        )
        assert n == 1, text
        self.config.write_text(text)
        self.store = Store.open(storage_url)
        self.watched = {d.address.lower() for _, d, _ in self.sample.watched()}
        self.proc: subprocess.Popen[bytes] | None = None
        self.figures = Figures("")
        self.follower: Follower | None = None

    def follow(self, drop_every: int = 7) -> Follower:
        """A downstream subscriber that drops and resumes with `since` throughout."""
        self.follower = Follower(f"ws://127.0.0.1:{self.server_port}", drop_every=drop_every)
        return self.follower.start()

    def new_traffic(self) -> Traffic:
        """A fresh sender of transactions: after a reorg, what an old one minted may be gone."""
        self.seed += 1
        return Traffic(self.w3, self.sample, wallets=[self.wallet], seed=self.seed)

    def close(self) -> None:
        if self.follower is not None:
            self.follower.close()
            self.follower = None  # a failed check is not repeated: the daemon is stopped below
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.stop()
        finally:
            for proxy in self.proxies:
                proxy.close()
            self.store.close()

    # -- the daemon

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                [CHAINWATCH, "run", "--config", str(self.config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        """SIGTERM, which must end the daemon with code 0 (once the follower, if any, has
        received everything that is stored)."""
        assert self.proc is not None
        if self.follower is not None:
            follower = self.follower
            try:
                wait_until(
                    lambda: follower.live() == self.live_keys(), CATCH_UP, "the follower", 0.1
                )
            except AssertionError:
                live, got = self.live_keys(), follower.live()
                raise AssertionError(
                    f"the follower differs from the store: missing {sorted(live - got)[:3]}, "
                    f"extra {sorted(got - live)[:3]} ({follower.connections} connections, "
                    f"{follower.received} notifications, last id {follower.last_id}, "
                    f"errors {follower.errors[-3:]}, alive {follower.alive})"
                ) from None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("daemon did not exit within 30 s of SIGTERM") from None
        assert code == 0, f"daemon exited {code}:\n{self.log_tail()}"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log_tail()}")

    def checkpoint_number(self) -> int:
        checkpoint = self.store.checkpoint(self.anvil.chain_id)
        return -1 if checkpoint is None else checkpoint.block_number

    def caught_up(self) -> bool:
        """The checkpoint is anvil's head: same number and, after a reorg, same hash."""
        self.alive()
        checkpoint = self.store.checkpoint(self.anvil.chain_id)
        if checkpoint is None:
            return False
        head = self.w3.eth.get_block("latest")
        return checkpoint.block_number >= head["number"] and (
            checkpoint.block_number > head["number"]
            or checkpoint.block_hash.lower() == "0x" + bytes(head["hash"]).hex()
        )

    def wait_caught_up(self, what: str, timeout: float = CATCH_UP) -> None:
        try:
            wait_until(self.caught_up, timeout, what, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- daemon log ---\n{self.log_tail()}") from None

    # -- transactions

    def traffic_steps(self, n: int) -> None:
        self.traffic.run(n)

    def mint_tx(self, amount: int) -> dict[str, Any]:
        """A transaction that logs a watched Transfer (a TST mint to the wallet)."""
        token = self.sample.token.contract
        return {
            "from": self.anvil.accounts[0],
            "to": token.address,
            "data": token.encode_abi("mint", [self.wallet, amount]),
            "gas": 120_000,
        }

    # -- the promise

    def live_keys(self) -> set[tuple[str, int]]:
        rows = self.store.query(chain_id=self.anvil.chain_id)
        return {(e.log.block_hash.lower(), e.log.log_index) for e in rows if e.status != "removed"}

    def check_promise(self) -> Figures:
        figures = self.figures
        expected = expected_keys(self.w3, self.watched, self.wallet)
        rows = self.store.query(chain_id=self.anvil.chain_id)
        keys = [(e.log.block_hash.lower(), e.log.log_index) for e in rows]
        canonical: dict[int, str] = {}

        def is_canonical(number: int, block_hash: str) -> bool:
            if number not in canonical:
                block = self.w3.eth.get_block(number)
                canonical[number] = "0x" + bytes(block["hash"]).hex()
            return canonical[number] == block_hash

        live = {key for key, e in zip(keys, rows, strict=True) if e.status != "removed"}
        stale = [
            e.to_json()
            for key, e in zip(keys, rows, strict=True)
            if e.status != "removed" and not is_canonical(e.log.block_number, key[0])
        ]
        figures.checked = len(expected)
        figures.duplicated = len(keys) - len(set(keys))
        figures.lost = len(expected - live)
        figures.phantom = len(live - expected)
        figures.not_removed = len(stale)
        if self.follower is not None:
            follower_live = self.follower.live()
            figures.subscriber = (
                f"subscriber: {self.follower.connections} connections, "
                f"{self.follower.received} notifications, "
                f"lost {len(expected - follower_live)}, phantom {len(follower_live - expected)}"
            )
        print(figures.show())
        assert len(expected) > 0
        assert figures.duplicated == 0, "an event was stored twice"
        assert figures.lost == 0, f"lost: {sorted(expected - live)[:5]}\n{self.log_tail()}"
        assert figures.phantom == 0, f"phantom: {sorted(live - expected)[:5]}\n{self.log_tail()}"
        assert figures.not_removed == 0, f"not removed: {stale[:3]}"
        if self.follower is not None:
            assert self.follower.live() == expected, figures.subscriber
        return figures


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@contextlib.contextmanager
def harness(tmp_path: Path, anvil: Anvil, name: str, **kwargs: Any) -> Iterator[Harness]:
    h = Harness(tmp_path, anvil, **kwargs)
    h.figures.name = name
    try:
        yield h
    finally:
        h.close()


# --- the scenarios ------------------------------------------------------------------------------


def test_random_disconnects_and_stalls_with_transfers_flowing(tmp_path: Path, anvil: Anvil) -> None:
    with harness(tmp_path, anvil, "random disconnects and stalls") as h:
        h.traffic_steps(10)
        h.start()
        h.follow()
        h.wait_caught_up("the history load")
        proxy = h.proxies[0]
        wanted = iterations(8, 60)
        proxy.chaos(seed=11, rate=iterations(3, 2))
        steps = 0
        # Transfers flow until enough faults have hit the daemon's connection.
        while sum(v for k, v in proxy.faults().items() if k != "connections") < wanted:
            h.traffic_steps(1)
            h.alive()
            steps += 1
            assert steps < 5000, "the proxy injected no faults"
        proxy.calm()
        h.traffic_steps(2)
        h.wait_caught_up("the catch-up after the faults")
        h.stop()
        h.figures.add_faults(proxy.faults())
        assert proxy.faults()["connections"] > 1, "the daemon never reconnected"
        h.check_promise()


def test_provider_gone_for_many_blocks_then_back(tmp_path: Path, anvil: Anvil) -> None:
    with harness(tmp_path, anvil, "provider gone, gap over getLogs limit") as h:
        proxy = h.proxies[0]
        h.start()
        h.wait_caught_up("the history load")
        for _ in range(iterations(1, 4)):
            proxy.refuse(True)
            proxy.drop_all()
            # Many blocks while it is gone: far more than one getLogs chunk.
            h.traffic_steps(iterations(30, 120))
            tried = proxy.faults().get("refused", 0) + 1
            wait_until(
                lambda tried=tried: proxy.faults().get("refused", 0) >= tried,
                CATCH_UP,
                "the daemon to try the refusing provider",
            )
            proxy.getlogs_limit(3)
            proxy.refuse(False)
            h.wait_caught_up("the gap fill")
        h.stop()
        h.figures.add_faults(proxy.faults())
        assert proxy.faults().get("refused", 0) > 0, "the daemon never tried while refused"
        assert proxy.faults().get("getlogs_refused", 0) > 0, "no getLogs went over the limit"
        h.check_promise()


REORG_DEPTHS_SHORT = (1, 2, 4, 7, 10)


@pytest.mark.parametrize("replace", [False, True], ids=["empty", "with-replacements"])
def test_reorgs(tmp_path: Path, anvil: Anvil, replace: bool) -> None:
    with harness(tmp_path, anvil, f"reorgs depth 1-10 ({'with' if replace else 'no'} txs)") as h:
        h.traffic_steps(12)
        h.start()
        h.follow()
        h.wait_caught_up("the history load")
        depths = list(range(1, 11)) * 2 if LONG else list(REORG_DEPTHS_SHORT)
        rng = random.Random(5)
        reorgs = 0
        for depth in depths:
            h.traffic_steps(depth + 2)
            h.wait_caught_up("the blocks before the reorg")
            replacements = (
                [(h.mint_tx(rng.randrange(1, 10**6)), rng.randrange(depth)) for _ in range(3)]
                if replace
                else []
            )
            h.anvil.reorg(depth, replacements)
            reorgs += 1
            h.traffic = h.new_traffic()
            h.traffic_steps(1)
            h.wait_caught_up(f"the reorg of depth {depth}")
        h.stop()
        h.figures.faults["reorg"] = reorgs
        h.check_promise()


def test_snapshot_revert_then_new_blocks(tmp_path: Path, anvil: Anvil) -> None:
    with harness(tmp_path, anvil, "evm_snapshot/evm_revert") as h:
        h.start()
        h.follow()
        h.traffic_steps(5)
        h.wait_caught_up("the first blocks")
        reverts = 0
        for i in range(iterations(2, 8)):
            snapshot = h.anvil.rpc("evm_snapshot")
            h.traffic_steps(3 + i)
            h.wait_caught_up("the blocks to be reverted")
            assert h.anvil.rpc("evm_revert", [snapshot]) is True
            reverts += 1
            # The chain went back without a head: the next blocks are the reorg the daemon sees.
            h.traffic = h.new_traffic()
            h.traffic_steps(5 + i)
            h.wait_caught_up("the blocks after the revert")
        h.stop()
        h.figures.faults["revert"] = reverts
        h.check_promise()


def test_two_providers_one_killed_then_the_other(tmp_path: Path, anvil: Anvil) -> None:
    with harness(tmp_path, anvil, "two providers", proxies=2) as h:
        first, second = h.proxies
        h.start()
        h.follow()
        h.traffic_steps(5)
        h.wait_caught_up("the start")
        for _ in range(iterations(1, 4)):
            for down, up in ((first, second), (second, first)):
                down.refuse(True)
                down.drop_all()
                h.traffic_steps(8)
                h.wait_caught_up("the surviving provider")
                down.refuse(False)
                up.cut_mid_frame()
                h.traffic_steps(4)
                h.wait_caught_up("both providers again")
            # Both gone, then both back.
            for proxy in h.proxies:
                proxy.refuse(True)
                proxy.drop_all()
            h.traffic_steps(12)
            for proxy in h.proxies:
                proxy.refuse(False)
            h.wait_caught_up("the providers coming back")
        h.stop()
        for proxy in h.proxies:
            h.figures.add_faults(proxy.faults())
        h.check_promise()


def test_daemon_sigkilled_at_random_moments(tmp_path: Path, anvil: Anvil) -> None:
    with harness(tmp_path, anvil, "SIGKILL at random moments") as h:
        rng = random.Random(23)
        proxy = h.proxies[0]
        kills = 0
        during_load = 0
        h.follow()  # through every kill and restart
        for round_ in range(iterations(3, 15)):
            # Blocks while it is down: the next start begins with a history load in chunks.
            h.traffic_steps(rng.randrange(10, 30) if round_ else 60)
            before = h.checkpoint_number()
            h.start()
            if round_ == 0 or rng.random() < 0.5:
                # Kill it inside the history load: once it stored a chunk, before the head.
                proxy.getlogs_limit(1)

                def stored_a_chunk(before: int = before) -> bool:
                    h.alive()
                    return h.checkpoint_number() > before

                wait_until(
                    stored_a_chunk,
                    CATCH_UP,
                    "a chunk of the history load",
                    interval=0.01,
                )
                during_load += h.checkpoint_number() < h.w3.eth.block_number
                proxy.getlogs_limit(None)
            else:
                h.wait_caught_up("the start")
                h.traffic_steps(rng.randrange(1, 6))
            h.kill()
            kills += 1
        h.start()
        h.wait_caught_up("the last start")
        h.traffic_steps(3)
        h.wait_caught_up("live blocks after the kills")
        h.stop()
        h.figures.faults["sigkill"] = kills
        h.figures.faults["sigkill during history load"] = during_load
        h.figures.add_faults(proxy.faults())
        h.check_promise()


def test_reorg_while_the_daemon_is_down(tmp_path: Path, anvil: Anvil) -> None:
    with harness(tmp_path, anvil, "reorg while down") as h:
        h.traffic_steps(10)
        h.start()
        h.follow()
        h.wait_caught_up("the history load")
        reorgs = 0
        for depth in (3, 7) if not LONG else (1, 3, 5, 7, 10):
            h.traffic_steps(depth + 3)
            h.wait_caught_up("the blocks before the stop")
            h.stop()
            h.anvil.reorg(depth, [(h.mint_tx(depth), 0)])
            reorgs += 1
            h.traffic = h.new_traffic()
            h.traffic_steps(2)
            h.start()
            h.wait_caught_up(f"the restart after a reorg of depth {depth}")
        h.stop()
        h.figures.faults["reorg while down"] = reorgs
        h.check_promise()


@pytest.mark.chaos_long
def test_random_faults_during_reorgs_and_kills(tmp_path: Path, anvil: Anvil) -> None:
    """Everything at once, for a while: random proxy faults, reorgs and SIGKILLs."""
    with harness(tmp_path, anvil, "soak: faults, reorgs and kills together", proxies=2) as h:
        rng = random.Random(99)
        h.traffic_steps(20)
        h.start()
        h.wait_caught_up("the history load")
        for i, proxy in enumerate(h.proxies):
            proxy.chaos(seed=100 + i, rate=1.5)
        reorgs = kills = 0
        for _ in range(40):
            h.traffic_steps(rng.randrange(1, 8))
            roll = rng.random()
            if roll < 0.3:
                depth = rng.randrange(1, 11)
                h.anvil.reorg(depth, [(h.mint_tx(rng.randrange(1, 10**6)), rng.randrange(depth))])
                h.traffic = h.new_traffic()
                reorgs += 1
            elif roll < 0.4:
                h.kill()
                kills += 1
                h.traffic_steps(rng.randrange(1, 20))
                h.start()
        for proxy in h.proxies:
            proxy.calm()
        h.traffic_steps(2)
        h.wait_caught_up("the end of the soak")
        h.stop()
        h.figures.faults.update({"reorg": reorgs, "sigkill": kills})
        for proxy in h.proxies:
            h.figures.add_faults(proxy.faults())
        h.check_promise()


def _healthz(port: int) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _connected(body: dict[str, Any]) -> int:
    chain = next(iter(body["chains"].values()))
    return int(chain["providers_connected"])


def _wait_health(
    port: int, want_status: int, want_connected: int, what: str, timeout: float = 30
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status, body = _healthz(port)
        return body if status == want_status and _connected(body) == want_connected else None

    body: dict[str, Any] = wait_until(check, timeout, what, interval=0.1)
    return body


def test_healthz_reflects_provider_loss_and_recovery(tmp_path: Path, anvil: Anvil) -> None:
    with harness(tmp_path, anvil, "healthz", proxies=2) as h:
        h.start()
        h.wait_caught_up("the start")
        match = wait_until(
            lambda: re.search(r"serving ws://127\.0\.0\.1:(\d+)", h.log_tail(100_000)),
            30,
            "the server to listen",
        )
        port = int(match.group(1))
        first, second = h.proxies
        _wait_health(port, 200, 2, "both providers up")
        # Losing one provider of two is invisible: still healthy.
        first.refuse(True)
        first.drop_all()
        _wait_health(port, 200, 1, "one provider down, still 200")
        second.refuse(True)
        second.drop_all()
        _wait_health(port, 503, 0, "503 with every provider down")
        h.traffic_steps(6)  # blocks while no provider is reachable
        first.refuse(False)
        second.refuse(False)
        _wait_health(port, 200, 2, "recovery", timeout=60)
        h.wait_caught_up("the gap fill after recovery")
        assert "no provider connected" in h.log_tail(100_000)
        h.stop()
        for proxy in h.proxies:
            h.figures.add_faults(proxy.faults())
        h.check_promise()


def test_a_log_lost_with_the_connection_after_its_head_is_fetched_again(
    tmp_path: Path, anvil: Anvil
) -> None:
    """Heads and logs are separate subscriptions: a connection can go after a block's head and
    before its log. The block is stored by then; the reconnect fetches the last blocks again."""
    with harness(tmp_path, anvil, "log lost with the connection after its head") as h:
        proxy = h.proxies[0]
        h.start()
        h.follow()
        h.wait_caught_up("the start")
        rounds = iterations(3, 10)
        for round_ in range(rounds):
            # The mint's log comes on two subscriptions: the token's and the wallet's transfers.
            proxy.swallow_logs(2)
            tx_hash = h.w3.eth.send_transaction(h.mint_tx(555_000 + round_))  # type: ignore[arg-type]
            h.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
            h.wait_caught_up("the head whose log did not come")
            connections = proxy.faults()["connections"]
            proxy.drop_all()
            wait_until(
                lambda connections=connections: proxy.faults()["connections"] > connections,
                CATCH_UP,
                "a reconnect",
            )
            # The reconnect is handled before the next head: once that is stored, so is the log.
            h.traffic_steps(1)
            h.wait_caught_up("the block after the reconnect")
        h.stop()
        h.figures.add_faults(proxy.faults())
        assert proxy.faults()["swallowed_log"] == 2 * rounds
        h.check_promise()


def _notification(subscription: str, result: Any) -> str:
    params = {"subscription": subscription, "result": result}
    return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription", "params": params})


def _bad_upstream_messages(rng: random.Random) -> list[str]:
    """What a misbehaving provider sends besides its real stream: each kind must be counted
    and skipped without disturbing the rest."""
    log = {
        "address": "0x" + "11" * 20,
        "topics": ["0x" + "22" * 32],
        "data": "0x",
        "blockNumber": "0x1",
        "blockHash": "0x" + "33" * 32,
        "transactionHash": "0x" + "44" * 32,
        "transactionIndex": "0x0",
        "logIndex": "0x0",
    }
    messages = [
        "{not json",
        "[" * 5000,  # nested deeper than any parser should recurse
        "NaN",
        '{"jsonrpc":"2.0","id":987654,"result":"0x1"}',  # a reply to no request
        '{"jsonrpc":"2.0","method":"eth_somethingElse","params":{}}',
        _notification("0xdeadbeef", log),  # a subscription never made
        _notification("0x01", {**log, "data": "0xzz"}),
    ]
    return [rng.choice(messages) for _ in range(4)]


def test_bad_upstream_input_is_counted_and_skipped(tmp_path: Path, anvil: Anvil) -> None:
    """Malformed JSON, unknown subscriptions, logs with bad hex, replies to requests never made,
    deep nesting: logged, skipped, never a crash, nothing lost; a provider that keeps it up is
    recycled."""
    with harness(tmp_path, anvil, "bad upstream input") as h:
        rng = random.Random(11)
        proxy = h.proxies[0]
        h.start()
        h.wait_caught_up("the start")
        for _ in range(iterations(8, 30)):
            proxy.inject(*_bad_upstream_messages(rng))
            proxy.corrupt_logs(1)  # a real log of the stream, unreadable
            h.traffic_steps(1)
            h.wait_caught_up("the block after the bad messages")
        h.alive()
        assert "skipped a malformed" in h.log_tail(1_000_000)
        assert proxy.faults()["corrupted_log"] > 0
        # Past the limit of malformed messages in one session, the connection is recycled.
        connections = proxy.faults()["connections"]
        for _ in range(25):
            proxy.inject(*["{not json"] * 5)
        h.traffic_steps(3)
        wait_until(lambda: proxy.faults()["connections"] > connections, 30, "a reconnect")
        h.wait_caught_up("the recycled provider")
        assert "malformed messages; reconnecting" in h.log_tail(1_000_000)
        h.stop()
        h.figures.add_faults(proxy.faults())
        h.check_promise()


def test_reorg_moves_a_transaction_to_another_block(tmp_path: Path, anvil: Anvil) -> None:
    """The same transaction (sender, nonce, call), re-mined one block earlier by a reorg: its
    old log is kept as `removed`, the new one stored."""
    with harness(tmp_path, anvil, "reorg moves a transaction") as h:
        h.traffic_steps(6)
        h.start()
        h.follow()
        h.wait_caught_up("the start")
        moved = 0
        for round_ in range(iterations(2, 6)):
            h.traffic_steps(2)
            amount = 777_000 + round_
            tx_hash = h.w3.eth.send_transaction(h.mint_tx(amount))  # type: ignore[arg-type]
            before = h.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["blockNumber"]
            h.traffic_steps(1)  # the transaction is not in the tip: a reorg of 2 takes it out
            h.wait_caught_up("the transaction's block")
            sent = h.w3.eth.get_transaction(tx_hash)
            again = {
                "from": sent["from"],
                "to": sent["to"],
                "data": "0x" + bytes(sent["input"]).hex(),
                "nonce": sent["nonce"],
                "gas": sent["gas"],
            }
            # Replace the last two blocks; the transaction lands in the first of them, one
            # block later than it was.
            h.anvil.reorg(2, [(again, 1)])  # type: ignore[list-item]
            moved += 1
            h.traffic = h.new_traffic()
            h.traffic_steps(1)
            h.wait_caught_up("the reorg")
            after = [
                entry["blockNumber"]
                for entry in h.w3.eth.get_logs({"fromBlock": before, "toBlock": "latest"})
                if entry["data"] and int.from_bytes(bytes(entry["data"]), "big") == amount
            ]
            assert after and after[0] != before, "the transaction did not move"
        h.stop()
        h.figures.faults["moved transaction"] = moved
        h.check_promise()
