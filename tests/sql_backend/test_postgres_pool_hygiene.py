"""PostgreSQL: what each call sends, and the pools it leaves behind.

The engine runs in AUTOCOMMIT with no reset on return to the pool
(`engines.create_engine`): a lone statement is its own transaction, and
nothing is rolled back at checkin. The hot pool (`hot_pool.HotPool`, which
a backend built by `from_url` runs its lone link statements on) resets
nothing either. That is only safe if no path returns a connection with a
transaction open, cancellation included; these tests hold the backend (no
executor shield in between) to both, over both pools:

* a lone statement costs exactly one query on its connection: no ``BEGIN``,
  ``COMMIT`` or ``ROLLBACK`` around it, none at checkin; a transaction of two
  statements costs those two plus ``BEGIN`` and ``COMMIT``;
* calls cancelled at random instants, or while they wait for a row lock,
  leave every pooled connection outside any transaction, the server with no
  session of the pool idle in a transaction, and the store before or after
  each call (a transaction cancelled before its ``COMMIT``: before).

The query count is asyncpg's own (``queries_count``, which its pool uses to
retire connections): one per statement or simple-query string sent.

The hot pool itself: it is used only for an engine the backend built, its
sessions are set up as the engine's, it is bounded (`PoolExhausted`, nothing
sent) and `aclose` drops it within its bound with calls still in flight.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from stateful import PoolExhausted
from stateful.backends.sql import SQLBackend, build_tables, from_url
from stateful.backends.sql.backend import CLOSE_GRACE
from stateful.backends.sql.engines import create_engine
from stateful.backends.sql.keys import link_key
from stateful.clock import ManualClock
from tests.sql_backend import endpoints
from tests.sql_backend.scratch import empty_backend

NS, SVC = "hygiene", "svc"

#: The pool's sessions are found on the server by this application name.
_APP = f"hygiene-{uuid.uuid4().hex[:8]}"


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


#: The two ways a backend gets its engine: built from the URL (``"hot"``: the
#: lone link statements run on the hot pool), or an engine the application
#: built (``"engine"``: everything on the engine's pool).
POOLS = ("hot", "engine")


def make_backend(postgres_url: str, pools: str, **options: Any) -> SQLBackend:
    """A backend of two connections per pool, its sessions named `_APP`, on ``pools``."""
    options = {
        "pool_size": 2,
        "pool_timeout": 5,
        "connect_args": {"server_settings": {"application_name": _APP}},
        **options,
    }
    if pools == "hot":
        made = from_url(postgres_url, clock=ManualClock(), table_prefix=endpoints.PREFIX, **options)
        assert made.hot_pool is not None
        return made
    engine = create_engine(postgres_url, **options)
    return SQLBackend(
        engine, clock=ManualClock(), table_prefix=endpoints.PREFIX, dispose_engine=True
    )


@pytest.fixture(params=POOLS)
async def backend(postgres_url: str, request: pytest.FixtureRequest) -> AsyncIterator[SQLBackend]:
    """A PostgreSQL backend of two connections per pool over an empty store."""
    emptied = await empty_backend(postgres_url, ManualClock())
    await emptied.aclose()
    made = make_backend(postgres_url, request.param)
    yield made
    await made.aclose()


async def _pooled(backend: SQLBackend) -> list[Any]:
    """The asyncpg connections both pools hold now (checked in)."""
    # SQLAlchemy's queue of checked-in records wraps an asyncio.Queue.
    records = list(backend.engine.sync_engine.pool._pool._queue._queue)  # type: ignore[attr-defined]
    # A record whose connection was dropped reconnects on its next checkout.
    engine = [r.driver_connection for r in records if r.driver_connection is not None]
    hot = backend.hot_pool
    return engine + (hot.idle_connections() if hot is not None else [])


async def _queries(backend: SQLBackend) -> int:
    """Queries sent so far on the pool's connections."""
    return sum(conn._protocol.queries_count for conn in await _pooled(backend))


async def _sessions(postgres_url: str) -> list[tuple[str, str]]:
    """``(state, query)`` of the server sessions the backend's pool opened."""
    conn = await asyncpg.connect(_dsn(postgres_url))
    try:
        rows = await conn.fetch(
            "SELECT state, query FROM pg_stat_activity WHERE application_name = $1", _APP
        )
    finally:
        await conn.close()
    return [(row["state"], row["query"]) for row in rows]


async def _assert_clean(backend: SQLBackend, postgres_url: str) -> None:
    """No pooled connection in a transaction or closed; no busy session; no row locked."""
    for conn in await _pooled(backend):
        assert not conn.is_closed()
        assert not conn.is_in_transaction()
    hot = backend.hot_pool
    if hot is not None:
        # Once a shielded write still in flight is over: nothing held, and
        # every slot accounted for (a slot lost on some path would shrink the
        # pool for good).
        for _ in range(100):
            if hot.in_use == 0:
                break
            await asyncio.sleep(0.05)
        assert hot.in_use == 0
        assert hot.opened == len(hot.idle_connections()) <= hot.size
    for state, query in await _settled(postgres_url):
        assert state == "idle", (state, query)
    # Every row can be locked at once: nothing holds a lock.
    conn = await asyncpg.connect(_dsn(postgres_url))
    try:
        async with conn.transaction():
            table = build_tables(endpoints.PREFIX).links.name
            await conn.execute(f"SELECT 1 FROM {table} FOR UPDATE NOWAIT")
    finally:
        await conn.close()


async def _settled(postgres_url: str) -> list[tuple[str, str]]:
    """Sessions of the pool, once those of dropped connections have ended."""
    sessions = await _sessions(postgres_url)
    for _ in range(100):
        if all(state == "idle" for state, _ in sessions):
            break
        await asyncio.sleep(0.05)
        sessions = await _sessions(postgres_url)
    return sessions


async def test_a_lone_statement_is_one_query_and_a_transaction_is_framed(
    backend: SQLBackend,
) -> None:
    await backend.set_linked_pod(NS, "warm", SVC, 1, 600)
    lone: dict[str, Callable[[], Awaitable[Any]]] = {
        "get_linked_pod": lambda: backend.get_linked_pod(NS, "u", SVC),
        "get_linked_pod_if_persist": lambda: backend.get_linked_pod_if_persist(NS, "u", SVC),
        "get_link_info": lambda: backend.get_link_info(NS, "u", SVC),
        "set_linked_pod": lambda: backend.set_linked_pod(NS, "u", SVC, 2, -1),
        "try_set_linked_pod": lambda: backend.try_set_linked_pod(NS, "u", SVC, 2, -1),
        "set_linked_pod_if_absent": lambda: backend.set_linked_pod_if_absent(NS, "u", SVC, 3, -1),
        "place_linked_pod": lambda: backend.place_linked_pod(NS, "t", SVC, 60, None),
        "remove_linked_pod": lambda: backend.remove_linked_pod(NS, "t", SVC, 0),
        "batch_get_linked_pod": lambda: backend.batch_get_linked_pod(NS, ["u", "t", "v"], SVC),
        "get_link_service": lambda: backend.get_link_service(NS, "u"),
        "set_service_state": lambda: backend.set_service_state(NS, SVC, 1, "ready", None),
        "get_service_state": lambda: backend.get_service_state(NS, SVC),
        "set_workload_state": lambda: backend.set_workload_state(NS, SVC, "stable"),
        "get_workload_state": lambda: backend.get_workload_state(NS, [SVC]),
    }
    for name, call in lone.items():
        await call()  # statements prepared, connection opened
        before = await _queries(backend)
        await call()
        assert await _queries(backend) - before == 1, name
    # Two statements: BEGIN, the page's keys, the removal, COMMIT.
    for i in range(3):
        await backend.set_linked_pod(NS, f"p{i}", SVC, 7, -1)
    await backend.remove_pod_links_page(NS, SVC, 7, 0, None, 2)
    before = await _queries(backend)
    removed, _ = await backend.remove_pod_links_page(NS, SVC, 7, 0, None, 2)
    assert removed == 1
    assert await _queries(backend) - before == 4
    for conn in await _pooled(backend):
        assert not conn.is_in_transaction()


async def test_calls_cancelled_at_random_leave_a_clean_pool(
    backend: SQLBackend, postgres_url: str
) -> None:
    rng = random.Random(9)
    uids = [f"c{i}" for i in range(4)]
    calls: list[Callable[[str], Awaitable[Any]]] = [
        lambda uid: backend.set_linked_pod(NS, uid, SVC, rng.randrange(8), -1),
        lambda uid: backend.try_set_linked_pod(NS, uid, SVC, rng.randrange(8), 60),
        lambda uid: backend.set_linked_pod_if_absent(NS, uid, SVC, rng.randrange(8), -1),
        lambda uid: backend.get_linked_pod(NS, uid, SVC),
        lambda uid: backend.remove_linked_pod(NS, uid, SVC, 0),
        lambda uid: backend.remove_pod_links_page(NS, SVC, rng.randrange(8), 0, None, 2),
    ]
    cancelled = 0
    for _ in range(25):
        tasks = [asyncio.ensure_future(rng.choice(calls)(rng.choice(uids))) for _ in range(6)]
        loop = asyncio.get_running_loop()
        for task in tasks:
            loop.call_later(rng.choice((0, 0.0002, 0.0005, 0.001, 0.003)), task.cancel)
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, asyncio.CancelledError):
                cancelled += 1
            elif isinstance(outcome, BaseException):
                raise outcome
    assert cancelled > 10
    await _assert_clean(backend, postgres_url)
    for uid in uids:
        await backend.set_linked_pod(NS, uid, SVC, 1, -1)
        assert await backend.get_linked_pod(NS, uid, SVC) == 1


async def test_calls_cancelled_while_waiting_for_a_row_lock(
    backend: SQLBackend, postgres_url: str
) -> None:
    await backend.set_linked_pod(NS, "locked", SVC, 5, -1)
    table = build_tables(endpoints.PREFIX).links.name
    holder = await asyncpg.connect(_dsn(postgres_url))
    try:
        await holder.execute("BEGIN")
        await holder.execute(
            f"SELECT 1 FROM {table} WHERE link_key = $1 FOR UPDATE",
            link_key(NS, "locked", SVC),
        )
        lone = asyncio.ensure_future(backend.set_linked_pod(NS, "locked", SVC, 6, -1))
        framed = asyncio.ensure_future(backend.remove_pod_links_page(NS, SVC, 5, 0, None, 10))
        await asyncio.sleep(0.3)
        assert not lone.done() and not framed.done()
        lone.cancel()
        framed.cancel()
        for task in (lone, framed):
            with pytest.raises(asyncio.CancelledError):
                await task
        for conn in await _pooled(backend):
            assert not conn.is_in_transaction()
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    for state, query in await _settled(postgres_url):
        assert state == "idle", (state, query)
    # The removal never committed; the lone overwrite is its own transaction,
    # which the server may still have run once the lock was free: before or after.
    assert await backend.get_linked_pod(NS, "locked", SVC) in (5, 6)


async def _hold_row_lock(
    postgres_url: str, uid: str, namespace: str = NS
) -> asyncpg.Connection:
    """A connection holding the row lock of ``uid``'s link (inside a transaction)."""
    holder = await asyncpg.connect(_dsn(postgres_url))
    await holder.execute("BEGIN")
    table = build_tables(endpoints.PREFIX).links.name
    await holder.execute(
        f"SELECT 1 FROM {table} WHERE link_key = $1 FOR UPDATE", link_key(namespace, uid, SVC)
    )
    return holder


async def _fresh(postgres_url: str, **options: Any) -> SQLBackend:
    emptied = await empty_backend(postgres_url, ManualClock())
    await emptied.aclose()
    return make_backend(postgres_url, "hot", **options)


async def test_the_hot_pool_is_only_for_an_engine_the_backend_built(postgres_url: str) -> None:
    from sqlalchemy.pool import NullPool

    built = from_url(postgres_url, pool_size=3, pool_timeout=7, connect_args={"timeout": 4})
    own = SQLBackend(create_engine(postgres_url), table_prefix=endpoints.PREFIX)
    unpooled = from_url(postgres_url, poolclass=NullPool)
    try:
        hot = built.hot_pool
        assert hot is not None
        assert (hot.size, hot.timeout) == (3, 7)
        params = hot.connect_params
        # The engine's connect arguments: the URL's, then connect_args over the defaults.
        assert params["timeout"] == 4 and params["command_timeout"] == 30
        assert params["host"] == "127.0.0.1"
        assert own.hot_pool is None
        assert unpooled.hot_pool is None
        # The application's engine: every statement on its pool.
        await own.set_linked_pod(NS, "own", SVC, 4, -1)
        assert await own.get_linked_pod(NS, "own", SVC) == 4
        assert own.engine.sync_engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    finally:
        for made in (built, own, unpooled):
            await made.aclose()
        await own.engine.dispose()


async def test_hot_sessions_are_set_up_as_the_engines(postgres_url: str) -> None:
    backend = await _fresh(postgres_url)
    settings = "SELECT name, setting FROM pg_settings ORDER BY name"
    try:
        await backend.get_linked_pod(NS, "u", SVC)
        hot = backend.hot_pool
        assert hot is not None
        (conn,) = hot.idle_connections()
        hot_settings = [tuple(row) for row in await conn.fetch(settings)]
        async with backend.engine.connect() as engine_conn:
            rows = await engine_conn.exec_driver_sql(settings)
            engine_settings = [tuple(row) for row in rows]
        assert dict(hot_settings)["application_name"] == _APP
        assert hot_settings == engine_settings
        # Autocommit: a statement leaves no transaction open behind it.
        assert not conn.is_in_transaction()
    finally:
        await backend.aclose()


async def test_an_exhausted_hot_pool_sends_nothing(postgres_url: str) -> None:
    backend = await _fresh(postgres_url, pool_timeout=0.3)
    await backend.set_linked_pod(NS, "held", SVC, 1, -1)
    holder = await _hold_row_lock(postgres_url, "held")
    try:
        # Both hot connections wait for the row lock.
        blocked = [
            asyncio.ensure_future(backend.set_linked_pod(NS, "held", SVC, pod, -1))
            for pod in (2, 3)
        ]
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in blocked)
        started = time.monotonic()
        with pytest.raises(PoolExhausted, match="nothing was sent"):
            await backend.set_linked_pod(NS, "late", SVC, 9, -1)
        assert 0.25 < time.monotonic() - started < 2
        with pytest.raises(PoolExhausted):
            await backend.get_linked_pod(NS, "held", SVC)
        # The engine's pool has a bound of its own and still serves the rest.
        info = await backend.get_link_info(NS, "held", SVC)
        assert info is not None and info.pod_id == 1
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    try:
        assert {await task for task in blocked} <= {1, 2, 3}
        assert await backend.get_linked_pod(NS, "late", SVC) is None
        await _assert_clean(backend, postgres_url)
    finally:
        await backend.aclose()


async def test_aclose_drops_the_hot_pool_in_its_bound_with_calls_in_flight(
    postgres_url: str,
) -> None:
    backend = await _fresh(postgres_url)
    await backend.set_linked_pod(NS, "stuck", SVC, 1, -1)
    await backend.get_link_info(NS, "stuck", SVC)  # an idle connection in the engine's pool
    hot = backend.hot_pool
    assert hot is not None
    holder = await _hold_row_lock(postgres_url, "stuck")
    try:
        stuck = [
            asyncio.ensure_future(backend.set_linked_pod(NS, "stuck", SVC, pod, -1))
            for pod in (2, 3)
        ]
        await asyncio.sleep(0.3)
        assert hot.in_use == 2
        started = time.monotonic()
        await backend.aclose()
        took = time.monotonic() - started
        # The polite close waits for the calls for CLOSE_GRACE, then drops them.
        assert CLOSE_GRACE - 0.1 < took < CLOSE_GRACE + 1
        for outcome in await asyncio.gather(*stuck, return_exceptions=True):
            assert isinstance(outcome, ConnectionError), outcome
        assert hot.in_use == 0 and hot.idle_connections() == []
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    # Every session of both pools ends (a dropped one once its lock wait is over).
    for _ in range(100):
        if not await _sessions(postgres_url):
            break
        await asyncio.sleep(0.05)
    assert await _sessions(postgres_url) == []


async def test_aclose_cancelled_drops_the_hot_pool_at_once(postgres_url: str) -> None:
    backend = await _fresh(postgres_url)
    await backend.set_linked_pod(NS, "stuck", SVC, 1, -1)
    hot = backend.hot_pool
    assert hot is not None
    holder = await _hold_row_lock(postgres_url, "stuck")
    try:
        stuck = asyncio.ensure_future(backend.set_linked_pod(NS, "stuck", SVC, 2, -1))
        await asyncio.sleep(0.3)
        closing = asyncio.ensure_future(backend.aclose())
        await asyncio.sleep(0.1)
        started = time.monotonic()
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        assert time.monotonic() - started < 0.5
        with pytest.raises(ConnectionError):
            await stuck
        assert hot.in_use == 0 and hot.idle_connections() == []
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()


async def test_a_hot_connection_killed_while_idle_is_not_used(postgres_url: str) -> None:
    backend = await _fresh(postgres_url)
    try:
        await backend.set_linked_pod(NS, "k", SVC, 1, -1)
        hot = backend.hot_pool
        assert hot is not None
        (conn,) = hot.idle_connections()
        admin = await asyncpg.connect(_dsn(postgres_url))
        try:
            assert await admin.fetchval(
                "SELECT pg_terminate_backend($1)", conn.get_server_pid()
            )
        finally:
            await admin.close()
        for _ in range(100):
            if conn.is_closed():
                break
            await asyncio.sleep(0.01)
        # asyncpg saw the server hang up: the next call opens a new connection.
        assert await backend.get_linked_pod(NS, "k", SVC) == 1
        (fresh,) = hot.idle_connections()
        assert fresh is not conn
    finally:
        await backend.aclose()


async def test_a_connect_whose_caller_left_joins_the_pool(postgres_url: str) -> None:
    backend = await _fresh(postgres_url)
    try:
        await backend.get_link_info(NS, "u", SVC)  # schema checked: the next call connects
        hot = backend.hot_pool
        assert hot is not None and hot.opened == 0
        call = asyncio.ensure_future(backend.get_linked_pod(NS, "u", SVC))
        await asyncio.sleep(0)  # the call is now opening the pool's first connection
        assert hot.opened == 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        for _ in range(100):
            if hot.idle_connections():
                break
            await asyncio.sleep(0.01)
        (conn,) = hot.idle_connections()
        assert hot.opened == 1 and hot.in_use == 0
        assert await backend.get_linked_pod(NS, "u", SVC) is None
        assert hot.idle_connections() == [conn]
    finally:
        await backend.aclose()
