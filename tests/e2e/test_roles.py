"""Roles as processes around one PostgreSQL: ingest candidates and gateways, through failures.

Two ``chainwatch ingest`` candidates and two ``chainwatch serve`` gateways run as subprocesses
against anvil, transfers flowing, subscribers on both gateways resuming with their cursor on the
other gateway whenever a connection ends. The leader is killed (SIGKILL), paused past its lease
(SIGSTOP, then SIGCONT: it must not write again and must stand by), a gateway is stopped
(SIGTERM: its clients get 1012 and resume elsewhere), and the leader is stopped (SIGTERM). Then
the store must equal anvil's ``eth_getLogs`` for what the config watches (none missing, none
extra, none twice), and every subscriber's view (statuses applied) must equal the store.

The takeover times are printed (``pytest -s``); they are measured here, not asserted.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from web3 import Web3

from chainwatch.config import load_settings
from chainwatch.devnet import Anvil, deploy_sample, write_devnet_config
from chainwatch.store import Store
from tests.e2e.roles_harness import Role, Subscriber, Subscribers, TrafficThread
from tests.e2e.test_cli import one_line_error, write_config
from tests.e2e.test_ingest import expected_logs
from tests.helpers import cli, free_port, pg_schema, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CHAIN = "devnet"
LEASE_TTL = 2
START = 60  # seconds for a process to start on a loaded machine
SETTLE = 45  # seconds for the store or a subscriber to catch up
TAKEOVER = 30  # seconds to wait for a new leader (the issue asks for 10, and 2 after SIGTERM)


def _measure(what: Callable[[], object], timeout: float, description: str) -> float:
    """Seconds until ``what`` is true (polled every 50 ms)."""
    began = time.monotonic()
    wait_until(what, timeout, description)
    return time.monotonic() - began


@pytest.mark.timeout(300)
def test_failover_of_ingest_leaders_and_gateways_loses_nothing(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(pg_schema())
        anvil = stack.enter_context(Anvil())
        w3 = Web3(Web3.HTTPProvider(anvil.http_url))
        sample = deploy_sample(anvil.w3)
        wallet = anvil.accounts[1]
        config = write_devnet_config(tmp_path / "chainwatch.toml", anvil, sample, url,
                                     server_port=0)  # fmt: skip
        text = config.read_text()
        assert "[storage]\n" in text
        config.write_text(text.replace("[storage]\n", f"[storage]\nlease_ttl = {LEASE_TTL}\n"))
        chain_id = load_settings(config).chains[0].chain_id
        store = Store.open(url)
        stack.callback(store.close)

        roles: list[Role] = []

        def start(name: str, command: str, port: int | None = None) -> Role:
            role = Role(name, command, config, port or free_port(), tmp_path)
            roles.append(role)
            return role

        def logs() -> str:
            return "\n".join(role.log_tail() for role in roles)

        @stack.callback
        def _stop_all() -> None:
            for role in roles:
                if role.running:
                    with contextlib.suppress(AssertionError):
                        role.stop(15)

        def head() -> int:
            return int(w3.eth.block_number)

        def checkpoint() -> int:
            stored = store.checkpoint(chain_id)
            return -1 if stored is None else stored.block_number

        def caught_up() -> bool:
            return checkpoint() >= head()

        def leaders(candidates: list[Role]) -> list[Role]:
            return [c for c in candidates if c.running and c.leads(CHAIN)]

        def wait(what: Callable[[], object], timeout: float, description: str) -> None:
            try:
                wait_until(what, timeout, description)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{logs()}") from None

        # History before the first start, then two candidates and two gateways.
        traffic = TrafficThread(anvil.http_url, sample, wallet, seed=3, interval=0.1)
        for _ in range(10):
            traffic.traffic.step()
        first = [start("ingest-1", "ingest"), start("ingest-2", "ingest")]
        gateways = [start("serve-1", "serve"), start("serve-2", "serve")]
        wait(lambda: all(c.healthz() is not None for c in first), START, "the candidates")
        wait(lambda: len(leaders(first)) == 1, START, "one leader")
        wait(lambda: all(g.accepts() for g in gateways), START, "the gateways")
        wait(caught_up, SETTLE, "the history load")

        ws_urls = [f"ws://127.0.0.1:{g.port}" for g in gateways]
        steady = Subscriber("steady-1", ws_urls, 0, "new")  # leaves a gateway only if closed
        subscribers = Subscribers([
            steady,
            Subscriber("steady-2", ws_urls, 1, "confirmed"),
            Subscriber("hopper-new", ws_urls, 1, "new", drop_every=9),
            Subscriber("hopper-confirmed", ws_urls, 0, "confirmed", drop_every=13),
        ]).start()  # fmt: skip
        stack.callback(subscribers.close)
        stack.callback(traffic.close)
        traffic.start()

        def flowing(since: int, blocks: int = 3) -> Callable[[], bool]:
            """The store moved ``blocks`` past ``since`` (a leader writes what flows)."""
            return lambda: traffic.errors == [] and checkpoint() >= since + blocks

        # 1. SIGKILL of the leader: the standby takes over once the lease has run out.
        (leader,) = leaders(first)
        (standby,) = [c for c in first if c is not leader]
        wait(lambda: steady.received > 0, SETTLE, "the first notifications")
        leader.send(signal.SIGKILL)
        killed_at = head()
        after_kill = _measure(lambda: standby.leads(CHAIN), TAKEOVER, "a takeover after SIGKILL")
        leader.proc.wait(timeout=10)
        wait(flowing(killed_at), SETTLE, "the new leader to store blocks")
        spare = start("ingest-3", "ingest")
        wait(lambda: spare.leads(CHAIN) is False, START, "the replacement candidate")

        # 2. SIGSTOP of the leader past its lease. Transfers pause first, so that the leader has
        # written all it had when it stops: whatever it writes once continued would be a write
        # after its lease was taken over, which fencing forbids. (Stopped inside a transaction,
        # a lease renewal, it holds the lease row until PostgreSQL ends that idle transaction.)
        paused = standby
        traffic.pause()
        wait(caught_up, SETTLE, "the leader to store what was sent")
        written = store.last_cursor()
        wait(lambda: paused.metric("chainwatch_change_cursor") == written, SETTLE,
             "the leader's last cursor")  # fmt: skip
        paused.send(signal.SIGSTOP)
        traffic.resume()
        stopped_at = head()
        after_stop = _measure(lambda: spare.leads(CHAIN), TAKEOVER, "a takeover after SIGSTOP")
        wait(flowing(stopped_at), SETTLE, "the new leader to store blocks")
        resumed_from = len(paused.log_text())
        paused.send(signal.SIGCONT)
        wait(lambda: "standing by" in paused.log_text(resumed_from), TAKEOVER,
             "the continued leader to stand by")  # fmt: skip
        assert paused.leads(CHAIN) is False
        assert paused.metric("chainwatch_leader", chain=CHAIN) == 0
        assert paused.metric("chainwatch_change_cursor") == written, (
            "the paused leader wrote after its lease was taken over\n" + logs()
        )
        assert leaders([paused, spare]) == [spare]

        # 3. SIGTERM of a gateway: its clients get 1012 and resume on the other with their cursor.
        # The gateway `steady` is on (it never leaves one unless the gateway closes it).
        wait(lambda: steady.connected is not None, SETTLE, "the steady subscriber")
        index = ws_urls.index(str(steady.connected))
        gateway, other = gateways[index], ws_urls[1 - index]
        gateway.send(signal.SIGTERM)
        gateway_exit = _measure(lambda: not gateway.running, 30, "the gateway to exit")
        assert gateway.proc.returncode == 0, gateway.log_tail()
        wait(lambda: steady.connected == other, SETTLE, "the client to resume elsewhere")
        assert (ws_urls[index], 1012) in steady.closes, steady.summary()
        restarted = gateways[index] = start(f"{gateway.name}b", "serve", gateway.port)

        # 4. SIGTERM of the leader: it gives the lease up, the standby takes over at once.
        termed_at = head()
        spare.send(signal.SIGTERM)
        after_term = _measure(lambda: paused.leads(CHAIN), TAKEOVER, "a takeover after SIGTERM")
        assert spare.proc.wait(timeout=30) == 0, spare.log_tail()
        wait(flowing(termed_at), SETTLE, "the new leader to store blocks")
        wait(restarted.accepts, START, "the restarted gateway")
        print(
            f"\n[roles] takeover after SIGKILL {after_kill:.2f} s, after SIGSTOP past the lease "
            f"{after_stop:.2f} s (lease_ttl {LEASE_TTL} s), after SIGTERM {after_term:.2f} s; "
            f"a gateway's exit after SIGTERM {gateway_exit:.2f} s"
        )

        # The end: transfers stop, the store reaches anvil's head, subscribers the store.
        wait(lambda: traffic.sent >= 60 or traffic.errors, SETTLE, "60 transfers in all")
        traffic.close()
        assert traffic.errors == [], traffic.errors
        wait(caught_up, SETTLE, "the store to reach anvil's head")
        rows = store.query(chain_id=chain_id)
        rows_by_id = {e.id: e for e in rows}
        live = {e.id: (e.log.block_hash.lower(), e.log.log_index) for e in rows
                if e.status != "removed"}  # fmt: skip
        confirmed = {i: live[i] for i in live if rows_by_id[i].status == "confirmed"}
        for subscriber in subscribers.all:
            want = live if subscriber.finality == "new" else confirmed
            wait(lambda s=subscriber, w=want: s.view() == w, SETTLE,
                 f"{subscriber.summary()} to equal the store")  # fmt: skip
        subscribers.close()
        assert subscribers.failure is None, repr(subscribers.failure)

        # The store against anvil's eth_getLogs (worked out without chainwatch).
        watched = {d.address.lower() for _, d, _ in sample.watched()}
        expected = {
            ("0x" + bytes(e["blockHash"]).hex(), int(e["logIndex"]))
            for e in expected_logs(w3, watched, wallet, head())
        }
        keys = [(e.log.block_hash.lower(), e.log.log_index) for e in rows]
        stored = set(live.values())
        assert len(keys) == len(set(keys)), "an event was stored twice"
        assert not expected - stored, f"missing: {sorted(expected - stored)[:5]}\n{logs()}"
        assert not stored - expected, f"extra: {sorted(stored - expected)[:5]}\n{logs()}"
        hops = sum(len(s.connections) for s in subscribers.all)
        restarts = sum(code == 1012 for s in subscribers.all for _, code in s.closes)
        repeats = sum(len(s.repeats) for s in subscribers.all)
        print(
            f"[roles] {len(expected)} events in {head()} blocks, {traffic.sent} transfers while "
            f"running; subscribers: {hops} connections, {restarts} closed with 1012, "
            f"{sum(s.received for s in subscribers.all)} notifications, {repeats} repeated"
        )
        assert len(expected) > 50
        for role in roles:
            if role.running:
                assert role.stop() == 0, role.log_tail()
        # Nothing twice: each notification's cursor is beyond the one before, across resumes.
        for subscriber in subscribers.all:
            assert subscriber.repeats == [], (
                f"{subscriber.summary()}: notifications not beyond the cursor before them "
                f"(cursor, previous, connection, nth, id, status): {subscriber.repeats[:5]}; "
                f"connections (gateway, since): {subscriber.connections}"
            )


@pytest.mark.parametrize("command", ["ingest", "serve"])
def test_roles_need_postgresql(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path, provider="ws://127.0.0.1:1")
    result = cli(command, "--config", str(config))
    assert result.returncode == 2, result
    assert "needs PostgreSQL" in one_line_error(result.stderr)
