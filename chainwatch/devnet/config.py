"""The chainwatch config of a devnet: one chain, the sample contracts, a wallet watch."""

from __future__ import annotations

import json
import os
from pathlib import Path

from web3 import Web3

from chainwatch.devnet.contracts import SampleContracts, abi_path
from chainwatch.devnet.node import Anvil


def devnet_config_text(
    config_dir: Path,
    *,
    ws_url: str,
    chain_id: int,
    sample: SampleContracts,
    wallet: str,
    storage_url: str,
    server_host: str = "127.0.0.1",
    server_port: int = 8546,
    confirmations: int = 2,
    comment: str = "",
) -> str:
    """A chainwatch config (TOML) for a devnet: one chain, the sample contracts from the block
    each was deployed in, and a wallet watch on ``wallet`` for all three token standards.

    ABI paths are written relative to ``config_dir``, where the file will be.
    """
    base = config_dir.resolve()
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    lines += [
        "[storage]",
        f"url = {_toml_str(storage_url)}",
        "",
        "[server]",
        f"host = {_toml_str(server_host)}",
        f"port = {server_port}",
        "",
        "[[chains]]",
        'name = "devnet"',
        f"chain_id = {chain_id}",
        f"providers = [{_toml_str(ws_url)}]",
        f"confirmations = {confirmations}",
    ]
    for label, deployed, abi in sample.watched():
        relative = Path(os.path.relpath(abi_path(abi).resolve(), base)).as_posix()
        lines += [
            "",
            "[[contracts]]",
            f"name = {_toml_str(label)}",
            'chain = "devnet"',
            f"address = {_toml_str(deployed.address)}",
            f"abi = {_toml_str(relative)}",
            f"from_block = {deployed.block_number}",
        ]
    lines += [
        "",
        "[[wallets]]",
        'chain = "devnet"',
        f"addresses = [{_toml_str(Web3.to_checksum_address(wallet))}]",
        'standards = ["erc20", "erc721", "erc1155"]',
    ]
    return "\n".join(lines) + "\n"


def write_devnet_config(
    path: str | os.PathLike[str],
    anvil: Anvil,
    sample: SampleContracts,
    storage_url: str,
    *,
    server_host: str = "127.0.0.1",
    server_port: int = 8546,
    confirmations: int = 2,
) -> Path:
    """Write the config of :func:`devnet_config_text` for ``anvil`` (its websocket URL and chain
    id; the wallet watched is its account 1) to ``path``; returns the path."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    text = devnet_config_text(
        file.parent,
        ws_url=anvil.ws_url,
        chain_id=anvil.chain_id,
        sample=sample,
        wallet=anvil.accounts[1],
        storage_url=storage_url,
        server_host=server_host,
        server_port=server_port,
        confirmations=confirmations,
        comment=f"Written by chainwatch.devnet for the anvil at {anvil.ws_url}.",
    )
    file.write_text(text, encoding="utf-8")
    return file


def _toml_str(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes; json.dumps emits no "\/").
    return json.dumps(value, ensure_ascii=False)


EXAMPLE_COMMENT = """\
Example config for a local anvil on its default port 8545 (`npx anvil`), on which
chainwatch.devnet.deploy_sample() ran first. The addresses are the ones deploy_sample() gives
on a fresh anvil with the default mnemonic: a contract's address depends only on its deployer
and the deployer's nonce. Regenerate with `python -m chainwatch.devnet`."""
