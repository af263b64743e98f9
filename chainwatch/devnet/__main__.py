"""``python -m chainwatch.devnet``: regenerate ``config/devnet.toml`` from a fresh anvil."""

from __future__ import annotations

from pathlib import Path

from chainwatch.devnet.config import EXAMPLE_COMMENT, devnet_config_text
from chainwatch.devnet.contracts import deploy_sample
from chainwatch.devnet.node import SOURCE_ROOT, Anvil


def write_example(path: Path) -> None:
    """Write the example config for an anvil on its default port to ``path``."""
    with Anvil() as node:
        sample = deploy_sample(node.w3)
        text = devnet_config_text(
            path.parent,
            ws_url="ws://127.0.0.1:8545",
            chain_id=node.chain_id,
            sample=sample,
            wallet=node.accounts[1],
            storage_url="sqlite:///devnet.db",
            comment=EXAMPLE_COMMENT,
        )
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write_example(SOURCE_ROOT / "config" / "devnet.toml")
