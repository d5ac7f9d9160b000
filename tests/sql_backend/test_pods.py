"""Pods come and go on SQL: state TTLs, link info, a pod's links by page, counts,
draining and placement, on SQLite, PostgreSQL and MariaDB (backend calls; the
conformance machine compares them with the reference model)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from stateful import ManualClock, StatefulExecutor
from stateful.backends.sql import SQLBackend, from_url
from tests.sql_backend import endpoints


def _ns() -> str:
    return f"pods {uuid.uuid4()}"


@pytest.fixture
async def clock() -> ManualClock:
    """A clock the test moves by hand."""
    return ManualClock()


@pytest.fixture
async def backend(sql_url: str, clock: ManualClock) -> AsyncIterator[SQLBackend]:
    """A backend on the session's tables (each test uses a namespace of its own)."""
    backend = from_url(sql_url, clock=clock, table_prefix=endpoints.PREFIX)
    yield backend
    await backend.aclose()


async def _walk(backend: SQLBackend, ns: str, svc: str, pod: int, limit: int) -> list[str]:
    uids: list[str] = []
    cursor: str | None = None
    for _ in range(10_000):
        page, cursor = await backend.pod_links_page(ns, svc, pod, cursor, limit)
        assert len(page) <= limit
        uids.extend(page)
        if cursor is None:
            return uids
    raise AssertionError("pod_links_page never ended")


async def test_state_ttl_expires_at_its_exact_millisecond(
    backend: SQLBackend, clock: ManualClock
) -> None:
    ns = _ns()
    await backend.set_service_state(ns, "svc", 0, "ready", ttl_seconds=5)
    await backend.set_service_state(ns, "svc", 1, "draining")
    clock.advance(4.999)
    assert await backend.get_service_state(ns, "svc") == {0: "ready", 1: "draining"}
    clock.advance(0.001)
    assert await backend.get_service_state(ns, "svc") == {1: "draining"}
    # An expired state is no state: removing it reports False, a heartbeat revives it.
    assert await backend.remove_service_state(ns, "svc", 0) is False
    await backend.set_service_state(ns, "svc", 0, "ready", ttl_seconds=1)
    await backend.set_service_state(ns, "svc", 0, "ready")  # set again without TTL: permanent
    clock.advance(3600)
    assert await backend.get_service_state(ns, "svc") == {0: "ready", 1: "draining"}
    assert await backend.remove_service_state(ns, "svc", 1) is True
    assert await backend.remove_service_state(ns, "svc", 1) is False
    assert await backend.get_service_state(ns, "svc") == {0: "ready"}


async def test_purge_deletes_expired_states(backend: SQLBackend, clock: ManualClock) -> None:
    ns = _ns()
    await backend.set_service_state(ns, "svc", 7, "ready", ttl_seconds=1)
    clock.advance(2)
    await backend.purge_expired()
    states = backend._tables.pod_states
    async with backend.engine.connect() as conn:
        left = await conn.scalar(
            text(f"SELECT COUNT(*) FROM {states.name} WHERE namespace = :ns"), {"ns": ns}
        )
    assert left == 0


async def test_link_info_updated_at_follows_the_contract(
    backend: SQLBackend, clock: ManualClock
) -> None:
    ns = _ns()
    t0 = clock.now_ms()
    assert await backend.get_link_info(ns, "u", "svc") is None
    await backend.set_linked_pod(ns, "u", "svc", 3, -1)
    info = await backend.get_link_info(ns, "u", "svc")
    assert info is not None
    assert (info.pod_id, info.expires_at_ms, info.updated_at_ms) == (3, None, t0)
    assert (info.namespace, info.uid, info.service_name) == (ns, "u", "svc")

    clock.advance(1)  # a permanent link kept by if_absent / place: not updated
    assert await backend.set_linked_pod_if_absent(ns, "u", "svc", 9, 60) == 3
    assert await backend.place_linked_pod(ns, "u", "svc", 60, 9) == 3
    assert await backend.place_linked_pod(ns, "u", "svc", 60, None) == 3
    assert (await backend.get_link_info(ns, "u", "svc")).updated_at_ms == t0  # type: ignore[union-attr]
    # try_set refused by a permanent link elsewhere: not updated.
    assert await backend.try_set_linked_pod(ns, "u", "svc", 9, 60) == (False, 3)
    assert (await backend.get_link_info(ns, "u", "svc")).updated_at_ms == t0  # type: ignore[union-attr]

    clock.advance(1)  # removal with a persist window turns it temporary: updated
    t2 = clock.now_ms()
    assert await backend.remove_linked_pod_with_id(ns, "u", "svc", 30, 3) is True
    info = await backend.get_link_info(ns, "u", "svc")
    assert info is not None and (info.expires_at_ms, info.updated_at_ms) == (t2 + 30_000, t2)

    clock.advance(1)  # if_absent refreshing a temporary link: updated
    t3 = clock.now_ms()
    assert await backend.set_linked_pod_if_absent(ns, "u", "svc", 8, 10) == 3
    info = await backend.get_link_info(ns, "u", "svc")
    assert info is not None and (info.pod_id, info.expires_at_ms, info.updated_at_ms) == (
        3,
        t3 + 10_000,
        t3,
    )
    clock.advance(1)  # place without a pod refreshes a temporary link too
    t4 = clock.now_ms()
    assert await backend.place_linked_pod(ns, "u", "svc", -1, None) == 3
    info = await backend.get_link_info(ns, "u", "svc")
    assert info is not None and (info.expires_at_ms, info.updated_at_ms) == (None, t4)

    clock.advance(1)  # try_set that sets: updated
    t5 = clock.now_ms()
    assert await backend.try_set_linked_pod(ns, "u", "svc", 3, 5) == (True, 3)
    info = await backend.get_link_info(ns, "u", "svc")
    assert info is not None and (info.expires_at_ms, info.updated_at_ms) == (t5 + 5_000, t5)
    clock.advance(5)  # expired: no info, and place without a pod creates nothing
    assert await backend.get_link_info(ns, "u", "svc") is None
    assert await backend.place_linked_pod(ns, "u", "svc", 5, None) is None
    assert await backend.get_linked_pod(ns, "u", "svc") is None
    assert await backend.place_linked_pod(ns, "u", "svc", 5, 6) == 6
    info = await backend.get_link_info(ns, "u", "svc")
    assert info is not None and (info.pod_id, info.updated_at_ms) == (6, clock.now_ms())


async def test_pod_pages_and_counts(backend: SQLBackend, clock: ManualClock) -> None:
    ns = _ns()
    on_pod = {f"user-{i}" for i in range(1, 1501)}
    await asyncio.gather(*(backend.set_linked_pod(ns, uid, "svc", 4, -1) for uid in on_pod))
    # Other pods, another service, a short-lived link: left out.
    await asyncio.gather(
        *(backend.set_linked_pod(ns, f"other-{i}", "svc", 5 + i % 3, -1) for i in range(300)),
        *(backend.set_linked_pod(ns, f"user-{i + 1}", "elsewhere", 4, -1) for i in range(300)),
    )
    await backend.set_linked_pod(ns, "brief", "svc", 4, 1)
    await backend.set_linked_pod(_ns(), "user-1", "svc", 4, -1)  # another namespace
    clock.advance(1)

    walked = await _walk(backend, ns, "svc", 4, 1000)
    assert len(walked) == len(on_pod) and set(walked) == on_pod
    assert await _walk(backend, ns, "svc", 4, 97) == walked  # same stable order, any page size
    assert await _walk(backend, ns, "svc", 99, 10) == []
    assert await backend.count_pod_links(ns, "svc") == {4: 1500, 5: 100, 6: 100, 7: 100}
    assert await backend.count_pod_links(ns, "nothing") == {}


async def test_a_walk_sees_links_present_throughout_exactly_once(backend: SQLBackend) -> None:
    ns = _ns()
    stay = {f"stay-{i}" for i in range(400)}
    await asyncio.gather(*(backend.set_linked_pod(ns, uid, "svc", 1, -1) for uid in stay))
    seen: list[str] = []
    cursor: str | None = None
    for step in range(1000):
        page, cursor = await backend.pod_links_page(ns, "svc", 1, cursor, 50)
        seen.extend(page)
        # Writes between pages: new links, moves away and back.
        await backend.set_linked_pod(ns, f"new-{step}", "svc", 1, -1)
        await backend.set_linked_pod(ns, f"mover-{step}", "svc", 1 + step % 2, -1)
        if cursor is None:
            break
    assert stay <= set(seen)
    assert len(seen) == len(set(seen))
    assert all(uid in stay or uid.startswith(("new-", "mover-")) for uid in seen)


async def test_remove_pod_links_pages_as_remove_with_id(
    backend: SQLBackend, clock: ManualClock
) -> None:
    ns = _ns()
    await asyncio.gather(*(backend.set_linked_pod(ns, f"u{i}", "svc", 2, -1) for i in range(1200)))
    await backend.set_linked_pod(ns, "keep", "svc", 3, -1)
    removed = 0
    cursor: str | None = None
    first = True
    for _ in range(100):
        count, cursor = await backend.remove_pod_links_page(ns, "svc", 2, 0, cursor, 500)
        removed += count
        if first:  # a link moved off the pod meanwhile is left alone
            await backend.set_linked_pod(ns, "u1199", "svc", 3, -1)
            first = False
        if cursor is None:
            break
    assert removed in (1199, 1200)  # u1199 moved before or after its page
    assert await backend.get_linked_pod(ns, "u1199", "svc") == 3
    assert await backend.count_pod_links(ns, "svc") == {3: 2}

    # With a persist window the links stay, temporary, on the pod.
    t = clock.now_ms()
    count, cursor = await backend.remove_pod_links_page(ns, "svc", 3, 20, None, 1000)
    assert (count, cursor) == (2, None)
    info = await backend.get_link_info(ns, "keep", "svc")
    assert info is not None and (info.pod_id, info.expires_at_ms, info.updated_at_ms) == (
        3,
        t + 20_000,
        t,
    )
    clock.advance(20)
    assert await backend.count_pod_links(ns, "svc") == {}


async def test_concurrent_placements_of_one_uid_agree(backend: SQLBackend) -> None:
    ns = _ns()
    for round_ in range(5):
        uid = f"u{round_}"
        pods = await asyncio.gather(
            *(backend.place_linked_pod(ns, uid, "svc", 60, pod) for pod in range(16))
        )
        assert len(set(pods)) == 1
        assert await backend.get_linked_pod(ns, uid, "svc") == pods[0]


async def test_pod_queries_use_the_pod_index(backend: SQLBackend) -> None:
    """Cost grows with the pod: the planner walks ix_<prefix>links_pod, not the table.

    The two queries are the backend's pod page and count, with literal values.
    """
    name = backend.engine.dialect.name
    links = f"{endpoints.PREFIX}links"
    live = "(expires_at IS NULL OR expires_at > 0)"
    key = {"sqlite": "x'{}'", "postgresql": "'\\x{}'::bytea", "mysql": "x'{}'"}[name].format(
        "01" * 32
    )
    queries = [
        f"SELECT link_key, uid FROM {links} WHERE service_key = {key} AND pod = 1"
        f" AND link_key > {key} AND {live} ORDER BY link_key LIMIT 10",
        f"SELECT pod, COUNT(*) FROM {links} WHERE service_key = {key} AND {live} GROUP BY pod",
    ]
    explain = "EXPLAIN QUERY PLAN " if name == "sqlite" else "EXPLAIN "
    async with backend.engine.connect() as conn:
        for query in queries:
            plan = (await conn.execute(text(explain + query))).all()
            assert f"ix_{links}_pod" in repr(plan), plan
            assert "Seq Scan" not in repr(plan) and "SCAN " + links not in repr(plan), plan


async def test_racing_set_linked_pod_reports_a_chain_of_previous_pods(
    sql_url: str, backend: SQLBackend
) -> None:
    """set_linked_pod from 4 engines on one new link: each call's "previous" is the pod of
    exactly one other call (a total order), the first sees None, the last one stays."""
    backends = [backend] + [
        from_url(sql_url, table_prefix=endpoints.PREFIX, clock=backend._clock) for _ in range(3)
    ]
    try:
        for round_ in range(6):
            ns = _ns()
            pods = list(range(16))
            previous = await asyncio.gather(
                *(
                    backends[pod % 4].set_linked_pod(ns, f"u{round_}", "svc", pod, -1)
                    for pod in pods
                )
            )
            final = await backend.get_linked_pod(ns, f"u{round_}", "svc")
            assert previous.count(None) == 1
            assert sorted(p for p in previous if p is not None) == [p for p in pods if p != final]
    finally:
        for other in backends[1:]:
            await other.aclose()


async def test_through_the_executor_a_drain_and_a_placement(sql_url: str) -> None:
    """What a router does, on the public API: heartbeats, placement, walk, drain."""
    ns = _ns()
    async with StatefulExecutor(from_url(sql_url, table_prefix=endpoints.PREFIX)) as ex:
        for pod in range(3):
            await ex.set_service_state(ns, "svc", pod, "ready", ttl_seconds=30)
        placed = [await ex.place_linked_pod(ns, f"u{i}", "svc", -1) for i in range(30)]
        assert sorted(placed.count(pod) for pod in range(3)) == [10, 10, 10]
        assert await ex.count_pod_links(ns, "svc") == {0: 10, 1: 10, 2: 10}
        walked = [uid async for uid in ex.pod_links(ns, "svc", 1, page_size=3)]
        assert sorted(walked) == sorted(f"u{i}" for i, pod in enumerate(placed) if pod == 1)
        await ex.set_service_state(ns, "svc", 1, "draining")
        assert await ex.remove_pod_links(ns, "svc", 1, 0) == 10
        assert await ex.count_pod_links(ns, "svc") == {0: 10, 2: 10}
        assert await ex.remove_service_state(ns, "svc", 1) is True
        # A drained user comes back: placed on a ready pod, the least loaded.
        assert await ex.place_linked_pod(ns, walked[0], "svc", -1) in (0, 2)
