"""The TOML config: a valid file becomes Settings; every mistake names the file and the key."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainwatch.config import (
    ChainSettings,
    ContractSettings,
    ServerSettings,
    Settings,
    StorageSettings,
    WalletSettings,
    load_settings,
    redact_url,
    resolve_config_path,
)
from chainwatch.errors import ChainwatchError, ConfigError

TRANSFER_ABI = [
    {
        "type": "event",
        "name": "Transfer",
        "anonymous": False,
        "inputs": [
            {"name": "from", "type": "address", "indexed": True},
            {"name": "to", "type": "address", "indexed": True},
            {"name": "value", "type": "uint256", "indexed": False},
        ],
    },
    {
        "type": "function",
        "name": "transfer",
        "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
        "stateMutability": "nonpayable",
    },
]
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
VITALIK = "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045"

CHAIN = """
[[chains]]
name = "mainnet"
chain_id = 1
providers = ["wss://eth.example.com/v2/SECRETKEY"]
"""
CONTRACT = f"""
[[contracts]]
name = "USDC"
address = "{USDC}"
abi = "abi/token.json"
"""


def write_config(folder: Path, text: str) -> Path:
    """A config file in ``folder/config`` with the Transfer ABI at ``config/abi/token.json``."""
    (folder / "config" / "abi").mkdir(parents=True, exist_ok=True)
    (folder / "config" / "abi" / "token.json").write_text(json.dumps(TRANSFER_ABI))
    path = folder / "config" / "chainwatch.toml"
    path.write_text(text)
    return path


def config_error(folder: Path, text: str) -> ConfigError:
    path = write_config(folder, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}: {info.value.key}: ")
    return info.value


# --- a valid config --------------------------------------------------------------------------


def test_full_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETH_KEY", "SECRETKEY")
    monkeypatch.setenv("CW_TOKEN", "t0ken")
    config = tmp_path / "config"
    (config / "tls").mkdir(parents=True)
    (config / "tls" / "cert.pem").write_text("cert")
    (config / "tls" / "key.pem").write_text("key")
    (config / "tokens.txt").write_text("\nfrom-file\n  second  \n\n")
    path = write_config(
        tmp_path,
        f"""
[storage]
url = "sqlite:///data/chainwatch.db"

[server]
host = "0.0.0.0"
port = 9000
tls_cert = "tls/cert.pem"
tls_key = "tls/key.pem"
tokens = ["${{CW_TOKEN}}"]
tokens_file = "tokens.txt"
allowed_origins = ["https://dashboard.example.org"]
max_message_size = 1024
max_subscriptions = 5
max_requests_per_second = 10
max_connections_per_ip = 3
max_queue_messages = 100
max_queue_bytes = 4096
compression = true

[[chains]]
name = "mainnet"
chain_id = 1
providers = ["wss://eth.example.com/v2/${{ETH_KEY}}", "ws://127.0.0.1:8546"]
confirmations = 12
mode = "failover"
getlogs_max_range = 500
ping_interval = 5
ping_timeout = 2.5
stale_after = 60

[[chains]]
name = "base"
chain_id = 8453
providers = ["wss://base.example.com"]

[[contracts]]
name = "USDC"
chain = "mainnet"
address = "{USDC}"
abi = "abi/token.json"
events = ["Transfer"]
from_block = 0

[[contracts]]
name = "Lower"
chain = "base"
address = "{USDC.lower()}"
abi = "abi/token.json"

[[wallets]]
chain = "mainnet"
addresses = ["{VITALIK}", "{"0x" + "AB" * 20}"]
standards = ["erc20", "erc1155"]
from_block = 21000000

[[wallets]]
chain = "base"
addresses = ["{VITALIK.lower()}"]
""",
    )
    abi = config / "abi" / "token.json"
    mainnet = ChainSettings(
        name="mainnet",
        chain_id=1,
        providers=("wss://eth.example.com/v2/SECRETKEY", "ws://127.0.0.1:8546"),
        confirmations=12,
        mode="failover",
        getlogs_max_range=500,
        ping_interval=5.0,
        ping_timeout=2.5,
        stale_after=60.0,
    )
    base = ChainSettings("base", 8453, ("wss://base.example.com",))
    usdc = ContractSettings("USDC", "mainnet", USDC, abi, ("Transfer",), 0)
    lower = ContractSettings("Lower", "base", USDC, abi)  # checksummed
    settings = load_settings(path)
    assert settings == Settings(
        path=path,
        storage=StorageSettings(f"sqlite:///{config / 'data' / 'chainwatch.db'}"),
        server=ServerSettings(
            host="0.0.0.0",
            port=9000,
            tls_cert=config / "tls" / "cert.pem",
            tls_key=config / "tls" / "key.pem",
            tokens=("t0ken", "from-file", "second"),
            allowed_origins=("https://dashboard.example.org",),
            max_message_size=1024,
            max_subscriptions=5,
            max_requests_per_second=10.0,
            max_connections_per_ip=3,
            max_queue_messages=100,
            max_queue_bytes=4096,
            compression=True,
        ),
        chains=(mainnet, base),
        contracts=(usdc, lower),
        wallets=(
            WalletSettings(
                "mainnet",
                (VITALIK, "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"),
                ("erc20", "erc1155"),
                21000000,
            ),
            WalletSettings("base", (VITALIK,)),
        ),
    )
    assert isinstance(settings.server.max_requests_per_second, float)
    assert settings.chain("base") is settings.chains[1]
    assert settings.contracts_of("base") == (lower,)
    assert settings.wallets_of("mainnet") == settings.wallets[:1]
    with pytest.raises(KeyError):
        settings.chain("goerli")


def test_minimal_config_takes_the_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, CHAIN + CONTRACT + f'[[wallets]]\naddresses = ["{VITALIK}"]\n')
    settings = load_settings(path)
    # The one chain is the default chain of contracts and wallets.
    assert settings.contracts == (
        ContractSettings("USDC", "mainnet", USDC, tmp_path / "config" / "abi" / "token.json"),
    )
    assert settings.wallets == (WalletSettings("mainnet", (VITALIK,)),)
    assert settings.server == ServerSettings()
    assert settings.chains[0].confirmations == 2
    assert settings.chains[0].stale_after is None
    assert settings.storage.url == f"sqlite:///{tmp_path / 'config' / 'chainwatch.db'}"


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("sqlite:///cw.db", "sqlite:///{base}/cw.db"),
        ("sqlite:///data/cw.db", "sqlite:///{base}/data/cw.db"),
        ("sqlite+pysqlite:///cw.db", "sqlite+pysqlite:///{base}/cw.db"),
        ("sqlite:////var/lib/cw.db", "sqlite:////var/lib/cw.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        (
            "postgresql+psycopg://cw@db.internal:5432/cw",
            "postgresql+psycopg://cw@db.internal:5432/cw",
        ),
    ],
)
def test_relative_sqlite_paths_resolve_against_the_config_folder(
    tmp_path: Path, url: str, resolved: str
) -> None:
    path = write_config(tmp_path, f'[storage]\nurl = "{url}"\n' + CHAIN)
    assert load_settings(path).storage.url == resolved.format(base=tmp_path / "config")


def test_environment_variables_expand_in_every_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "hunter2")
    monkeypatch.setenv("CHAIN", "main")
    monkeypatch.setenv("EMPTY", "")
    path = write_config(
        tmp_path,
        '[storage]\nurl = "postgresql+psycopg://cw:${PGPASSWORD}@db/cw${EMPTY}"\n'
        + CHAIN.replace('"mainnet"', '"${CHAIN}net"')
        + '[[wallets]]\naddresses = ["${ADDR}"]\n'.replace("${ADDR}", VITALIK),
    )
    settings = load_settings(path)
    assert settings.storage.url == "postgresql+psycopg://cw:hunter2@db/cw"
    assert settings.chains[0].name == "mainnet"
    # $NAME without braces stays as it is.
    path = write_config(tmp_path, CHAIN.replace('"mainnet"', '"$CHAIN"'))
    with pytest.raises(ConfigError, match=r"chains\[0\]\.name: use letters"):
        load_settings(path)


# --- every mistake names the file and the key ------------------------------------------------

ERRORS = [
    # file-level
    ("no chains", "", "chains", "at least one [[chains]] table is required"),
    ("unknown top key", "foo = 1\n" + CHAIN, "foo", "unknown key"),
    ("storage not a table", 'storage = "x"\n' + CHAIN, "storage", "expected a [storage] table"),
    ("chains not tables", "chains = 1\n", "chains", "expected [[chains]] tables"),
    (
        "contracts not tables",
        'contracts = ["x"]\n' + CHAIN,
        "contracts",
        "expected [[contracts]] tables",
    ),
    # missing required keys
    ("chain name", CHAIN.replace('name = "mainnet"\n', ""), "chains[0].name", "missing"),
    ("chain id", CHAIN.replace("chain_id = 1\n", ""), "chains[0].chain_id", "missing"),
    (
        "providers",
        CHAIN.replace('providers = ["wss://eth.example.com/v2/SECRETKEY"]\n', ""),
        "chains[0].providers",
        "missing",
    ),
    (
        "contract address",
        CHAIN + CONTRACT.replace(f'address = "{USDC}"\n', ""),
        "contracts[0].address",
        "missing",
    ),
    (
        "contract abi",
        CHAIN + CONTRACT.replace('abi = "abi/token.json"\n', ""),
        "contracts[0].abi",
        "missing",
    ),
    (
        "contract name",
        CHAIN + CONTRACT.replace('name = "USDC"\n', ""),
        "contracts[0].name",
        "missing",
    ),
    (
        "contract chain, two chains",
        CHAIN + CHAIN.replace("mainnet", "base").replace("= 1", "= 8453") + CONTRACT,
        "contracts[0].chain",
        "missing",
    ),
    (
        "wallet addresses",
        CHAIN + "[[wallets]]\nchain = 'mainnet'\n",
        "wallets[0].addresses",
        "missing",
    ),
    # wrong types
    (
        "id a string",
        CHAIN.replace("chain_id = 1", 'chain_id = "1"'),
        "chains[0].chain_id",
        "expected an integer, got a string",
    ),
    (
        "id a boolean",
        CHAIN.replace("chain_id = 1", "chain_id = true"),
        "chains[0].chain_id",
        "expected an integer, got a boolean",
    ),
    (
        "id a float",
        CHAIN.replace("chain_id = 1", "chain_id = 1.0"),
        "chains[0].chain_id",
        "expected an integer, got a float",
    ),
    (
        "providers a string",
        CHAIN.replace('["wss://eth.example.com/v2/SECRETKEY"]', '"wss://eth.example.com"'),
        "chains[0].providers",
        "expected an array, got a string",
    ),
    (
        "provider an integer",
        CHAIN.replace('["wss://eth.example.com/v2/SECRETKEY"]', '["wss://eth.example.com", 1]'),
        "chains[0].providers[1]",
        "expected a string, got an integer",
    ),
    (
        "ping a string",
        CHAIN + 'ping_interval = "20"\n',
        "chains[0].ping_interval",
        "expected a number, got a string",
    ),
    (
        "port a string",
        '[server]\nport = "8546"\n' + CHAIN,
        "server.port",
        "expected an integer, got a string",
    ),
    (
        "compression an int",
        "[server]\ncompression = 1\n" + CHAIN,
        "server.compression",
        "expected a boolean, got an integer",
    ),
    (
        "tokens a table",
        "[server]\ntokens = {a = 1}\n" + CHAIN,
        "server.tokens",
        "expected an array, got a table",
    ),
    (
        "events a string",
        CHAIN + CONTRACT + 'events = "Transfer"\n',
        "contracts[0].events",
        "expected an array, got a string",
    ),
    (
        "from_block a date",
        CHAIN + CONTRACT + "from_block = 2024-01-01\n",
        "contracts[0].from_block",
        "expected an integer, got date",
    ),
    # unknown keys
    ("server key", '[server]\nhots = "x"\n' + CHAIN, "server.hots", "unknown key"),
    ("storage key", '[storage]\npath = "x"\n' + CHAIN, "storage.path", "unknown key"),
    ("chain key", CHAIN + 'provider = "wss://x"\n', "chains[0].provider", "unknown key"),
    (
        "contract key",
        CHAIN + CONTRACT + 'event = "Transfer"\n',
        "contracts[0].event",
        "unknown key",
    ),
    (
        "wallet key",
        CHAIN + f'[[wallets]]\naddress = "{VITALIK}"\n',
        "wallets[0].address",
        "unknown key",
    ),
    # addresses
    (
        "short address",
        CHAIN + CONTRACT.replace(USDC, USDC[:-2]),
        "contracts[0].address",
        "not a 20-byte hex address",
    ),
    (
        "no 0x",
        CHAIN + CONTRACT.replace(USDC, USDC[2:] + "00"),
        "contracts[0].address",
        "not a 20-byte hex address",
    ),
    (
        "not hex",
        CHAIN + CONTRACT.replace(USDC, "0x" + "g" * 40),
        "contracts[0].address",
        "not a 20-byte hex address",
    ),
    (
        "bad checksum",
        CHAIN + CONTRACT.replace(USDC, USDC.replace("A0b", "a0B")),
        "contracts[0].address",
        "bad EIP-55 checksum (use all lowercase to skip the check)",
    ),
    (
        "wallet address",
        CHAIN + f'[[wallets]]\naddresses = ["{VITALIK}", "0x1234"]\n',
        "wallets[0].addresses[1]",
        "not a 20-byte hex address",
    ),
    (
        "no wallet address",
        CHAIN + "[[wallets]]\naddresses = []\n",
        "wallets[0].addresses",
        "at least one address is required",
    ),
    (
        "same address twice on a chain",
        CHAIN + CONTRACT + CONTRACT.replace('"USDC"', '"USDC2"').replace(USDC, USDC.lower()),
        "contracts[1].address",
        "already watched as 'USDC' on chain 'mainnet'",
    ),
    # ABI and events
    (
        "event not in ABI",
        CHAIN + CONTRACT + 'events = ["Transfer", "Approval"]\n',
        "contracts[0].events[1]",
        "no event 'Approval' in token.json",
    ),
    (
        "no events",
        CHAIN + CONTRACT + "events = []\n",
        "contracts[0].events",
        "at least one event (leave it out to watch them all)",
    ),
    (
        "event not a string",
        CHAIN + CONTRACT + "events = [1]\n",
        "contracts[0].events[0]",
        "expected a string, got an integer",
    ),
    # references and duplicates
    (
        "unknown chain",
        CHAIN + CONTRACT + 'chain = "goerli"\n',
        "contracts[0].chain",
        "unknown chain 'goerli' (known: mainnet)",
    ),
    (
        "wallet unknown chain",
        CHAIN + f'[[wallets]]\nchain = "base"\naddresses = ["{VITALIK}"]\n',
        "wallets[0].chain",
        "unknown chain 'base' (known: mainnet)",
    ),
    (
        "duplicate chain",
        CHAIN + CHAIN.replace("= 1", "= 5"),
        "chains[1].name",
        "duplicate chain name 'mainnet'",
    ),
    (
        "duplicate chain id",
        CHAIN + CHAIN.replace("mainnet", "mainnet2"),
        "chains[1].chain_id",
        "chain id 1 is also chains[0]",
    ),
    (
        "duplicate contract",
        CHAIN + CONTRACT + CONTRACT.replace(USDC, VITALIK),
        "contracts[1].name",
        "duplicate contract name 'USDC'",
    ),
    # values
    (
        "chain name chars",
        CHAIN.replace('"mainnet"', '"main net"'),
        "chains[0].name",
        "use letters, digits, '_', '-' or '.' only",
    ),
    (
        "contract name slash",
        CHAIN + CONTRACT.replace('"USDC"', '"a/b"'),
        "contracts[0].name",
        "must be non-empty, without '/'",
    ),
    (
        "no providers",
        CHAIN.replace('["wss://eth.example.com/v2/SECRETKEY"]', "[]"),
        "chains[0].providers",
        "at least one provider URL is required",
    ),
    (
        "https provider",
        CHAIN.replace(
            "wss://eth.example.com/v2/SECRETKEY", "https://eth.example.com/v2/SECRETKEY?x=1"
        ),
        "chains[0].providers[0]",
        "not a ws:// or wss:// URL: https://eth.example.com/***",
    ),
    (
        "provider without scheme",
        CHAIN.replace("wss://", ""),
        "chains[0].providers[0]",
        "not a ws:// or wss:// URL: :///***",
    ),
    ("mode", CHAIN + 'mode = "fastest"\n', "chains[0].mode", "must be one of race, failover"),
    (
        "standards",
        CHAIN + f'[[wallets]]\naddresses = ["{VITALIK}"]\nstandards = ["erc777"]\n',
        "wallets[0].standards[0]",
        "must be one of erc20, erc721, erc1155",
    ),
    (
        "no standards",
        CHAIN + f'[[wallets]]\naddresses = ["{VITALIK}"]\nstandards = []\n',
        "wallets[0].standards",
        "at least one of erc20, erc721, erc1155",
    ),
    (
        "storage url",
        '[storage]\nurl = "chainwatch.db"\n' + CHAIN,
        "storage.url",
        "not a database URL (e.g. sqlite:///chainwatch.db)",
    ),
    (
        "token with space",
        '[server]\ntokens = ["a b"]\n' + CHAIN,
        "server.tokens[0]",
        "a token must be non-empty without spaces",
    ),
    (
        "empty token",
        '[server]\ntokens = ["ok", ""]\n' + CHAIN,
        "server.tokens[1]",
        "a token must be non-empty without spaces",
    ),
    # numbers
    ("port", "[server]\nport = 70000\n" + CHAIN, "server.port", "must be between 0 and 65535"),
    (
        "chain id zero",
        CHAIN.replace("chain_id = 1", "chain_id = 0"),
        "chains[0].chain_id",
        "must be greater than zero",
    ),
    (
        "confirmations",
        CHAIN + "confirmations = -1\n",
        "chains[0].confirmations",
        "must be greater than zero",
    ),
    (
        "max range",
        CHAIN + "getlogs_max_range = 0\n",
        "chains[0].getlogs_max_range",
        "must be greater than zero",
    ),
    (
        "ping interval",
        CHAIN + "ping_interval = 0.0\n",
        "chains[0].ping_interval",
        "must be greater than zero",
    ),
    (
        "ping timeout",
        CHAIN + "ping_timeout = -1\n",
        "chains[0].ping_timeout",
        "must be greater than zero",
    ),
    (
        "stale after",
        CHAIN + "stale_after = 0\n",
        "chains[0].stale_after",
        "must be greater than zero",
    ),
    (
        "subscriptions",
        "[server]\nmax_subscriptions = 0\n" + CHAIN,
        "server.max_subscriptions",
        "must be greater than zero",
    ),
    (
        "queue bytes",
        "[server]\nmax_queue_bytes = -5\n" + CHAIN,
        "server.max_queue_bytes",
        "must be greater than zero",
    ),
    (
        "rate",
        "[server]\nmax_requests_per_second = 0\n" + CHAIN,
        "server.max_requests_per_second",
        "must be greater than zero",
    ),
    (
        "from block",
        CHAIN + CONTRACT + "from_block = -1\n",
        "contracts[0].from_block",
        "must be zero or more",
    ),
    (
        "wallet from block",
        CHAIN + f'[[wallets]]\naddresses = ["{VITALIK}"]\nfrom_block = -1\n',
        "wallets[0].from_block",
        "must be zero or more",
    ),
    # TLS
    (
        "cert without key",
        '[server]\ntls_cert = "cert.pem"\n' + CHAIN,
        "server.tls_key",
        "tls_cert and tls_key go together",
    ),
    (
        "key without cert",
        '[server]\ntls_key = "key.pem"\n' + CHAIN,
        "server.tls_cert",
        "tls_cert and tls_key go together",
    ),
    # environment
    (
        "missing variable",
        CHAIN.replace("SECRETKEY", "${CHAINWATCH_TEST_UNSET}"),
        "chains[0].providers[0]",
        "environment variable CHAINWATCH_TEST_UNSET is not set",
    ),
    (
        "missing variable in a string",
        '[storage]\nurl = "${CHAINWATCH_TEST_UNSET}"\n' + CHAIN,
        "storage.url",
        "environment variable CHAINWATCH_TEST_UNSET is not set",
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "problem"), [row[1:] for row in ERRORS], ids=[row[0] for row in ERRORS]
)
def test_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str, problem: str
) -> None:
    monkeypatch.delenv("CHAINWATCH_TEST_UNSET", raising=False)
    error = config_error(tmp_path, text)
    assert (error.key, error.problem) == (key, problem)
    assert isinstance(error, ChainwatchError)
    assert isinstance(error, ValueError)
    assert "SECRETKEY" not in str(error)


def test_message_form_of_the_issue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contracts = CONTRACT + CONTRACT.replace('"USDC"', '"B"').replace(USDC, VITALIK)
    write_config(
        tmp_path, CHAIN + contracts + CONTRACT.replace('"USDC"', '"C"').replace(USDC, "0x12")
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings("config/chainwatch.toml")
    assert str(info.value) == (
        "config/chainwatch.toml: contracts[2].address: not a 20-byte hex address"
    )


def test_missing_abi_file_names_the_key(tmp_path: Path) -> None:
    error = config_error(tmp_path, CHAIN + CONTRACT.replace("token.json", "missing.json"))
    assert error.key == "contracts[0].abi"
    assert error.problem == f"ABI file not found: {tmp_path / 'config' / 'abi' / 'missing.json'}"


@pytest.mark.parametrize(
    ("abi", "problem"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps([TRANSFER_ABI[1]]), "has no events"),
    ],
)
def test_unusable_abi_names_the_key(tmp_path: Path, abi: str, problem: str) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "bad.json").write_text(abi)
    error = config_error(tmp_path, CHAIN + CONTRACT.replace("abi/token.json", "bad.json"))
    assert error.key == "contracts[0].abi"
    assert problem in error.problem


def test_tls_files_must_exist(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[server]\ntls_cert = "c.pem"\ntls_key = "k.pem"\n' + CHAIN)
    assert error.key == "server.tls_cert"
    assert error.problem == f"file not found: {tmp_path / 'config' / 'c.pem'}"


def test_tokens_file_must_be_text(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "tokens.txt").write_bytes(b"\xff\xfe\xfa")
    error = config_error(tmp_path, '[server]\ntokens_file = "tokens.txt"\n' + CHAIN)
    assert (error.key, error.problem) == ("server.tokens_file", "cannot read: not UTF-8 text")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('[[chains]]\nname = "x\n', "not valid TOML: "),
        ("chains = [\n", "not valid TOML: "),
        ("a = 1\na = 2\n", "not valid TOML: "),
    ],
)
def test_invalid_toml_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    path = write_config(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert (info.value.file, info.value.key) == (str(path), "")
    assert str(info.value).startswith(f"{path}: {problem}")


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found$"):
        load_settings(missing)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(binary)
    assert str(info.value) == f"{binary}: cannot read: not UTF-8 text"
    with pytest.raises(ConfigError, match="cannot read: "):
        load_settings(tmp_path)


def test_provider_secrets_from_the_environment_stay_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "ETH_URL", "https://user:SECRETKEY@eth.example.com:8443/v3/SECRETKEY?k=SECRETKEY"
    )
    error = config_error(
        tmp_path, CHAIN.replace("wss://eth.example.com/v2/SECRETKEY", "${ETH_URL}")
    )
    assert error.problem == "not a ws:// or wss:// URL: https://eth.example.com:8443/***"
    assert "SECRETKEY" not in str(error)


# --- URL redaction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("wss://eth.example.com/v2/SECRETKEY?x=1", "wss://eth.example.com/***"),
        ("wss://eth.example.com", "wss://eth.example.com"),
        ("wss://eth.example.com/", "wss://eth.example.com"),
        ("ws://127.0.0.1:8545", "ws://127.0.0.1:8545"),
        ("wss://eth.example.com:443/ws/SECRETKEY", "wss://eth.example.com:443/***"),
        ("wss://eth.example.com?apikey=SECRETKEY", "wss://eth.example.com/***"),
        ("wss://user:SECRETKEY@eth.example.com", "wss://eth.example.com/***"),
        ("ws://[::1]:8546/SECRETKEY", "ws://[::1]:8546/***"),
        ("WSS://ETH.Example.COM/SECRETKEY", "wss://eth.example.com/***"),
        ("wss://eth.example.com:SECRETKEY/x", "<invalid url>"),
        ("wss://[::1/SECRETKEY", "<invalid url>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


secrets = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40)


@given(
    scheme=st.sampled_from(["ws", "wss", "http", "https"]),
    host=st.sampled_from(["eth.example.com", "127.0.0.1", "[2001:db8::1]", "node"]),
    port=st.sampled_from(["", ":8546"]),
    form=st.sampled_from(["/v2/{s}", "/{s}/ws", "?key={s}", "/x?a=1&key={s}", "/x#{s}"]),
    secret=secrets,
)
def test_redact_url_never_shows_path_or_query(
    scheme: str, host: str, port: str, form: str, secret: str
) -> None:
    shown = redact_url(f"{scheme}://{host}{port}{form.format(s=secret)}")
    assert secret not in shown
    assert shown == f"{scheme}://{host.lower()}{port}/***"


# --- where the config is -----------------------------------------------------------------------


def test_resolve_config_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAINWATCH_CONFIG", raising=False)
    assert resolve_config_path(None) == Path("config/chainwatch.toml")
    monkeypatch.setenv("CHAINWATCH_CONFIG", "/etc/chainwatch.toml")
    assert resolve_config_path(None) == Path("/etc/chainwatch.toml")
    assert resolve_config_path("other.toml") == Path("other.toml")
    monkeypatch.setenv("CHAINWATCH_CONFIG", "")
    assert resolve_config_path(None) == Path("config/chainwatch.toml")


# --- the configs the project ships -------------------------------------------------------------

PROJECT = Path(__file__).resolve().parent.parent


def test_documented_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETH_WS_URL", "wss://eth.example.com/v2/SECRETKEY")
    settings = load_settings(PROJECT / "config" / "chainwatch.toml")
    assert [c.name for c in settings.chains] == ["mainnet"]
    assert settings.chains[0].providers == ("wss://eth.example.com/v2/SECRETKEY",)
    assert [c.name for c in settings.contracts] == ["USDC", "WETH", "USDC-WETH-V2"]
    assert settings.contracts[2].events == ("Swap", "Sync")
    assert settings.wallets[0].addresses == (VITALIK,)


def test_devnet_config_loads() -> None:
    settings = load_settings(PROJECT / "config" / "devnet.toml")
    assert settings.chains
    assert all(c.abi.is_file() for c in settings.contracts)
