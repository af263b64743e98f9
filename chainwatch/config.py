"""Typed, immutable settings read from a TOML file and validated once at start.

Every problem is reported as ``ConfigError(file, key, problem)``, whose message reads
``config/chainwatch.toml: contracts[2].address: not a 20-byte hex address``. ``${NAME}`` in any
string value is replaced by the environment variable NAME (provider URLs carry API keys).

Provider URLs are secrets: :func:`redact_url` keeps scheme, host and port and hides the path and
query, and is what logs and errors show.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from chainwatch.errors import AbiError, ConfigError

DEFAULT_CONFIG = "config/chainwatch.toml"
STANDARDS = ("erc20", "erc721", "erc1155")
MODES = ("race", "failover")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
# SQLAlchemy's sqlite URLs, with or without a driver: sqlite:///rel.db, sqlite+pysqlite:///rel.db
_SQLITE_URL_RE = re.compile(r"^(sqlite(?:\+[A-Za-z0-9_]+)?:///)(.*)$", re.DOTALL)

T = TypeVar("T")


def redact_url(url: str) -> str:
    """``wss://host:port/***`` — never the path or query, where API keys live."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if ":" in netloc:  # an IPv6 literal keeps its brackets (RFC 3986 section 3.2.2)
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
    except ValueError:
        return "<invalid url>"
    hidden = "/***" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{netloc}{hidden}"


@dataclass(frozen=True, slots=True)
class StorageSettings:
    url: str = "sqlite:///chainwatch.db"
    #: Seconds a change stays in the change log (``changes_retention``, e.g. "7d"); a consumer
    #: resuming from an older cursor is told to resync.
    changes_retention: float = 7 * 86400.0
    #: Seconds a chain's ingest leadership lasts without renewal (PostgreSQL roles).
    lease_ttl: float = 5.0


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The downstream WebSocket server (``[server]``)."""

    host: str = "127.0.0.1"
    port: int = 8546
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tokens: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_message_size: int = 64 * 1024
    max_subscriptions: int = 100
    max_requests_per_second: float = 50.0
    max_connections_per_ip: int = 256
    max_queue_messages: int = 10_000
    max_queue_bytes: int = 8 * 1024 * 1024
    compression: bool = False
    # Hostile load (the README's "Safe to expose" explains each).
    max_batch_items: int = 100
    max_batch_reply_bytes: int = 1024 * 1024
    max_match_cost_per_ip: int = 1000
    max_connections: int = 10_000
    max_handshakes: int = 256
    max_handshakes_per_ip: int = 16
    max_header_bytes: int = 32 * 1024
    handshake_timeout: float = 10.0
    max_replays: int = 2
    max_queued_replays: int = 64


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """One chain (``[[chains]]``) and how to reach it."""

    name: str
    chain_id: int
    providers: tuple[str, ...]
    confirmations: int = 2
    mode: str = "race"
    getlogs_max_range: int = 2000
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    stale_after: float | None = None  # None: 3 x the observed block time


@dataclass(frozen=True, slots=True)
class ContractSettings:
    """A watched contract (``[[contracts]]``); ``abi`` is resolved against the config's folder."""

    name: str
    chain: str
    address: str  # EIP-55
    abi: Path
    events: tuple[str, ...] | None = None
    from_block: int | None = None


@dataclass(frozen=True, slots=True)
class WalletSettings:
    """Token transfers to or from these addresses on any contract (``[[wallets]]``)."""

    chain: str
    addresses: tuple[str, ...]
    standards: tuple[str, ...] = STANDARDS
    from_block: int | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    path: Path
    storage: StorageSettings = field(default_factory=StorageSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    chains: tuple[ChainSettings, ...] = ()
    contracts: tuple[ContractSettings, ...] = ()
    wallets: tuple[WalletSettings, ...] = ()

    def chain(self, name: str) -> ChainSettings:
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(name)

    def contracts_of(self, chain: str) -> tuple[ContractSettings, ...]:
        return tuple(c for c in self.contracts if c.chain == chain)

    def wallets_of(self, chain: str) -> tuple[WalletSettings, ...]:
        return tuple(w for w in self.wallets if w.chain == chain)


def resolve_config_path(path: str | os.PathLike[str] | None) -> Path:
    """The explicit path, else ``$CHAINWATCH_CONFIG``, else ``config/chainwatch.toml``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("CHAINWATCH_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a config file; raises ConfigError naming file, key and problem."""
    file = Path(path)
    shown = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(shown, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(shown, "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(shown, "", "cannot read: not UTF-8 text") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, "", f"not valid TOML: {exc}") from None
    return _Reader(shown, file.parent).settings(file, raw)


class _Reader:
    """Walks the parsed TOML, checking each key, so that errors carry the key's full path."""

    def __init__(self, shown: str, base: Path) -> None:
        self.shown = shown
        self.base = base

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.shown, key, problem)

    # --- typed getters ------------------------------------------------------------------------

    def _expand(self, key: str, value: Any) -> Any:
        if isinstance(value, str):

            def env(match: re.Match[str]) -> str:
                name = match.group(1)
                if name not in os.environ:
                    raise self.fail(key, f"environment variable {name} is not set")
                return os.environ[name]

            return _ENV_RE.sub(env, value)
        return value

    def get(
        self,
        table: dict[str, Any],
        prefix: str,
        name: str,
        kind: type[T] | tuple[type, ...],
        default: Any = ...,
    ) -> Any:
        key = f"{prefix}{name}"
        if name not in table:
            if default is ...:
                raise self.fail(key, "missing")
            return default
        value = self._expand(key, table[name])
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"expected {_kind_name(kinds)}, got a boolean")
        if not isinstance(value, kinds):
            raise self.fail(key, f"expected {_kind_name(kinds)}, got {_toml_type(value)}")
        return value

    def strings(
        self, table: dict[str, Any], prefix: str, name: str, default: Any = ...
    ) -> tuple[str, ...]:
        value = self.get(table, prefix, name, list, default)
        if value is default and default is not ...:
            return value  # type: ignore[no-any-return]
        out = []
        for i, item in enumerate(value):
            item = self._expand(f"{prefix}{name}[{i}]", item)
            if not isinstance(item, str):
                raise self.fail(
                    f"{prefix}{name}[{i}]", f"expected a string, got {_toml_type(item)}"
                )
            out.append(item)
        return tuple(out)

    def check_keys(self, table: dict[str, Any], prefix: str, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"{prefix}{key}", "unknown key")

    def positive(self, key: str, value: float, *, zero: bool = False) -> None:
        if value < 0 or (value == 0 and not zero):
            raise self.fail(key, "must be " + ("zero or more" if zero else "greater than zero"))

    def address(self, key: str, value: str) -> str:
        from chainwatch.core.jsonform import checksum_address

        if not _ADDRESS_RE.match(value):
            raise self.fail(key, "not a 20-byte hex address")
        mixed_case = value[2:] not in (value[2:].lower(), value[2:].upper())
        if mixed_case and checksum_address(value) != value:
            raise self.fail(key, "bad EIP-55 checksum (use all lowercase to skip the check)")
        return checksum_address(value)

    def tables(self, raw: dict[str, Any], name: str) -> list[dict[str, Any]]:
        value = raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise self.fail(name, f"expected [[{name}]] tables")
        return value

    # --- sections -----------------------------------------------------------------------------

    def settings(self, file: Path, raw: dict[str, Any]) -> Settings:
        self.check_keys(raw, "", {"storage", "server", "chains", "contracts", "wallets"})
        storage = self.storage(self.section(raw, "storage"))
        server = self.server(self.section(raw, "server"))
        chains = tuple(
            self.chain(t, f"chains[{i}].") for i, t in enumerate(self.tables(raw, "chains"))
        )
        if not chains:
            raise self.fail("chains", "at least one [[chains]] table is required")
        names = [c.name for c in chains]
        ids = [c.chain_id for c in chains]
        for i, chain in enumerate(chains):
            if names.index(chain.name) != i:
                raise self.fail(f"chains[{i}].name", f"duplicate chain name {chain.name!r}")
            # Checkpoints and statuses are kept per chain id: two chains cannot share one.
            if ids.index(chain.chain_id) != i:
                raise self.fail(
                    f"chains[{i}].chain_id",
                    f"chain id {chain.chain_id} is also chains[{ids.index(chain.chain_id)}]",
                )
        contracts = tuple(
            self.contract(t, f"contracts[{i}].", names)
            for i, t in enumerate(self.tables(raw, "contracts"))
        )
        seen: dict[str, int] = {}
        watched: dict[tuple[str, str], str] = {}
        for i, contract in enumerate(contracts):
            if contract.name in seen:
                raise self.fail(
                    f"contracts[{i}].name", f"duplicate contract name {contract.name!r}"
                )
            seen[contract.name] = i
            # A chain's watch set holds one entry per address: a second would replace the first.
            other = watched.setdefault((contract.chain, contract.address), contract.name)
            if other != contract.name:
                raise self.fail(
                    f"contracts[{i}].address",
                    f"already watched as {other!r} on chain {contract.chain!r}",
                )
        wallets = tuple(
            self.wallet(t, f"wallets[{i}].", names)
            for i, t in enumerate(self.tables(raw, "wallets"))
        )
        return Settings(file, storage, server, chains, contracts, wallets)

    def section(self, raw: dict[str, Any], name: str) -> dict[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, f"expected a [{name}] table")
        return value

    def storage(self, t: dict[str, Any]) -> StorageSettings:
        self.check_keys(t, "storage.", {"url", "changes_retention", "lease_ttl"})
        d = StorageSettings()
        url = self.get(t, "storage.", "url", str, d.url)
        retention = _duration(
            self, "storage.changes_retention", self.get(t, "storage.", "changes_retention",
                                                        (str, int, float), d.changes_retention)
        )  # fmt: skip
        lease_ttl = self.get(t, "storage.", "lease_ttl", float, d.lease_ttl)
        if not 1.0 <= lease_ttl <= 300.0:
            raise self.fail("storage.lease_ttl", "must be between 1 and 300 seconds")
        if "://" not in url:
            raise self.fail("storage.url", "not a database URL (e.g. sqlite:///chainwatch.db)")
        sqlite = _SQLITE_URL_RE.match(url)
        if sqlite:
            # A relative SQLite path is taken relative to the config file, like ABI paths.
            prefix, rel = sqlite.groups()
            if rel and rel != ":memory:" and not rel.startswith("/"):
                url = prefix + str(self.base / rel)
        return StorageSettings(url, retention, lease_ttl)

    def server(self, t: dict[str, Any]) -> ServerSettings:
        p = "server."
        d = ServerSettings()
        self.check_keys(
            t,
            p,
            {
                "host", "port", "tls_cert", "tls_key", "tokens", "tokens_file", "allowed_origins",
                "max_message_size", "max_subscriptions", "max_requests_per_second",
                "max_connections_per_ip", "max_queue_messages", "max_queue_bytes", "compression",
                "max_batch_items", "max_batch_reply_bytes", "max_match_cost_per_ip",
                "max_connections", "max_handshakes", "max_handshakes_per_ip", "max_header_bytes",
                "handshake_timeout", "max_replays", "max_queued_replays",
            },
        )  # fmt: skip
        port = self.get(t, p, "port", int, d.port)
        if not 0 <= port <= 65535:
            raise self.fail(f"{p}port", "must be between 0 and 65535")
        cert = self.get(t, p, "tls_cert", str, None)
        key = self.get(t, p, "tls_key", str, None)
        if (cert is None) != (key is None):
            raise self.fail(
                f"{p}tls_cert" if cert is None else f"{p}tls_key",
                "tls_cert and tls_key go together",
            )
        cert_path = self.existing_file(f"{p}tls_cert", cert) if cert else None
        key_path = self.existing_file(f"{p}tls_key", key) if key else None
        tokens = list(self.strings(t, p, "tokens", ()))
        tokens_file = self.get(t, p, "tokens_file", str, None)
        if tokens_file is not None:
            path = self.existing_file(f"{p}tokens_file", tokens_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise self.fail(f"{p}tokens_file", f"cannot read: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise self.fail(f"{p}tokens_file", "cannot read: not UTF-8 text") from None
            tokens += [ln.strip() for ln in text.splitlines() if ln.strip()]
        for i, token in enumerate(tokens):
            if not token or any(ch.isspace() for ch in token):
                raise self.fail(f"{p}tokens[{i}]", "a token must be non-empty without spaces")
        ints = {}
        for name in ("max_message_size", "max_subscriptions", "max_connections_per_ip",
                     "max_queue_messages", "max_queue_bytes", "max_batch_items",
                     "max_batch_reply_bytes", "max_match_cost_per_ip", "max_connections",
                     "max_handshakes", "max_handshakes_per_ip", "max_header_bytes",
                     "max_replays", "max_queued_replays"):  # fmt: skip
            ints[name] = self.get(t, p, name, int, getattr(d, name))
            self.positive(p + name, ints[name])
        if ints["max_header_bytes"] < 1024:
            raise self.fail(f"{p}max_header_bytes", "must be at least 1024")
        rps = self.get(t, p, "max_requests_per_second", float, d.max_requests_per_second)
        self.positive(f"{p}max_requests_per_second", rps)
        handshake_timeout = self.get(t, p, "handshake_timeout", float, d.handshake_timeout)
        self.positive(f"{p}handshake_timeout", handshake_timeout)
        return ServerSettings(
            host=self.get(t, p, "host", str, d.host),
            port=port,
            tls_cert=cert_path,
            tls_key=key_path,
            tokens=tuple(tokens),
            allowed_origins=self.strings(t, p, "allowed_origins", ()),
            max_requests_per_second=rps,
            handshake_timeout=handshake_timeout,
            compression=self.get(t, p, "compression", bool, d.compression),
            **ints,
        )

    def existing_file(self, key: str, value: str) -> Path:
        path = self.base / value
        if not path.is_file():
            raise self.fail(key, f"file not found: {path}")
        return path

    def chain(self, t: dict[str, Any], p: str) -> ChainSettings:
        self.check_keys(
            t,
            p,
            {"name", "chain_id", "providers", "confirmations", "mode", "getlogs_max_range",
             "ping_interval", "ping_timeout", "stale_after"},
        )  # fmt: skip
        name = self.get(t, p, "name", str)
        if not _NAME_RE.match(name):
            raise self.fail(f"{p}name", "use letters, digits, '_', '-' or '.' only")
        chain_id = self.get(t, p, "chain_id", int)
        self.positive(f"{p}chain_id", chain_id)
        providers = self.strings(t, p, "providers")
        if not providers:
            raise self.fail(f"{p}providers", "at least one provider URL is required")
        for i, url in enumerate(providers):
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if scheme not in ("ws", "wss"):
                raise self.fail(
                    f"{p}providers[{i}]", f"not a ws:// or wss:// URL: {redact_url(url)}"
                )
        confirmations = self.get(t, p, "confirmations", int, 2)
        self.positive(f"{p}confirmations", confirmations)
        mode = self.get(t, p, "mode", str, "race")
        if mode not in MODES:
            raise self.fail(f"{p}mode", f"must be one of {', '.join(MODES)}")
        max_range = self.get(t, p, "getlogs_max_range", int, 2000)
        self.positive(f"{p}getlogs_max_range", max_range)
        ping_interval = self.get(t, p, "ping_interval", float, 20.0)
        ping_timeout = self.get(t, p, "ping_timeout", float, 20.0)
        stale_after = self.get(t, p, "stale_after", float, None)
        self.positive(f"{p}ping_interval", ping_interval)
        self.positive(f"{p}ping_timeout", ping_timeout)
        if stale_after is not None:
            self.positive(f"{p}stale_after", stale_after)
        return ChainSettings(
            name, chain_id, providers, confirmations, mode, max_range, ping_interval,
            ping_timeout, stale_after,
        )  # fmt: skip

    def chain_ref(self, t: dict[str, Any], p: str, chains: list[str]) -> str:
        if "chain" not in t and len(chains) == 1:
            return chains[0]
        chain = self.get(t, p, "chain", str)
        if chain not in chains:
            raise self.fail(f"{p}chain", f"unknown chain {chain!r} (known: {', '.join(chains)})")
        return chain  # type: ignore[no-any-return]

    def from_block(self, t: dict[str, Any], p: str) -> int | None:
        value = self.get(t, p, "from_block", int, None)
        if value is not None:
            self.positive(f"{p}from_block", value, zero=True)
        return value  # type: ignore[no-any-return]

    def contract(self, t: dict[str, Any], p: str, chains: list[str]) -> ContractSettings:
        from chainwatch.core.abi import load_abi_file

        self.check_keys(t, p, {"name", "chain", "address", "abi", "events", "from_block"})
        name = self.get(t, p, "name", str)
        if not name or "/" in name:
            raise self.fail(f"{p}name", "must be non-empty, without '/'")
        chain = self.chain_ref(t, p, chains)
        address = self.address(f"{p}address", self.get(t, p, "address", str))
        abi_path = self.base / self.get(t, p, "abi", str)
        if not abi_path.is_file():
            raise self.fail(f"{p}abi", f"ABI file not found: {abi_path}")
        try:
            abi_events = load_abi_file(abi_path)
        except AbiError as exc:
            raise self.fail(f"{p}abi", str(exc)) from None
        events = self.strings(t, p, "events", None)
        if events == ():
            raise self.fail(f"{p}events", "at least one event (leave it out to watch them all)")
        if events is not None:
            known = {e.name for e in abi_events}
            for i, ev in enumerate(events):
                if ev not in known:
                    raise self.fail(f"{p}events[{i}]", f"no event {ev!r} in {abi_path.name}")
        elif not abi_events:
            raise self.fail(f"{p}abi", f"{abi_path.name} has no events")
        return ContractSettings(name, chain, address, abi_path, events, self.from_block(t, p))

    def wallet(self, t: dict[str, Any], p: str, chains: list[str]) -> WalletSettings:
        self.check_keys(t, p, {"chain", "addresses", "standards", "from_block"})
        chain = self.chain_ref(t, p, chains)
        addresses = self.strings(t, p, "addresses")
        if not addresses:
            raise self.fail(f"{p}addresses", "at least one address is required")
        checked = tuple(self.address(f"{p}addresses[{i}]", a) for i, a in enumerate(addresses))
        standards = self.strings(t, p, "standards", STANDARDS)
        if not standards:
            raise self.fail(f"{p}standards", f"at least one of {', '.join(STANDARDS)}")
        for i, std in enumerate(standards):
            if std not in STANDARDS:
                raise self.fail(f"{p}standards[{i}]", f"must be one of {', '.join(STANDARDS)}")
        return WalletSettings(chain, checked, standards, self.from_block(t, p))


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             list: "an array", dict: "a table"}  # fmt: skip
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _toml_type(value: Any) -> str:
    return _kind_name((type(value),)).replace("a number", "a float")


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(loader: Any, key: str, value: str | float) -> float:
    """Seconds from a number of seconds or a text like "90s", "30m", "12h", "7d"."""
    if isinstance(value, str):
        text = value.strip()
        unit = _DURATION_UNITS.get(text[-1:])
        try:
            seconds = float(text[:-1]) * unit if unit is not None else float(text)
        except ValueError:
            raise loader.fail(key, f'expected a duration such as "7d", "12h" or "30m", got '
                                   f"{value!r}") from None  # fmt: skip
    else:
        seconds = float(value)
    if not seconds > 0:
        raise loader.fail(key, "must be more than 0 seconds")
    return seconds
