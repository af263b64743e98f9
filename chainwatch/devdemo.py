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
from chainwatch.core.model import Change
from chainwatch.daemon import Daemon, run_until_signal

log = logging.getLogger("chainwatch.dev")


class PrintSink:
    """Prints each stored event as one readable line, and again if a reorg removes it.

    Confirmations are not printed: on an automining devnet every event is confirmed a block
    later, and the line would only repeat itself.
    """

    def on_changes(self, changes: Sequence[Change]) -> None:
        for change in changes:
            if change.event is not None and change.kind in ("new", "removed"):
                print(render.event_line(change.event.to_json()), flush=True)


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
        print(f"config: {config}", flush=True)
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
        daemon = Daemon(settings, extra_sink=PrintSink())

        async def announce() -> None:
            await daemon.started.wait()
            url = f"ws://127.0.0.1:{daemon.server_port}"
            print(
                f"subscribers: {url} (try `chainwatch tail {url}`)\n"
                f"query the store: chainwatch events --config {config}\n"
                "events as they are stored (Ctrl-C to stop):",
                flush=True,
            )

        async def main() -> None:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(announce())
                tasks.create_task(daemon.run())

        try:
            asyncio.run(run_until_signal(main))
        finally:
            stop.set()
            sender.join(timeout=10)
    print("stopped.", flush=True)
