"""Who may connect, and how loudly refusals are logged: the server's admission rules, no I/O.

A connection is counted from the moment it is accepted, not once its request is complete, so
that nothing an unauthenticated peer does before its handshake ends is unbounded:

* connections in total, at most ``max_connections`` and never more than the open-file limit
  allows with a reserve (the kernel's backlog of accepted sockets, and the daemon's own files):
  the accept loop never meets EMFILE, which it would log and retry every second;
* opening handshakes in progress, in total and per address (``max_handshakes``,
  ``max_handshakes_per_ip``): each holds up to ``max_header_bytes`` of request for up to
  ``handshake_timeout`` seconds;
* per address, the matching work of its subscriptions (a :class:`~chainwatch.core.ratelimit.
  Budget` shared by its sessions).

Refusals are logged at most :data:`LOG_BURST` lines per :data:`LOG_INTERVAL` seconds; the next
line says how many were left out.
"""

from __future__ import annotations

import collections
import resource
from dataclasses import dataclass

from chainwatch.config import ServerSettings
from chainwatch.core.ratelimit import Budget, TokenBucket

__all__ = ["FD_RESERVE", "Gate", "LogLimiter", "Refusal", "file_budget"]

# Files the daemon keeps open besides client sockets: the store (a SQLite file, its WAL and
# shared memory, or PostgreSQL connections), providers, logs, the event loop's own.
FD_RESERVE = 64
# Connections the kernel queues before they are accepted: thousands of clients reconnecting at
# once after a restart must not have their SYNs dropped (the kernel caps it at somaxconn).
MAX_BACKLOG = 4096
# asyncio accepts up to the backlog per readiness event, and a socket reaches the server (to be
# counted, or refused and closed) two loop iterations later, while the next batches are being
# accepted: descriptors for this many batches stay in reserve beyond the connection limit.
BATCHES_IN_FLIGHT = 4
LOG_BURST = 10
LOG_INTERVAL = 10.0
# Pings a client may send (RFC 6455 5.5.2): keepalives come every few seconds, not hundreds.
PINGS_PER_SECOND = 10.0
PING_BURST = 20.0


def file_budget(max_connections: int) -> tuple[int, int]:
    """(connections, backlog) that the open-file limit allows, raising the soft limit to the
    hard one first when ``max_connections`` needs it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + BATCHES_IN_FLIGHT * MAX_BACKLOG + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return max_connections, MAX_BACKLOG
    files = max(2, soft - FD_RESERVE)
    backlog = max(1, min(MAX_BACKLOG, files // (4 * BATCHES_IN_FLIGHT)))
    return max(1, min(max_connections, files - BATCHES_IN_FLIGHT * backlog)), backlog


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection is refused as soon as it is accepted: an HTTP status and a reason."""

    status: int
    reason: str
    stat: str
    respond: bool = True  # False: reset at once, to free the descriptor


class Gate:
    """The counts behind the admission rules (see the module docstring).

    ``admit`` when a connection is accepted (it then counts, admitted or not, until
    ``release``); ``handshake_done`` once its request is read.
    """

    __slots__ = ("budgets", "connections", "handshakes", "handshakes_per_ip", "max_connections",
                 "per_ip", "settings")  # fmt: skip

    def __init__(self, settings: ServerSettings, max_connections: int) -> None:
        self.settings = settings
        self.max_connections = max_connections
        self.connections = 0
        self.handshakes = 0
        self.per_ip: collections.Counter[str] = collections.Counter()
        self.handshakes_per_ip: collections.Counter[str] = collections.Counter()
        self.budgets: dict[str, Budget] = {}

    def admit(self, peer: str) -> Refusal | None:
        """Count a connection just accepted from ``peer`` (and its handshake); say why it is
        refused, if it is."""
        s = self.settings
        self.connections += 1
        self.per_ip[peer] += 1
        self.handshakes += 1
        self.handshakes_per_ip[peer] += 1
        if self.connections > self.max_connections:
            return Refusal(503, "too many connections", "server_full", respond=False)
        if self.handshakes > s.max_handshakes:
            return Refusal(503, "too many handshakes in progress", "handshakes_full")
        if self.handshakes_per_ip[peer] > s.max_handshakes_per_ip:
            return Refusal(429, "too many handshakes from this address", "handshakes_per_ip")
        return None

    def handshake_done(self, peer: str) -> None:
        self.handshakes -= 1
        _decrement(self.handshakes_per_ip, peer)

    def over_per_ip(self, peer: str) -> bool:
        return self.per_ip[peer] > self.settings.max_connections_per_ip

    def release(self, peer: str, handshaking: bool) -> None:
        """The connection from ``peer`` is gone (during its handshake if ``handshaking``)."""
        if handshaking:
            self.handshake_done(peer)
        self.connections -= 1
        if not _decrement(self.per_ip, peer):
            self.budgets.pop(peer, None)

    def budget(self, peer: str) -> Budget:
        """The matching budget shared by the sessions of ``peer``."""
        budget = self.budgets.get(peer)
        if budget is None:
            budget = self.budgets[peer] = Budget(self.settings.max_match_cost_per_ip)
        return budget


def _decrement(counter: collections.Counter[str], key: str) -> int:
    left = counter[key] - 1
    if left <= 0:
        del counter[key]
        return 0
    counter[key] = left
    return left


class LogLimiter:
    """At most ``burst`` lines per ``interval`` seconds; the count of the lines left out.

    >>> limiter = LogLimiter(burst=2, interval=10.0)
    >>> [limiter.allow(0.0) for _ in range(3)]
    [0, 0, None]
    >>> limiter.allow(10.0)  # a line again, telling how many were left out
    1
    """

    __slots__ = ("bucket", "suppressed")

    def __init__(self, burst: int = LOG_BURST, interval: float = LOG_INTERVAL) -> None:
        self.bucket = TokenBucket(burst / interval, burst, now=-interval)
        self.suppressed = 0

    def allow(self, now: float) -> int | None:
        """None: leave this line out. Else log it, with the number left out since the last."""
        if not self.bucket.take(now):
            self.suppressed += 1
            return None
        suppressed, self.suppressed = self.suppressed, 0
        return suppressed
