"""Which redis-py exceptions mean "Redis could not be reached" (outcome unknown).

The executor turns those into `stateful.BackendUnavailable` and everything
else into `stateful.BackendError`, keeping the driver's exception as the cause.
"""

from __future__ import annotations

from redis import exceptions as rx

#: Lost, refused or timed-out connections, a cluster or master that is down or
#: moving, a server still loading its data set, a write that reached a replica
#: during a failover, an exhausted pool. Plus the built-in socket errors.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterDownError,
    rx.TryAgainError,
    rx.SlotNotCoveredError,
    rx.ReadOnlyError,
    ConnectionError,
    TimeoutError,
    OSError,
)

# Subclasses of redis's ConnectionError that are configuration mistakes, not outages.
_NOT_UNAVAILABLE: tuple[type[BaseException], ...] = (
    rx.AuthenticationError,
    rx.AuthorizationError,
)

# Cluster set-up messages that wrap an outage (the cause may not be chained).
_CLUSTER_OUTAGE_MESSAGES = ("cannot be connected", "slots are not covered")


def is_unavailable(error: BaseException) -> bool:
    """Tell whether ``error`` (or an error it was raised from) means Redis was unreachable."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _NOT_UNAVAILABLE):
            return False
        if isinstance(current, UNAVAILABLE_ERRORS):
            return True
        if isinstance(current, rx.RedisClusterException) and any(
            text in str(current) for text in _CLUSTER_OUTAGE_MESSAGES
        ):
            return True
        current = current.__cause__
    return False
