"""`stateful migrate redis://…`: links of the former key layout move into the uid hashes.

The former layout is written here with raw commands, as its scripts wrote it:
a string per link, ``pod`` or ``pod:expires_ms`` (with a native expiry on the
server clock), and a ``perm`` hash of the uid's permanent links.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stateful import StatefulExecutor
from stateful.backends.redis import migrate_url
from stateful.backends.redis.backend import RedisBackend
from stateful.backends.redis.keys import KeyLayout
from stateful.backends.redis.upgrade import (
    LayoutUpgrade,
    former_link_keys,
    parse_former_link,
    parse_former_perm,
    upgrade,
)
from stateful.cli import main
from tests.redis_backend.scratch import scratch_backend, unique_prefix

NS, SVC = "ns:{é}", "svc }{ %"


@pytest.fixture
async def backend(any_redis_url: str) -> AsyncIterator[RedisBackend]:
    made = scratch_backend(any_redis_url)
    yield made
    await made.aclose()


async def write_former(
    backend: RedisBackend, ns: str, uid: str, svc: str, pod: int, expires_ms: int | None = None
) -> None:
    """Write one link as the former layout's scripts did on the server clock."""
    link, perm = former_link_keys(backend.keys, ns, uid, svc)
    client: Any = backend.client
    if expires_ms is None:
        await client.set(link, str(pod))
        await client.hset(perm, svc, str(pod))
    else:
        await client.set(link, f"{pod}:{expires_ms}", pxat=expires_ms)
        await client.hdel(perm, svc)


async def former_keys_left(backend: RedisBackend) -> list[bytes]:
    client: Any = backend.client
    found = [key async for key in client.scan_iter(match=f"{backend.keys.prefix}*", count=1000)]
    return [key for key in found if key.endswith(b":perm") or b":link:" in key]


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_permanent_and_temporary_links_move_with_their_expiry(
    backend: RedisBackend,
) -> None:
    expires = now_ms() + 60_000
    await write_former(backend, NS, "perm-user", SVC, 3)
    await write_former(backend, NS, "temp-user", SVC, 4, expires)
    await write_former(backend, NS, "temp-user", "other", 5)
    assert await backend.get_linked_pod(NS, "perm-user", SVC) is None  # unread before

    assert await upgrade(backend) == LayoutUpgrade(moved=3)

    ex = StatefulExecutor(backend)
    assert await ex.get_linked_pod(NS, "perm-user", SVC) == 3
    info = await ex.get_link_info(NS, "temp-user", SVC)
    assert info is not None and info.pod_id == 4 and info.expires_at_ms == expires
    assert await ex.get_link_service(NS, "temp-user") == {"other": 5}  # permanent ones only
    assert await ex.get_linked_pod_if_persist(NS, "perm-user", SVC) == 3
    # The pod indexes hold them: walks and counts see the moved links.
    assert [uid async for uid in ex.pod_links(NS, SVC, 3)] == ["perm-user"]
    assert await ex.count_pod_links(NS, SVC) == {3: 1, 4: 1}
    assert await former_keys_left(backend) == []
    # Nothing is left to do the second time.
    assert await upgrade(backend) == LayoutUpgrade()
    assert await ex.get_linked_pod(NS, "temp-user", SVC) == 4


async def test_a_newer_link_wins_and_dead_ones_are_dropped(backend: RedisBackend) -> None:
    await write_former(backend, NS, "u", SVC, 1)
    await backend.set_linked_pod(NS, "u", SVC, 2, -1)  # written by the new version since
    # A temporary link past its expiry that Redis has not reclaimed (written on
    # a caller's clock: no native expiry).
    link, _ = former_link_keys(backend.keys, NS, "dead", SVC)
    await backend.client.set(link, f"7:{now_ms() - 1000}")
    # A permanent-links entry whose link string is gone.
    _, perm = former_link_keys(backend.keys, NS, "gone", SVC)
    await backend.client.hset(perm, SVC, "9")

    assert await upgrade(backend) == LayoutUpgrade(superseded=1, expired=1, stale_entries=1)
    assert await backend.get_linked_pod(NS, "u", SVC) == 2
    assert await backend.get_linked_pod(NS, "dead", SVC) is None
    assert await backend.count_pod_links(NS, SVC) == {2: 1}
    assert await former_keys_left(backend) == []


async def test_only_keys_under_the_prefix_are_upgraded(any_redis_url: str) -> None:
    base = unique_prefix()
    # A prefix holding glob characters must match itself only; base + "x" is
    # not under base (the hash tag's brace follows the prefix).
    backends = {
        name: scratch_backend(any_redis_url, prefix=base + name) for name in ("", "x", "[*]?")
    }
    try:
        for pod, each in enumerate(backends.values()):
            await write_former(each, NS, "u", SVC, pod)
        assert await upgrade(backends["[*]?"]) == LayoutUpgrade(moved=1)
        assert await backends[""].get_linked_pod(NS, "u", SVC) is None
        assert await upgrade(backends[""]) == LayoutUpgrade(moved=1)
        assert await backends["x"].get_linked_pod(NS, "u", SVC) is None
        assert await upgrade(backends["x"]) == LayoutUpgrade(moved=1)
        assert [await each.get_linked_pod(NS, "u", SVC) for each in backends.values()] == [0, 1, 2]
    finally:
        for each in backends.values():
            await each.aclose()


identifiers = st.text(min_size=1, max_size=6).filter(lambda s: "\x00" not in s)


@given(ns=identifiers, uid=identifiers, svc=identifiers)
def test_former_keys_read_back(ns: str, uid: str, svc: str) -> None:
    layout = KeyLayout("p:*x:")
    link, perm = former_link_keys(layout, ns, uid, svc)
    assert parse_former_link(layout, link) == (ns, uid, svc)
    assert parse_former_perm(layout, perm) == (ns, uid)
    assert parse_former_link(layout, perm) is None
    assert parse_former_perm(layout, link) is None
    assert parse_former_link(layout, layout.link_hash(ns, uid)) is None
    assert parse_former_link(KeyLayout("q:"), link) is None


UIDS, SERVICES = ["a", "b:c", "{d}"], ["s", "t%"]
links = st.tuples(st.sampled_from(UIDS), st.sampled_from(SERVICES))


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    # (uid, service) -> (pod, None: permanent, else the expiry in ms from now)
    former=st.dictionaries(
        links, st.tuples(st.integers(0, 5), st.sampled_from([None, -5_000, 30_000])), max_size=8
    ),
    newer=st.dictionaries(links, st.integers(0, 5), max_size=3),
)
def test_after_the_upgrade_the_store_holds_what_a_reader_expects(
    any_redis_url: str,
    former: dict[tuple[str, str], tuple[int, int | None]],
    newer: dict[tuple[str, str], int],
) -> None:
    """Newer links win; live former links keep their pod and expiry; dead ones go."""

    async def example() -> None:
        backend = scratch_backend(any_redis_url)
        try:
            start = now_ms()
            for (uid, svc), (pod, offset) in former.items():
                if offset is None:
                    await write_former(backend, NS, uid, svc, pod)
                else:  # on a caller's clock: no native expiry, so dead ones stay
                    link, _ = former_link_keys(backend.keys, NS, uid, svc)
                    await backend.client.set(link, f"{pod}:{start + offset}")
            for (uid, svc), pod in newer.items():
                await backend.set_linked_pod(NS, uid, svc, pod, -1)

            done = await upgrade(backend)

            live = {
                key: (pod, None if offset is None else start + offset)
                for key, (pod, offset) in former.items()
                if offset is None or offset > 0
            }
            assert done == LayoutUpgrade(
                moved=len(live.keys() - newer.keys()),
                superseded=len(former.keys() & newer.keys()),
                expired=len(former.keys() - live.keys() - newer.keys()),
            )
            expected = {**live, **{key: (pod, None) for key, pod in newer.items()}}
            for uid in UIDS:
                for svc in SERVICES:
                    info = await backend.get_link_info(NS, uid, svc)
                    seen = None if info is None else (info.pod_id, info.expires_at_ms)
                    assert seen == expected.get((uid, svc))
            for svc in SERVICES:
                counts: dict[int, int] = {}
                for (_, service), (pod, _) in expected.items():
                    if service == svc:
                        counts[pod] = counts.get(pod, 0) + 1
                assert await backend.count_pod_links(NS, svc) == counts
            assert await former_keys_left(backend) == []
        finally:
            await backend.aclose()

    asyncio.run(example())


def test_the_migrate_command_upgrades_a_redis_store(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = unique_prefix()

    async def on_a_backend(work: Any) -> Any:
        # The command runs its own event loop; each step here gets one too.
        backend = scratch_backend(redis_url, prefix=prefix)
        try:
            return await work(backend)
        finally:
            if work is read_back:
                await backend.aclose()  # deletes the keys
            else:
                await RedisBackend.aclose(backend)

    async def read_back(backend: RedisBackend) -> int | None:
        return await backend.get_linked_pod(NS, "u", SVC)

    asyncio.run(on_a_backend(lambda b: write_former(b, NS, "u", SVC, 6)))
    assert main(["migrate", redis_url, "--prefix", prefix, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "moved": 1, "superseded": 0, "expired": 0, "stale_entries": 0
    }
    assert main(["migrate", redis_url, "--prefix", prefix]) == 0
    assert capsys.readouterr().out.startswith("moved 0 links out of the former key layout")
    assert asyncio.run(migrate_url(redis_url, prefix=prefix)) == LayoutUpgrade()
    assert asyncio.run(on_a_backend(read_back)) == 6


async def test_pod_states_of_the_former_layout_read_as_permanent(backend: RedisBackend) -> None:
    # The former layout stored a pod state raw (pod -> state); the current one
    # stores ':state' or 'expires_ms:state'. A raw state is read as permanent,
    # whatever colons it holds, and a write next to it keeps it.
    key = backend.keys.pod_states(NS, SVC)
    await backend.client.hset(key, mapping={"1": "ready", "2": "drain:at 5pm", "3": "a:b:c"})
    expected = {1: "ready", 2: "drain:at 5pm", 3: "a:b:c"}
    assert await backend.get_service_state(NS, SVC) == expected
    await backend.set_service_state(NS, SVC, 4, "ready", ttl_seconds=60)
    assert await backend.get_service_state(NS, SVC) == {**expected, 4: "ready"}
    assert await backend.client.pttl(key) == -1  # permanent states: no native expiry
    assert await backend.remove_service_state(NS, SVC, 2)
    assert await backend.get_service_state(NS, SVC) == {1: "ready", 3: "a:b:c", 4: "ready"}
