"""The ``chainwatch`` command line. Thin: load settings, configure logging, run.

Errors a user can cause print one line (``chainwatch: error: ...``) and exit non-zero without a
traceback: 2 for a bad configuration or usage, 1 for anything else.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from chainwatch.config import Settings, load_settings, redact_url, resolve_config_path
from chainwatch.errors import ChainwatchError, ConfigError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Real-time Ethereum events: subscribe, decode, store and rebroadcast.",
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file [default: $CHAINWATCH_CONFIG or config/chainwatch.toml]"
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"chainwatch: error: {message}", err=True)
    raise typer.Exit(code)


def _settings(path: Path | None) -> Settings:
    try:
        return load_settings(resolve_config_path(path))
    except ConfigError as exc:
        fail(str(exc), 2)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# --- run ---------------------------------------------------------------------------------------


LogLevelOption = Annotated[str, typer.Option(help="debug, info, warning or error")]


def _run_daemon(settings: Settings, log_level: str, **options: Any) -> None:
    _logging(log_level)
    from chainwatch.daemon import Daemon, run_until_signal

    daemon = Daemon(settings, **options)
    try:
        asyncio.run(run_until_signal(daemon.run))
    except ChainwatchError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


def _postgresql_settings(config: Path | None, role: str) -> Settings:
    settings = _settings(config)
    if not settings.storage.url.startswith("postgresql"):
        fail(
            f"chainwatch {role} needs PostgreSQL: {settings.path}: storage.url is "
            f"{settings.storage.url.split(':', 1)[0]} (use `chainwatch run` for one process)",
            2,
        )
    return settings


@app.command()
def run(
    config: ConfigOption = None,
    log_level: LogLevelOption = "info",
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve subscribers, or only ingest")
    ] = True,
) -> None:
    """Run the daemon: ingest every configured chain, store, and serve subscribers."""
    _run_daemon(_settings(config), log_level, serve=serve)


@app.command()
def ingest(
    config: ConfigOption = None,
    log_level: LogLevelOption = "info",
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="Serve /healthz and /metrics on this port")
    ] = None,
) -> None:
    """An ingest candidate (PostgreSQL): leads each chain nobody leads, stands by otherwise."""
    settings = _postgresql_settings(config, "ingest")
    _run_daemon(settings, log_level, role="ingest", http_port=http_port)


@app.command()
def serve(
    config: ConfigOption = None,
    log_level: LogLevelOption = "info",
    port: Annotated[
        int | None, typer.Option("--port", help="Listen on this port instead of [server] port")
    ] = None,
) -> None:
    """A gateway (PostgreSQL): serves subscribers from the store's change log, no providers."""
    settings = _postgresql_settings(config, "serve")
    if port is not None:
        settings = replace(settings, server=replace(settings.server, port=port))
    _run_daemon(settings, log_level, role="serve")


# --- check-config ------------------------------------------------------------------------------


@app.command("check-config")
def check_config(
    path: Annotated[Path | None, typer.Argument(help="Config file")] = None,
) -> None:
    """Validate a config file and print a summary."""
    settings = _settings(path)
    typer.echo(f"{settings.path}: OK")
    from sqlalchemy.engine import make_url

    typer.echo(f"storage: {make_url(settings.storage.url).render_as_string(hide_password=True)}")
    server = settings.server
    scheme = "wss" if server.tls_cert else "ws"
    auth = f", {len(server.tokens)} token(s)" if server.tokens else ", no tokens"
    typer.echo(f"server: {scheme}://{server.host}:{server.port}{auth}")
    for chain in settings.chains:
        providers = ", ".join(redact_url(u) for u in chain.providers)
        typer.echo(
            f"chain {chain.name} (id {chain.chain_id}, {chain.confirmations} confirmations, "
            f"{chain.mode}): {providers}"
        )
        for contract in settings.contracts_of(chain.name):
            events = ", ".join(contract.events) if contract.events else "all events"
            start = f" from block {contract.from_block}" if contract.from_block is not None else ""
            typer.echo(f"  contract {contract.name} {contract.address}: {events}{start}")
        for wallet in settings.wallets_of(chain.name):
            typer.echo(
                f"  wallets {', '.join(wallet.addresses)}: {', '.join(wallet.standards)} transfers"
            )


# --- events ------------------------------------------------------------------------------------


@app.command()
def events(
    config: ConfigOption = None,
    chain: Annotated[str | None, typer.Option(help="Chain name")] = None,
    contract: Annotated[str | None, typer.Option(help="Contract name or address")] = None,
    event: Annotated[str | None, typer.Option(help="Event name")] = None,
    from_block: Annotated[int | None, typer.Option("--from-block")] = None,
    to_block: Annotated[int | None, typer.Option("--to-block")] = None,
    status: Annotated[str | None, typer.Option(help="new, confirmed or removed")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many events")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table, json or csv (json and csv stream)")
    ] = "table",
) -> None:
    """Query the stored events; json and csv are written as they are read, in constant memory."""
    from chainwatch import render
    from chainwatch.store import Store

    settings = _settings(config)
    if fmt not in ("table", "json", "csv"):
        fail(f"--format: must be table, json or csv, not {fmt!r}", 2)
    if status is not None and status not in ("new", "confirmed", "removed"):
        fail(f"--status: must be new, confirmed or removed, not {status!r}", 2)
    chain_id = None
    if chain is not None:
        try:
            chain_id = settings.chain(chain).chain_id
        except KeyError:
            known = ", ".join(c.name for c in settings.chains)
            fail(f"unknown chain {chain!r} (known: {known})")
    address = None
    if contract is not None and contract.lower().startswith("0x"):
        address, contract = contract.lower(), None
    try:
        store = Store.open(settings.storage.url)
    except ChainwatchError as exc:
        fail(str(exc))
    query: dict[str, Any] = {
        "chain_id": chain_id,
        "contract": contract,
        "address": address,
        "event": event,
        "from_block": from_block,
        "to_block": to_block,
        "status": status,
        "limit": limit,
    }
    try:
        if contract is not None:
            known_names = {c.name for c in settings.contracts} | store.known_contract_names()
            if contract not in known_names:
                fail(f"unknown contract {contract!r} (known: {', '.join(sorted(known_names))})")
        if fmt == "table":  # the widths of the columns need every row
            objects = [row.to_json() for row in store.query(**query)]
            if render.write_table(objects, sys.stdout) == 0:
                typer.echo("no events", err=True)
            return
        from chainwatch.eventscmd import write_events

        write_events(store.stream(**query), fmt)
    except ChainwatchError as exc:
        fail(str(exc))
    finally:
        store.close()


# --- decode ------------------------------------------------------------------------------------


@app.command()
def decode(
    abi: Annotated[Path, typer.Option("--abi", help="ABI JSON file")],
    file: Annotated[
        str,
        typer.Argument(help="Logs as JSON lines or one JSON array; - for stdin (a pipe works)"),
    ] = "-",
) -> None:
    """Decode node-format logs offline and print them as JSON lines, as the input comes.

    Memory stays constant whatever the input size, and each line is printed as soon as its
    input is read. A line that is not JSON or not a log prints {"line": N, "error": ...} and a
    line on stderr, and decoding goes on.
    """
    from chainwatch.core.abi import load_abi_file
    from chainwatch.core.decoder import AbiDecoder
    from chainwatch.decodecmd import run_decode

    try:
        decoder = AbiDecoder(load_abi_file(abi))
    except ChainwatchError as exc:
        fail(str(exc))
    try:
        run_decode(decoder, file)
    except ChainwatchError as exc:
        fail(str(exc))


# --- watch -------------------------------------------------------------------------------------


@app.command()
def watch(
    address: Annotated[str, typer.Argument(help="Contract address")],
    provider: Annotated[str, typer.Option(help="Node WebSocket URL (ws:// or wss://)")],
    abi: Annotated[Path | None, typer.Option(help="ABI JSON file")] = None,
    erc20: Annotated[bool, typer.Option("--erc20", help="Decode as an ERC-20 token")] = False,
    erc721: Annotated[bool, typer.Option("--erc721", help="Decode as an ERC-721 token")] = False,
    erc1155: Annotated[bool, typer.Option("--erc1155", help="Decode as an ERC-1155 token")] = False,
    event: Annotated[list[str] | None, typer.Option(help="Only this event (repeatable)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Stream a contract's decoded events to the terminal (no config, no database).

    Without --abi or a token flag, the events of all three token standards are decoded.
    """
    from chainwatch.watchcmd import WatchOptions, run_watch

    if sum((abi is not None, erc20, erc721, erc1155)) > 1:
        fail("give one of --abi, --erc20, --erc721, --erc1155", 2)
    standards = [s for s, on in (("erc20", erc20), ("erc721", erc721), ("erc1155", erc1155)) if on]
    options = WatchOptions(address, provider, abi, standards, event or [], json_output)
    try:
        asyncio.run(run_watch(options))
    except ChainwatchError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


# --- tail --------------------------------------------------------------------------------------


@app.command()
def tail(
    url: Annotated[str, typer.Argument(help="A chainwatch server, e.g. ws://127.0.0.1:8546")],
    token: Annotated[str | None, typer.Option(help="Access token of the server")] = None,
    contract: Annotated[list[str] | None, typer.Option(help="Contract name or address")] = None,
    event: Annotated[list[str] | None, typer.Option(help="Event name (repeatable)")] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="'ARG OP VALUE', e.g. 'amount >= 1000000'")
    ] = None,
    finality: Annotated[str | None, typer.Option(help="new or confirmed")] = None,
    since: Annotated[
        int | None, typer.Option(help="Replay the changes after this cursor (an event id works)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Subscribe to a running daemon and print its alerts; reconnects with `since` by itself."""
    from chainwatch.tail import run_tail

    if finality is not None and finality not in ("new", "confirmed"):
        fail(f"--finality: must be new or confirmed, not {finality!r}", 2)
    try:
        asyncio.run(
            run_tail(
                url, token, contract or [], event or [], where or [], finality, since, json_output
            )
        )
    except ChainwatchError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


# --- dev ---------------------------------------------------------------------------------------


@app.command()
def dev(
    interval: Annotated[float, typer.Option(help="Seconds between demo transactions")] = 0.5,
    port: Annotated[int, typer.Option(help="Port of the demo's WebSocket server")] = 8546,
) -> None:
    """The offline demo: a local anvil, sample contracts, a trickle of transfers, the daemon."""
    from chainwatch.devdemo import run_demo

    _logging("warning")
    try:
        run_demo(interval=interval, port=port)
    except ChainwatchError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


def main() -> None:
    app(prog_name="chainwatch")


if __name__ == "__main__":
    main()
