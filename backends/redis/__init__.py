"""Redis backend: a URL (``redis://``, ``redis+cluster://``…) or an existing client.

``from_url`` serves ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``
and ``redis+sentinel://``; `RedisBackend` wraps a redis-py asyncio client you own.

Needs the ``redis`` extra (redis-py >= 5). The key layout is in `keys`, the
URL forms in `urls`, the Lua scripts in the ``lua`` folder; ``docs/redis.md``
has the whole picture.
"""

from __future__ import annotations

from typing import Any

from stateful.clock import Clock
from stateful.errors import BackendError, BackendUnavailable, StatefulError

from . import errors
from .backend import CHUNK, RedisBackend
from .keys import DEFAULT_PREFIX, KeyLayout
from .upgrade import LayoutUpgrade, upgrade
from .urls import client_from_url

__all__ = [
    "CHUNK",
    "DEFAULT_PREFIX",
    "KeyLayout",
    "LayoutUpgrade",
    "RedisBackend",
    "from_url",
    "migrate_url",
]


def from_url(
    url: str, *, clock: Clock | None = None, prefix: str = DEFAULT_PREFIX, **options: Any
) -> RedisBackend:
    """Build a `RedisBackend` for ``url`` that owns (and closes) its client; no I/O.

    ``clock`` replaces the Redis server's clock; ``prefix`` starts every key;
    other options go to the redis-py client (``socket_timeout=``,
    ``max_connections=``, ``retry=``…).
    """
    KeyLayout(prefix)  # reject a bad prefix before building a client
    client, closer = client_from_url(url, **options)
    return RedisBackend.owning(client, closer, prefix=prefix, clock=clock)


async def migrate_url(url: str, *, prefix: str = DEFAULT_PREFIX) -> LayoutUpgrade:
    """Move the links of the former key layout at ``url`` into the current one.

    Idempotent (see `upgrade`): a store without former keys is left as it is.
    """
    backend = from_url(url, prefix=prefix)
    try:
        return await upgrade(backend)
    except StatefulError:
        raise
    except Exception as exc:
        kind = BackendUnavailable if errors.is_unavailable(exc) else BackendError
        raise kind(f"migrate: {type(exc).__name__}: {exc}") from exc
    finally:
        await backend.aclose()
