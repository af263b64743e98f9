"""What the server knows of the watched contracts, read once from the settings at start.

Filters need each watched event's argument types (:class:`chainwatch.core.filters.Catalog`);
``chainwatch_contracts`` reports what is watched, per chain. Wallet watches add the token
standards they follow, under the contract names the decoder gives their events (``ERC20``,
``ERC721``, ``ERC1155``), with no address: they apply to any token contract.
"""

from __future__ import annotations

from collections.abc import Iterable

from chainwatch.config import Settings
from chainwatch.core.abi import AbiEvent, arg_key, is_hashed_when_indexed, load_abi_file, parse_abi
from chainwatch.core.filters import Catalog, ContractSchema, EventSchema, Kind, arg_kind
from chainwatch.core.model import JSON
from chainwatch.core.standards import CONTRACT_NAMES, STANDARD_ABIS

__all__ = ["build_catalogs", "contracts_json"]


def _events(abi: Iterable[AbiEvent], selected: tuple[str, ...] | None) -> tuple[EventSchema, ...]:
    out = []
    for event in abi:
        if selected is not None and event.name not in selected:
            continue
        args: dict[str, Kind] = {}
        for i, param in enumerate(event.inputs):
            hashed = param.indexed and is_hashed_when_indexed(param)
            args[arg_key(param, i)] = arg_kind(param.type, hashed)
        out.append(EventSchema(event.name, args))
    return tuple(out)


def build_catalogs(settings: Settings) -> dict[int, Catalog]:
    """One Catalog per configured chain, in the order of the config. Raises AbiError if an
    ABI file cannot be read (the config loader has checked them already)."""
    catalogs: dict[int, Catalog] = {}
    for chain in settings.chains:
        contracts = [
            ContractSchema(c.name, c.address.lower(), _events(load_abi_file(c.abi), c.events))
            for c in settings.contracts_of(chain.name)
        ]
        standards: list[str] = []
        for wallet in settings.wallets_of(chain.name):
            standards += [s for s in wallet.standards if s not in standards]
        for standard in standards:
            name = CONTRACT_NAMES[standard]  # type: ignore[index]
            abi = parse_abi(STANDARD_ABIS[standard], source=name)  # type: ignore[index]
            contracts.append(ContractSchema(name, None, _events(abi, None)))
        catalogs[chain.chain_id] = Catalog(chain.chain_id, chain.name, tuple(contracts))
    return catalogs


def contracts_json(settings: Settings, catalogs: dict[int, Catalog]) -> JSON:
    """The result of ``chainwatch_contracts``: per chain, its contracts and wallet watches."""
    out = []
    for chain in settings.chains:
        catalog = catalogs[chain.chain_id]
        by_name = {c.name: c for c in catalog.contracts}
        out.append(
            {
                "chain": chain.name,
                "chain_id": chain.chain_id,
                "confirmations": chain.confirmations,
                "contracts": [
                    {
                        "name": c.name,
                        "address": c.address,
                        "events": [e.name for e in by_name[c.name].events],
                    }
                    for c in settings.contracts_of(chain.name)
                ],
                "wallets": [
                    {"addresses": list(w.addresses), "standards": list(w.standards)}
                    for w in settings.wallets_of(chain.name)
                ],
            }
        )
    return out
