"""Helpers shared by the end-to-end tests: the real CLI in a subprocess, waits with timeouts,
throw-away PostgreSQL databases, and an independent view of what the store must hold."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHAINWATCH = str(Path(sys.executable).with_name("chainwatch"))
PG_URL = os.environ.get("CHAINWATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    """A loopback port that nothing listens on (free when asked)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``chainwatch`` command."""
    return subprocess.run(
        [CHAINWATCH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=input,
    )


@contextlib.contextmanager
def daemon(config: Path, log_path: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """``chainwatch run`` in a subprocess; SIGTERM on exit, which must end it with code 0."""
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [CHAINWATCH, "run", "--config", str(config), *extra],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise AssertionError("daemon did not exit within 30 s of SIGTERM") from None


def stop(proc: subprocess.Popen[bytes], log_path: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    assert code == 0, f"daemon exited {code}:\n{log_path.read_text()[-3000:]}"
    return code


@contextlib.contextmanager
def _pg_object(kind: str, drop_option: str) -> Iterator[str]:
    """A PostgreSQL ``kind`` (DATABASE or SCHEMA) of its own for one test (its name), dropped
    afterwards."""
    import psycopg

    base = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"cw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE {kind} "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP {kind} IF EXISTS "{name}"{drop_option}')


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """The URL of a PostgreSQL database of its own for one test, dropped afterwards."""
    with _pg_object("DATABASE", " WITH (FORCE)") as name:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A storage URL whose tables live in a PostgreSQL schema of their own, dropped afterwards."""
    with _pg_object("SCHEMA", " CASCADE") as name:
        yield f"{PG_URL}?options=-csearch_path%3D{name}"


def events_json(config: Path, *args: str) -> list[dict[str, Any]]:
    result = cli("events", "--config", str(config), "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
