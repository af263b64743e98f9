"""Made-up but well-formed events for the store tests."""

from __future__ import annotations

from chainwatch.core.model import JSON, Checkpoint, DecodedEvent, Head, Log

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
APPROVAL = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
TOKEN_A = "0x" + "a1" * 20
TOKEN_B = "0x" + "b2" * 20


def block_hash(number: int, fork: int = 0) -> str:
    """The hash of block ``number`` on fork ``fork`` (another fork, another hash)."""
    return f"0x{fork:08x}{number:056x}"


def head(number: int, fork: int = 0) -> Head:
    return Head(number, block_hash(number, fork), block_hash(number - 1, fork))


def checkpoint(number: int, *, chain_id: int = 1, fork: int = 0) -> Checkpoint:
    return Checkpoint(chain_id, number, block_hash(number, fork))


def event(
    number: int,
    log_index: int = 0,
    *,
    chain_id: int = 1,
    fork: int = 0,
    address: str = TOKEN_A,
    contract: str | None = "TokenA",
    name: str | None = "Transfer",
    args: dict[str, JSON] | None = None,
    error: str | None = None,
    historical: bool = False,
    topics: tuple[str, ...] | None = None,
    data: str | None = None,
) -> DecodedEvent:
    """A decoded ERC-20 Transfer (by default) at (block ``number``, ``log_index``)."""
    sender = f"0x{number:040x}"
    receiver = f"0x{log_index + 1:040x}"
    value = number * 1000 + log_index
    log = Log(
        address=address,
        topics=topics
        if topics is not None
        else (TRANSFER, "0x" + "0" * 24 + sender[2:], "0x" + "0" * 24 + receiver[2:]),
        data=data if data is not None else f"0x{value:064x}",
        block_number=number,
        block_hash=block_hash(number, fork),
        transaction_hash=f"0x{chain_id:04x}{fork:04x}{number:048x}{log_index:08x}",
        transaction_index=log_index // 2,
        log_index=log_index,
    )
    if args is None and name is not None:
        args = {"from": sender, "to": receiver, "value": str(value)}
    return DecodedEvent(chain_id, log, contract, name, args, error, historical)


def block_events(number: int, count: int, **kwargs: object) -> list[DecodedEvent]:
    return [event(number, i, **kwargs) for i in range(count)]  # type: ignore[arg-type]
