"""The one exception tree of chainwatch.

::

    ChainwatchError
    ├── ConfigError (ValueError)        a config file, key or value is wrong; names file and key
    ├── AbiError (ValueError)           an ABI file or entry cannot be compiled
    ├── DecodeError (ValueError)        a log does not decode with the ABI it was matched to
    ├── RpcError                        a JSON-RPC exchange failed
    │   ├── RemoteProtocolError         the peer (provider or client) broke JSON-RPC
    │   └── RpcErrorResponse            the peer answered with a JSON-RPC error object
    ├── ProviderError                   a provider cannot be used
    │   ├── ProviderUnreachable         connecting failed or the connection dropped
    │   │   └── RequestTimeout          a request got no answer in time
    │   └── WrongChain                  the provider reports another chain id
    ├── StoreError                      the database refused an operation
    └── Busy                            no room for this work now: retry after retry_after s

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


class Busy(ChainwatchError):
    """The server has no room for some work now (``what``): retry after ``retry_after`` s."""

    def __init__(self, what: str, retry_after: float) -> None:
        super().__init__(f"too many {what} in progress; retry in {retry_after:g} s")
        self.what = what
        self.retry_after = retry_after
