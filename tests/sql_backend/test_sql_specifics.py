"""What the conformance machine does not reach: identifiers at their limits, expiry and
purging in SQL, engines the application owns, URLs and options, unreachable servers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

import stateful
from stateful import ManualClock, StatefulExecutor
from stateful.backends.sql import SQLBackend, build_tables, from_url
from stateful.backends.sql.engines import normalize_url
from tests.sql_backend import endpoints
from tests.support import free_port


def _namespace() -> str:
    return f"ns {uuid.uuid4()}:{{x}}"


async def _count_links(url: str, namespace: str, prefix: str = endpoints.PREFIX) -> int:
    links = build_tables(prefix).links
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(links).where(links.c.namespace == namespace)
            )
            return int(count or 0)
    finally:
        await engine.dispose()


async def test_identifiers_at_their_limits_round_trip_exactly(sql_url: str) -> None:
    ns = _namespace()[:200] + "é" * 55  # 255 characters
    service = "ü:{s} " * 42 + "😀" * 3  # 255 characters, trailing emoji
    long_uid = "😀" * 1024  # 4 bytes each: 4 KiB of UTF-8
    state = "状態 " * 1365 + "😀"  # 4096 characters
    variants = ["a", "A", "a ", "á", "a\u0301", long_uid]
    async with StatefulExecutor(from_url(sql_url, table_prefix=endpoints.PREFIX)) as ex:
        for pod, uid in enumerate(variants):
            assert await ex.set_linked_pod(ns, uid, service, pod, -1) is None
            assert await ex.set_linked_pod(ns, uid, service.upper(), pod + 10, -1) is None
        for pod, uid in enumerate(variants):
            assert await ex.get_linked_pod(ns, uid, service) == pod
            assert await ex.get_link_service(ns, uid) == {service: pod, service.upper(): pod + 10}
        assert await ex.batch_get_linked_pod(ns, reversed(variants), service) == {
            pod: [uid] for pod, uid in reversed(list(enumerate(variants)))
        }
        await ex.set_service_state(ns, service, 2**31 - 1, state)
        short = service[:254]
        await ex.set_workload_state(ns, short, state)
        await ex.set_workload_state(ns, short + " ", "other")
        assert await ex.get_service_state(ns, service) == {2**31 - 1: state}
        assert await ex.get_workload_state(ns, [short, short + " ", short.upper()]) == {
            short: state,
            short + " ": "other",
        }


async def test_expired_links_are_ignored_then_purged_in_batches(
    sql_url: str, private_prefix: str
) -> None:
    # Own tables: a purge deletes every expired link, whatever its namespace.
    ns, clock = _namespace(), ManualClock()
    backend = from_url(sql_url, clock=clock, table_prefix=private_prefix, purge_batch_size=10)
    async with StatefulExecutor(backend) as ex:
        uids = [f"temp {i}" for i in range(25)]
        for uid in uids:
            await ex.set_linked_pod(ns, uid, "svc", 1, 2)
        await ex.set_linked_pod(ns, "forever", "svc", 2, -1)
        clock.advance_ms(1999)
        assert await ex.batch_get_linked_pod(ns, [*uids, "forever"], "svc") == {
            1: uids,
            2: ["forever"],
        }
        assert await backend.purge_expired() == 0
        clock.advance_ms(1)  # now == expires_at: gone
        assert await ex.batch_get_linked_pod(ns, [*uids, "forever"], "svc") == {2: ["forever"]}
        assert await ex.get_linked_pod(ns, uids[0], "svc") is None
        assert await ex.remove_linked_pod(ns, uids[1], "svc", 5) is False
        assert await ex.set_linked_pod(ns, uids[2], "svc", 3, -1) is None  # absent for writes
        assert await _count_links(sql_url, ns, private_prefix) == 26  # stored until purged
        assert await backend.purge_expired() == 24  # batches of 10, 10, 4
        assert await _count_links(sql_url, ns, private_prefix) == 2


async def test_each_overwrite_of_a_link_leaves_row_index_and_expiry_right(sql_url: str) -> None:
    """An overwrite SETs only the columns that change (`overwrite_for`): every
    transition (same pod, new pod, permanent and temporary both ways, a dead
    row) still leaves the link, its expiry, its update time and the pod index."""
    ns, clock = _namespace(), ManualClock(1_000_000)
    backend = from_url(sql_url, clock=clock, table_prefix=endpoints.PREFIX)
    async with StatefulExecutor(backend) as ex:

        async def state() -> tuple[Any, dict[int, int], list[str]]:
            info = await ex.get_link_info(ns, "u", "svc")
            seen = (info.pod_id, info.expires_at_ms, info.updated_at_ms) if info else None
            pods = await ex.count_pod_links(ns, "svc")
            on_pod = [uid async for uid in ex.pod_links(ns, "svc", 2)]
            return seen, pods, on_pod

        assert await ex.set_linked_pod(ns, "u", "svc", 1, -1) is None
        steps: list[tuple[int, int, int | None, Any]] = [
            # (pod, persist, previous, (pod, expires_at, updated_at) afterwards)
            (1, -1, 1, (1, None, 1_000_001)),  # same pod, still permanent
            (2, -1, 1, (2, None, 1_000_002)),  # new pod, still permanent
            (2, 10, 2, (2, 1_010_003, 1_000_003)),  # same pod, now temporary
            (2, 20, 2, (2, 1_020_004, 1_000_004)),  # same pod, new deadline
            (3, 20, 2, (3, 1_020_005, 1_000_005)),  # new pod and deadline
            (2, -1, 3, (2, None, 1_000_006)),  # new pod, permanent again
            (2, 1, 2, (2, 1_001_007, 1_000_007)),  # dies at 1_001_007...
        ]
        for pod, persist, previous, after in steps:
            clock.advance_ms(1)
            assert await ex.set_linked_pod(ns, "u", "svc", pod, persist) == previous
            seen, pods, on_pod = await state()
            assert seen == after
            assert pods == {after[0]: 1}
            assert on_pod == (["u"] if after[0] == 2 else [])
        clock.advance_ms(1000)  # ...and is dead, its row still stored
        assert await state() == (None, {}, [])
        assert await ex.set_linked_pod(ns, "u", "svc", 2, -1) is None
        assert await state() == ((2, None, 1_001_007), {2: 1}, ["u"])


async def test_background_purge_task_deletes_expired_links(sql_url: str) -> None:
    ns, clock = _namespace(), ManualClock()
    backend = from_url(sql_url, clock=clock, table_prefix=endpoints.PREFIX, purge_interval=0.02)
    async with StatefulExecutor(backend) as ex:
        await ex.set_linked_pod(ns, "u", "svc", 1, 1)  # the first call starts the task
        clock.advance(1)
        for _ in range(200):
            if await _count_links(sql_url, ns) == 0:
                break
            await asyncio.sleep(0.02)
        assert await _count_links(sql_url, ns) == 0
    assert backend._purge_task is None  # aclose stopped it


async def test_an_application_engine_works_and_is_left_open(sql_url: str) -> None:
    """An engine built by the application (SQLAlchemy frames the transactions)."""
    engine = create_async_engine(sql_url)
    ns = _namespace()
    backend = SQLBackend(engine, table_prefix=endpoints.PREFIX)
    assert not backend.dialect.explicit
    async with StatefulExecutor(backend) as ex:
        assert await ex.set_linked_pod(ns, "u", "svc", 1, -1) is None
        assert await ex.set_linked_pod(ns, "u", "svc", 2, 60) == 1
        assert await ex.try_set_linked_pod(ns, "u", "svc", 3, -1) == (True, 3)
        assert await ex.try_set_linked_pod(ns, "u", "svc", 4, -1) == (False, 3)
        assert await ex.set_linked_pod_if_absent(ns, "v", "svc", 5, 60) == 5
        assert await ex.get_link_service(ns, "u") == {"svc": 3}
        many = [f"u{i}" for i in range(1200)]  # more than one IN list on SQLite/MariaDB
        assert await ex.batch_get_linked_pod(ns, [*many, "v", "u"], "svc") == {5: ["v"], 3: ["u"]}
        assert await ex.remove_linked_pod_with_id(ns, "u", "svc", -1, 3) is True
        await ex.set_workload_state(ns, "svc", "stable")
        assert await ex.get_workload_state(ns, [f"s{i}" for i in range(700)] + ["svc"]) == {
            "svc": "stable"
        }
        assert await backend.purge_expired() >= 0
    async with engine.connect() as conn:  # still usable: aclose did not dispose it
        assert await conn.scalar(text("SELECT 1")) == 1
    await engine.dispose()


async def test_long_batches_and_lists_take_several_statements_but_one_answer(
    sql_url: str,
) -> None:
    ns = _namespace()
    async with StatefulExecutor(from_url(sql_url, table_prefix=endpoints.PREFIX)) as ex:
        uids = [f"user {i}" for i in range(1100)]
        for i in range(0, 1100, 100):
            await ex.set_linked_pod(ns, uids[i], "svc", i % 3, -1)
        grouped = await ex.batch_get_linked_pod(ns, uids, "svc")
        assert grouped == {
            pod: [uids[i] for i in range(0, 1100, 100) if i % 3 == pod] for pod in range(3)
        }


async def test_sqlite_memory_takes_concurrent_calls_in_turn() -> None:
    async with stateful.connect("sqlite+aiosqlite://") as ex:
        results = await asyncio.gather(
            *(ex.set_linked_pod_if_absent("ns", "u", "svc", pod, -1) for pod in range(50)),
            *(ex.set_linked_pod("ns", f"u{pod}", "svc", pod, 30) for pod in range(50)),
        )
        assert len(set(results[:50])) == 1
        assert await ex.batch_get_linked_pod("ns", [f"u{p}" for p in range(50)], "svc") == {
            p: [f"u{p}"] for p in range(50)
        }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("mysql://u@h/d", "mysql+asyncmy://u@h/d?charset=utf8mb4"),
        ("mariadb+asyncmy://u@h/d?charset=utf8mb4", "mariadb+asyncmy://u@h/d?charset=utf8mb4"),
    ],
)
def test_urls_get_an_async_driver_and_a_full_unicode_charset(url: str, expected: str) -> None:
    assert normalize_url(url).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    ("url", "options", "argument"),
    [
        ("oracle+oracledb://u@h/d", {}, "url"),
        ("postgresql+psycopg2://u@h/d", {}, "url"),
        ("sqlite+aiosqlite://", {"table_prefix": "bad-prefix"}, "table_prefix"),
        ("sqlite+aiosqlite://", {"table_prefix": ""}, "table_prefix"),
        ("sqlite+aiosqlite://", {"purge_interval": 0}, "purge_interval"),
        ("sqlite+aiosqlite://", {"purge_batch_size": 0}, "purge_batch_size"),
    ],
)
def test_bad_urls_and_options_are_validation_errors(
    url: str, options: dict[str, Any], argument: str
) -> None:
    with pytest.raises(stateful.ValidationError) as caught:
        # The SQL backend's own checks. (stateful.connect first asks the registry,
        # which reports a missing psycopg2 as a missing package, not a sync driver.)
        from_url(url, **options)
    assert caught.value.argument == argument


@pytest.mark.parametrize(
    "scheme", ["postgresql+asyncpg://postgres@127.0.0.1", "mysql+asyncmy://root@127.0.0.1"]
)
async def test_an_unreachable_server_is_backend_unavailable(scheme: str) -> None:
    async with stateful.connect(f"{scheme}:{free_port()}/db") as ex:
        with pytest.raises(stateful.BackendUnavailable):
            await ex.get_linked_pod("ns", "u", "svc")


async def test_a_sqlite_file_that_cannot_be_opened_is_named(tmp_path: Any) -> None:
    missing = tmp_path / "no such dir" / "stateful.db"
    async with stateful.connect(f"sqlite+aiosqlite:///{missing}") as executor:
        with pytest.raises(stateful.BackendUnavailable) as caught:
            await executor.get_linked_pod("ns", "u", "svc")
    message = str(caught.value)
    assert str(missing) in message and "does not exist" in message, message
