"""``chainwatch dev``: the offline demo.

Starts a local anvil, deploys the sample contracts, sends a steady trickle of token transfers
and contract events from a background thread, and runs the daemon on a devnet config written
into ``.devnet/``, printing each event as it is stored, until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from chainwatch import render
from chainwatch.config import load_settings
from chainwatch.core.model import Head, StoredEvent
from chainwatch.daemon import Daemon, run_until_signal

log = logging.getLogger("chainwatch.dev")


class PrintSink:
    """Prints each stored event (and each status change) as one readable line."""

    def on_head(self, chain_id: int, head: Head) -> None:
        pass

    def on_events(self, chain_id: int, events: Sequence[StoredEvent]) -> None:
        for event in events:
            print(render.event_line(event.to_json()), flush=True)


def run_demo(*, interval: float = 0.5, port: int = 8546, workdir: Path = Path(".devnet")) -> None:
    from chainwatch.devnet import Anvil, Traffic, deploy_sample, write_devnet_config

    workdir.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (workdir / f"chainwatch.db{suffix}").unlink(missing_ok=True)
    with Anvil(block_time=None) as anvil:
        print(f"anvil running at {anvil.ws_url}; deploying the sample contracts…", flush=True)
        sample = deploy_sample(anvil.w3)
        config = workdir / "devnet.toml"
        write_devnet_config(config, anvil, sample, "sqlite:///chainwatch.db", server_port=port)
        settings = load_settings(config)
        print(
            f"config: {config}\n"
            f"subscribers: ws://127.0.0.1:{port} (try `chainwatch tail ws://127.0.0.1:{port}`)\n"
            f"query the store: chainwatch events --config {config}\n"
            "events as they are stored (Ctrl-C to stop):",
            flush=True,
        )
        stop = threading.Event()
        traffic = Traffic(anvil.w3, sample, seed=1)

        def trickle() -> None:
            while not stop.wait(interval):
                try:
                    traffic.step()
                except Exception as exc:  # the chain went away at shutdown, or a bad tx
                    if not stop.is_set():
                        log.warning("demo transaction failed: %s", exc)

        sender = threading.Thread(target=trickle, name="demo-traffic", daemon=True)
        sender.start()
        try:
            daemon = Daemon(settings, extra_sink=PrintSink())
            asyncio.run(run_until_signal(daemon.run))
        finally:
            stop.set()
            sender.join(timeout=10)
    print("stopped.", flush=True)
