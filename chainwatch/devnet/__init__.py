"""A local chain for the demo, the tests and the benchmarks: anvil, the test contracts, traffic.

Synchronous and simple on purpose: this package drives a node (web3.py over HTTP), it is not part
of the daemon's data path. One module per job:

- ``node``: :func:`find_anvil` and :class:`Anvil` start an anvil node on a free loopback port.
- ``contracts``: :func:`deploy` and :func:`deploy_sample` deploy the contracts built from
  ``contracts/src`` by ``make contracts`` (``contracts/build/<Name>.json``).
- ``traffic``: :class:`Traffic` sends seeded random transactions to the sample contracts. Every
  transaction it sends emits exactly one log, so ``n`` transactions make ``n`` logs.
- ``config``: :func:`write_devnet_config` writes a chainwatch config that watches the sample
  contracts.

On a fresh anvil (default mnemonic), :func:`deploy_sample` run first always yields the same
addresses, because a contract's address depends only on its deployer and the deployer's nonce;
``config/devnet.toml`` lists them (regenerate it with ``python -m chainwatch.devnet``).

Its users are the tests, the benchmarks and ``chainwatch dev``: the names below are its API even
where only tests call them (:func:`deploy`, :meth:`Anvil.mine`, :meth:`Anvil.reorg`,
:meth:`Anvil.kill`, :meth:`Anvil.restart`, :meth:`Traffic.forget_streams`).
"""

from chainwatch.devnet.config import EXAMPLE_COMMENT, devnet_config_text, write_devnet_config
from chainwatch.devnet.contracts import (
    Deployed,
    SampleContracts,
    abi_path,
    contracts_dir,
    deploy,
    deploy_sample,
    load_artifact,
    wait_for_receipt,
    wait_mined,
)
from chainwatch.devnet.node import DEFAULT_CHAIN_ID, SOURCE_ROOT, Anvil, find_anvil
from chainwatch.devnet.traffic import Traffic

__all__ = [
    "DEFAULT_CHAIN_ID",
    "EXAMPLE_COMMENT",
    "SOURCE_ROOT",
    "Anvil",
    "Deployed",
    "SampleContracts",
    "Traffic",
    "abi_path",
    "contracts_dir",
    "deploy",
    "deploy_sample",
    "devnet_config_text",
    "find_anvil",
    "load_artifact",
    "wait_for_receipt",
    "wait_mined",
    "write_devnet_config",
]
