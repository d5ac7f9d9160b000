"""Backends over a fresh key prefix that delete their keys when closed."""

from __future__ import annotations

import uuid
from typing import Any

from stateful.backends.redis import RedisBackend
from stateful.backends.redis.urls import Client, client_from_url
from stateful.clock import Clock


def unique_prefix() -> str:
    """A key prefix no other test uses."""
    return f"stateful-test:{uuid.uuid4().hex[:12]}:"


async def delete_prefix(client: Client, prefix: str) -> None:
    """Delete every key under ``prefix`` (on a cluster, on every master)."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
    if not keys:
        return
    pipe: Any = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("UNLINK", key)
    await pipe.execute()


class ScratchBackend(RedisBackend):
    """A `RedisBackend` that removes its keys in `aclose` before closing its client."""

    async def aclose(self) -> None:
        """Delete this backend's keys, then close as usual."""
        try:
            await delete_prefix(self.client, self.keys.prefix)
        finally:
            await super().aclose()


def scratch_backend(
    url: str, clock: Clock | None = None, *, prefix: str | None = None, **options: Any
) -> ScratchBackend:
    """A backend owning a new client for ``url``, under ``prefix`` (default: a fresh one)."""
    client, closer = client_from_url(url, **options)
    prefix = unique_prefix() if prefix is None else prefix
    backend = ScratchBackend.owning(client, closer, prefix=prefix, clock=clock)
    assert isinstance(backend, ScratchBackend)
    return backend
