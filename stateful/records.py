"""Frozen records the API returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """One live link, as `StatefulExecutor.get_link_info` reports it.

    ``expires_at_ms`` is None for a permanent link. ``updated_at_ms`` is when a
    call last set the link, refreshed it, or turned it temporary, on the
    store's clock (the Redis or database server's, or the given ``clock``).
    """

    namespace: str
    uid: str
    service_name: str
    pod_id: int
    expires_at_ms: int | None
    updated_at_ms: int

    @property
    def permanent(self) -> bool:
        """True if the link never expires."""
        return self.expires_at_ms is None
