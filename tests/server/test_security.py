"""Tokens, origins, TLS, /healthz and the server's life, each through a real handshake."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chainwatch.errors import ChainwatchError
from chainwatch.server import Server
from tests.server.conftest import CHAIN_ID, TIMEOUT, Harness, rpc_client

TOKEN = "s3cret-Token_value"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, tokens=(TOKEN, "another"), allowed_origins=("https://ok.example",))
    yield harness
    harness.close()


async def refused(url: str, **kwargs: object) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, open_timeout=TIMEOUT, **kwargs):  # type: ignore[arg-type]
            pass
    return info.value.response.status_code


async def test_tokens(secured: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # The library's request dumps (quiet unless asked for) are redacted too.
    caplog.set_level(logging.DEBUG, logger="chainwatch.server.ws")
    async with secured.serving() as server:
        url = secured.url
        assert await refused(url) == 401
        assert await refused(url, additional_headers={"Authorization": "Bearer nope"}) == 401
        assert await refused(url + "/?token=s3cret") == 401  # a prefix is not the token
        assert await refused(url + "/?token=" + TOKEN + "x") == 401
        assert await refused(url, additional_headers={"Authorization": "Basic " + TOKEN}) == 401
        headers = {"Authorization": "Bearer " + TOKEN}
        async with rpc_client(url, additional_headers=headers) as client:
            assert await client.call("eth_chainId") == hex(CHAIN_ID)
        async with rpc_client(url + "/dev?token=" + TOKEN) as client:
            assert await client.call("eth_chainId") == hex(CHAIN_ID)
        async with rpc_client(url + "/other?token=another") as client:
            assert await client.call("eth_chainId") == "0x5"
        # The check comes before the path: no chain names for those without a token.
        assert await refused(url + "/nope") == 401
    assert server.stats["unauthorized"] == 6
    server_logs = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("chainwatch")
    )
    assert "token=***" in server_logs
    assert TOKEN not in server_logs and "s3cret" not in server_logs


async def test_401_says_how_to_authenticate(secured: Harness) -> None:
    async with secured.serving():
        with pytest.raises(InvalidStatus) as info:
            async with connect(secured.url, open_timeout=TIMEOUT):
                pass
    response = info.value.response
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"token" in response.body


async def test_origins(secured: Harness) -> None:
    headers = {"Authorization": "Bearer " + TOKEN}
    async with secured.serving() as server:
        status = await refused(
            secured.url, origin="https://evil.example", additional_headers=headers
        )
        assert status == 403
        async with rpc_client(
            secured.url, origin="https://ok.example", additional_headers=headers
        ) as client:
            assert await client.call("eth_chainId") == hex(CHAIN_ID)
        # No Origin: not a browser, nothing to defend against here (the token is checked).
        async with rpc_client(secured.url, additional_headers=headers) as client:
            assert await client.call("eth_chainId") == hex(CHAIN_ID)
    assert server.stats["forbidden_origin"] == 1


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is missing")
async def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    harness = Harness(tmp_path, tls_cert=cert, tls_key=key)
    try:
        async with harness.serving():
            assert harness.url.startswith("wss://")
            trusted = ssl.create_default_context(cafile=str(cert))
            async with rpc_client(harness.url, ssl=trusted) as client:
                assert await client.call("eth_chainId") == hex(CHAIN_ID)
                sub = await client.call("eth_subscribe", ["newHeads"])
                harness.dev.transfers(1)
                note = await client.notification()
                assert note["subscription"] == sub
            # Not trusted: the handshake fails; plain ws:// on the TLS port fails too.
            with pytest.raises(ssl.SSLCertVerificationError):
                async with connect(harness.url, ssl=ssl.create_default_context()):
                    pass
            with pytest.raises(Exception):  # noqa: B017 - any failure: it is not WebSocket
                async with connect(harness.url.replace("wss://", "ws://"), open_timeout=2):
                    pass
            # /healthz over TLS too.
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", harness.server.port if harness.server else 0, ssl=trusted,
                server_hostname="127.0.0.1",
            )  # fmt: skip
            status, _ = await http_get(reader, writer, "/healthz")
            assert status == 200
    finally:
        harness.close()


async def http_get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    async with asyncio.timeout(TIMEOUT):
        data = await reader.read()  # the server closes after the response
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def healthz(harness: Harness) -> tuple[int, dict[str, object]]:
    assert harness.server is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.server.port)
    status, body = await http_get(reader, writer, "/healthz")
    return status, json.loads(body)


async def test_healthz(harness: Harness) -> None:
    async with harness.serving():
        harness.dev.transfers(1)
        async with rpc_client(harness.url) as client:  # wait until block 1 is through
            await client.call("eth_chainId")
        status, body = await healthz(harness)
        assert status == 200
        assert body["status"] == "ok"
        chains = body["chains"]
        assert isinstance(chains, dict)
        assert chains["dev"]["head"] == 1
        assert chains["dev"]["providers_connected"] == 1
        assert 0 <= chains["dev"]["seconds_since_head"] < 60
        assert chains["other"]["head"] is None
        assert chains["other"]["seconds_since_head"] is None
        harness.statuses[CHAIN_ID].providers[0].connected = False
        status, body = await healthz(harness)
        assert status == 503 and body["status"] == "unavailable"
        assert body["chains"]["dev"]["providers_connected"] == 0  # type: ignore[index]


async def test_healthz_needs_no_token(secured: Harness) -> None:
    async with secured.serving():
        status, _ = await healthz(secured)
        assert status == 200


async def test_warns_when_exposed_without_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for tokens, warned in (((), True), (("t",), False)):
        (tmp_path / str(warned)).mkdir()
        harness = Harness(tmp_path / str(warned), host="0.0.0.0", tokens=tokens)
        caplog.clear()
        try:
            server = Server(harness.settings, harness.store, harness.statuses)
            await server.start()
            await server.close()
        finally:
            harness.close()
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert bool(warnings) is warned
        if warned:
            assert "without tokens" in warnings[0].getMessage()


async def test_port_taken_is_a_clear_error(harness: Harness) -> None:
    async with harness.serving() as first:
        settings = harness.settings
        taken = type(settings)(
            settings.path,
            settings.storage,
            type(settings.server)(port=first.port),
            settings.chains,
            settings.contracts,
            settings.wallets,
        )
        second = Server(taken, harness.store, harness.statuses)
        with pytest.raises(ChainwatchError) as info:
            await second.start()
        message = str(info.value)
        assert message.startswith(f"cannot listen on 127.0.0.1:{first.port}: ")
        assert "\n" not in message


async def test_cancelling_serve_forever_drains_and_closes_connections_1012(
    harness: Harness,
) -> None:
    server = Server(harness.settings, harness.store, harness.statuses)
    await server.start()
    harness.dev.sinks.append(server)
    task = asyncio.create_task(server.serve_forever())
    async with rpc_client(f"ws://127.0.0.1:{server.port}") as client:
        await client.call("eth_subscribe", ["newHeads"])
        harness.dev.transfers(7)  # queued, not yet routed, when the signal comes
        task.cancel()
        head = await client.notification()  # what was queued is delivered first
        assert head["result"]["number"] == hex(harness.dev.number)
        with pytest.raises(ConnectionClosed) as info:
            await client.notification()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1012
    with pytest.raises(asyncio.CancelledError):
        await task
