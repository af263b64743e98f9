"""`chainwatch dev`, the offline demo that `make dev` runs: it prints events, Ctrl-C stops it."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
from pathlib import Path

from tests.helpers import CHAINWATCH


def test_dev_demo_prints_events_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [CHAINWATCH, "dev", "--port", "0", "--interval", "0.05"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(ln) for ln in stdout], daemon=True).start()
    seen: list[str] = []
    try:
        while sum(1 for ln in seen if ln.startswith("#")) < 8:
            seen.append(lines.get(timeout=60))
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, "".join(seen)
    assert any(ln.startswith("subscribers: ws://127.0.0.1:") for ln in seen)
    events = [ln for ln in seen if ln.startswith("#")]
    assert all("??" not in ln for ln in events), "every demo event decodes"
    assert (tmp_path / ".devnet" / "devnet.toml").is_file()
    assert (tmp_path / ".devnet" / "chainwatch.db").is_file()
