"""Fixtures for the whole suite: a local anvil chain and the sample contracts on it.

``anvil`` and ``sample_contracts`` are shared by the session: a test may send transactions to
them but must not rewind the chain (reorg, revert, restart, kill); such a test takes
``fresh_anvil``, a node of its own. Fixtures of one part of the suite live in that folder's own
conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from chainwatch.devnet import Anvil, SampleContracts


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    """One automining anvil for the session."""
    # Imported here so that tests that need no chain do not pay for importing web3.
    from chainwatch.devnet import Anvil

    with Anvil() as node:
        yield node


@pytest.fixture
def fresh_anvil() -> Iterator[Anvil]:
    """An automining anvil for this test alone (reorg it, kill it, restart it)."""
    from chainwatch.devnet import Anvil

    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def sample_contracts(anvil: Anvil) -> SampleContracts:
    """The sample contracts (TST, USDC, TestNFT, TestMultiToken, EventZoo) on ``anvil``."""
    from chainwatch.devnet import deploy_sample

    return deploy_sample(anvil.w3)
