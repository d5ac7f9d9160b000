"""Upgrading a store from the former key layout (``stateful migrate redis://…``).

Before the hash per uid (`keys`), a link was a string ``P{ns:uid}:link:svc``
holding ``pod`` (permanent) or ``pod:expires_ms`` (temporary), and a hash
``P{ns:uid}:perm`` (service → pod) listed the uid's permanent links. The
current code reads neither, so a store written by that version looks empty
until it is upgraded.

`upgrade` scans for those strings (on a cluster, on every master) and moves
each one with `RedisBackend.upgrade_former_link`, one atomic script per link
(`lua/upgrade_link.lua`): the expiry is kept to the millisecond, the pod
index gets the uid, ``updated_ms`` becomes the time of the upgrade (the former
layout did not keep it), and a live link written in the new layout since
wins. Then it drops what is left of the ``perm`` hashes. Running it again
finds nothing to do, so it is safe to repeat, e.g. after routers of the
former version that were still running wrote more.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .keys import KeyLayout, decode, encode

if TYPE_CHECKING:
    from .backend import RedisBackend

#: Most former link strings moved at once.
CONCURRENCY = 64

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


@dataclass
class LayoutUpgrade:
    """What `upgrade` did."""

    #: Links moved into their uid's hash.
    moved: int = 0
    #: Former links dropped because a live link in the new layout was written since.
    superseded: int = 0
    #: Former links dropped because they had expired.
    expired: int = 0
    #: Entries of the former permanent-links hashes with no link string left, dropped.
    stale_entries: int = 0


def former_link_keys(
    keys: KeyLayout, namespace: str, uid: str, service_name: str
) -> tuple[bytes, bytes]:
    """Return the former layout's link string and permanent-links hash for a link."""
    tag = f"{keys.prefix}{{{encode(namespace)}:{encode(uid)}}}"
    return f"{tag}:link:{encode(service_name)}".encode(), f"{tag}:perm".encode()


def _former_tag(keys: KeyLayout, key: bytes) -> tuple[str, str, str] | None:
    # (namespace, uid, what follows the hash tag) of a key under keys.prefix.
    text = key.decode("utf-8", "surrogateescape")
    if not text.startswith(keys.prefix + "{"):
        return None
    tag, closing, rest = text[len(keys.prefix) + 1 :].partition("}")
    parts = tag.split(":")
    if not closing or len(parts) != 2:
        return None
    return decode(parts[0]), decode(parts[1]), rest


def parse_former_link(keys: KeyLayout, key: bytes) -> tuple[str, str, str] | None:
    """Return (namespace, uid, service) of a former link string's key, else None."""
    owner = _former_tag(keys, key)
    if owner is None:
        return None
    namespace, uid, rest = owner
    head, _, service = rest.partition(":link:")
    if head or not service or ":" in service:
        return None
    return namespace, uid, decode(service)


def parse_former_perm(keys: KeyLayout, key: bytes) -> tuple[str, str] | None:
    """Return (namespace, uid) of a former permanent-links hash's key, else None."""
    owner = _former_tag(keys, key)
    if owner is None or owner[2] != ":perm":
        return None
    return owner[0], owner[1]


async def upgrade(backend: RedisBackend) -> LayoutUpgrade:
    """Move every link of the former layout under ``backend``'s prefix (see the module doc)."""
    keys = backend.keys
    client: Any = backend.client
    report = LayoutUpgrade()
    pattern = _GLOB_SPECIAL.sub(r"\\\1", keys.prefix) + "{*}:"

    async def move(key: bytes) -> None:
        link = parse_former_link(keys, key)
        while link is not None:
            former = await client.get(key)
            if former is None:
                return
            answer = await backend.upgrade_former_link(*link, former)
            if answer == 1:
                report.moved += 1
            elif answer == 2:
                report.superseded += 1
            elif answer == 3:
                report.expired += 1
            if answer != -2:  # -2: changed since read, read it again
                return

    # Each string is moved by its own atomic script; a few dozen in flight
    # keep the round trips busy without flooding the server.
    batch: list[bytes] = []
    async for key in client.scan_iter(match=pattern + "link:*", count=1000):
        batch.append(key)
        if len(batch) == CONCURRENCY:
            await asyncio.gather(*map(move, batch))
            batch.clear()
    await asyncio.gather(*map(move, batch))
    async for key in client.scan_iter(match=pattern + "perm", count=1000):
        owner = parse_former_perm(keys, key)
        if owner is None:
            continue
        for field in await client.hkeys(key):
            service = field.decode("utf-8", "surrogateescape")
            link_key, perm_key = former_link_keys(keys, *owner, service)
            # Dropped only if no link string remains (one that a router of the
            # former version wrote meanwhile is moved by the next run).
            if not await client.exists(link_key):
                report.stale_entries += await client.hdel(perm_key, field)
    return report
