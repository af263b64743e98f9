"""The one exception tree of chainwatch.

::

    ChainwatchError
    ├── ConfigError (ValueError)        a config file, key or value is wrong; names file and key
    ├── AbiError (ValueError)           an ABI file or entry cannot be compiled
    ├── DecodeError (ValueError)        a log does not decode with the ABI it was matched to
    ├── FilterError (ValueError)        a filter or a --where clause is wrong; names the field
    ├── InputError (ValueError)         `decode`'s input cannot be read on (bad array, huge item)
    ├── RpcError                        a JSON-RPC exchange failed
    │   ├── RemoteProtocolError         the peer (provider or client) broke JSON-RPC
    │   │   └── InvalidRequest (ValueError)  a client's request is not JSON-RPC 2.0 (core.rpc)
    │   └── RpcErrorResponse            the peer answered with a JSON-RPC error object
    ├── ProviderError                   a provider cannot be used
    │   ├── ProviderUnreachable         connecting failed or the connection dropped
    │   │   └── RequestTimeout          a request got no answer in time
    │   └── WrongChain                  the provider reports another chain id
    ├── StoreError                      the database refused an operation
    │   ├── LeadershipLost              this process no longer leads the chain it wrote for
    │   └── CursorExpired               a cursor is older than the change log keeps
    └── Busy                            no room for this work now: retry after retry_after s

Every exception class defined in chainwatch is in this tree, private ones included (those carry
a result within their module and are not drawn). A class that acts as a builtin error also
derives from it, so ``except ValueError`` around a parser keeps working.

Errors of other libraries are converted where they enter chainwatch (``raise ... from exc``).
Errors meant for the user carry a one-line message that is safe to print: provider URLs in them
are redacted.
"""

from __future__ import annotations

from typing import Any


class ChainwatchError(Exception):
    """Base of every error chainwatch raises on purpose."""


class ConfigError(ChainwatchError, ValueError):
    """The configuration is invalid.

    The message has the form ``FILE: KEY: PROBLEM`` so the user can find the line to fix.
    """

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class AbiError(ChainwatchError, ValueError):
    """An ABI cannot be read or compiled."""


class DecodeError(ChainwatchError, ValueError):
    """A log does not match, or does not decode with, the ABI it was matched to."""


class FilterError(ChainwatchError, ValueError):
    """A filter is invalid; the message names the field (``where[1][2]: ...``).

    Raised by :mod:`chainwatch.core.filters` (which re-exports it) for a client's subscription
    filter, answered -32602, and for the ``--where`` clauses of ``chainwatch tail``.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class InputError(ChainwatchError, ValueError):
    """The input of ``chainwatch decode`` cannot be read on: a malformed JSON array, an item
    too large."""


class RpcError(ChainwatchError):
    """A JSON-RPC exchange failed."""


class RemoteProtocolError(RpcError):
    """The peer sent something that is not valid JSON-RPC 2.0 (our peer's fault, not ours)."""


class RpcErrorResponse(RpcError):
    """The peer answered a request with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"JSON-RPC error {code}: {message}")


class ProviderError(ChainwatchError):
    """A provider cannot be used."""


class ProviderUnreachable(ProviderError):
    """Connecting to a provider failed, or its connection dropped."""


class RequestTimeout(ProviderUnreachable):
    """A request to a provider got no answer in time."""


class WrongChain(ProviderError):
    """The provider reports a chain id other than the configured one."""


class StoreError(ChainwatchError):
    """The database refused an operation."""


class LeadershipLost(StoreError):
    """A write for a chain came from a process whose lease on that chain has expired or was
    taken over: the write is refused (fencing), and the process goes back to standing by."""


class CursorExpired(StoreError):
    """A cursor is older than what the change log keeps: the consumer must resync.

    ``oldest`` is the oldest cursor still accepted (changes after it are all kept).
    """

    def __init__(self, cursor: int, oldest: int) -> None:
        self.cursor = cursor
        self.oldest = oldest
        super().__init__(
            f"cursor {cursor} is older than the change log keeps (oldest cursor accepted: "
            f"{oldest}); resync from the store and resume from a newer cursor"
        )


class Busy(ChainwatchError):
    """The server has no room for some work now (``what``): retry after ``retry_after`` s."""

    def __init__(self, what: str, retry_after: float) -> None:
        super().__init__(f"too many {what} in progress; retry in {retry_after:g} s")
        self.what = what
        self.retry_after = retry_after


def first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first exception of a (nested) exception group that is not itself a group: what a
    TaskGroup's failure was, to report or re-raise as itself."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
