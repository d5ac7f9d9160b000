"""No unbounded wait on SQL: connect and statement timeouts by default, a bounded
pool whose wait ends in `PoolExhausted`, an `aclose()` that returns within its bound
against a server that accepts connections and never answers, and 10,000 concurrent
calls on one executor."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from stateful import BackendUnavailable, PoolExhausted, StatefulExecutor
from stateful.backends.sql import from_url
from stateful.backends.sql.dialects.sqlite import SQLiteDialect, writer_lock
from tests.proxy import LoopbackProxy
from tests.sql_backend import endpoints

MARGIN = 1.0  # seconds of slack on a shared, loaded machine


class StalledServer:
    """A loopback TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        """Not listening until `start`."""
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> StalledServer:
        """Listen on a free port of 127.0.0.1."""

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)  # kept open, never answered

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close every accepted connection and the listener."""
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def stalled() -> AsyncIterator[StalledServer]:
    """A stalled server for one test."""
    server = await StalledServer().start()
    yield server
    await server.stop()


URLS = {
    "postgresql": "postgresql+asyncpg://postgres@127.0.0.1:{port}/stateful",
    "mariadb": "mysql+asyncmy://root@127.0.0.1:{port}/stateful",
}


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
async def test_calls_and_aclose_end_in_time_against_a_stalled_server(
    database: str, stalled: StalledServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = URLS[database].format(port=stalled.port)
    executor = StatefulExecutor(from_url(url), timeout=2, close_timeout=3)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        await executor.get_linked_pod("ns", "u", "svc")
    took = time.monotonic() - started
    assert 1.9 <= took <= 2 + MARGIN, took
    assert stalled.writers, "the driver never reached the stalled server"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="stateful"):
        await executor.aclose()
    took = time.monotonic() - started
    assert took <= 3 + MARGIN, took


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
async def test_aclose_drops_pooled_connections_to_a_server_that_hangs(
    database: str, request: pytest.FixtureRequest
) -> None:
    """Connections made and pooled, then the server stops answering: calls end at the
    timeout and aclose() (polite close for 2 s, then drop) stays within its bound."""
    url = make_url(
        request.getfixturevalue({"postgresql": "postgres_url", "mariadb": "mysql_url"}[database])
    )
    proxy = await LoopbackProxy(url.port or (5432 if database == "postgresql" else 3306)).start()
    try:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        executor = StatefulExecutor(
            from_url(proxied, table_prefix=endpoints.PREFIX), timeout=1, close_timeout=5
        )
        await asyncio.gather(*(executor.get_linked_pod("ns", f"u{i}", "svc") for i in range(4)))
        proxy.frozen.set()
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            await executor.get_linked_pod("ns", "u", "svc")
        assert time.monotonic() - started <= 1 + MARGIN
        started = time.monotonic()
        await executor.aclose()
        assert time.monotonic() - started <= 5 + MARGIN
    finally:
        await proxy.stop()


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
async def test_lost_pooled_connections_fail_once_then_the_pool_recovers(
    database: str, request: pytest.FixtureRequest
) -> None:
    """Every pooled connection cut: calls on them fail as BackendUnavailable (never a
    wrong answer), the broken connections are not reused, and the executor recovers."""
    url = make_url(
        request.getfixturevalue({"postgresql": "postgres_url", "mariadb": "mysql_url"}[database])
    )
    proxy = await LoopbackProxy(url.port or (5432 if database == "postgresql" else 3306)).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    ns = f"cut {uuid.uuid4()}"
    executor = StatefulExecutor(from_url(proxied, table_prefix=endpoints.PREFIX), timeout=10)
    try:
        await executor.set_linked_pod(ns, "u", "svc", 3, -1)
        await asyncio.gather(*(executor.get_linked_pod(ns, "u", "svc") for _ in range(10)))
        proxy.cut()
        results = await asyncio.gather(
            *(executor.get_linked_pod(ns, "u", "svc") for _ in range(20)),
            return_exceptions=True,
        )
        assert all(r == 3 or isinstance(r, BackendUnavailable) for r in results), results
        assert any(isinstance(r, BackendUnavailable) for r in results)
        for _ in range(20):  # each broken connection fails at most once, then is dropped
            try:
                assert await executor.get_linked_pod(ns, "u", "svc") == 3
                break
            except BackendUnavailable:
                continue
        assert [await executor.get_linked_pod(ns, "u", "svc") for _ in range(20)] == [3] * 20
    finally:
        await executor.aclose()
        await proxy.stop()


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
async def test_the_driver_timeouts_bound_a_stalled_handshake_without_executor_timeout(
    database: str, stalled: StalledServer
) -> None:
    """No executor timeout: the default driver timeouts still end the call (here set to 1 s)."""
    url = URLS[database].format(port=stalled.port)
    timeouts = (
        {"timeout": 1} if database == "postgresql" else {"connect_timeout": 1, "read_timeout": 1}
    )
    executor = StatefulExecutor(from_url(url, connect_args=timeouts))
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        await executor.get_linked_pod("ns", "u", "svc")
    assert time.monotonic() - started <= 1 + MARGIN
    started = time.monotonic()
    await executor.aclose()
    assert time.monotonic() - started <= MARGIN


def test_default_engines_bound_every_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults a user gets without asking: connect/statement timeouts, a bounded pool."""
    from stateful.backends.sql import engines

    seen: list[dict[str, Any]] = []
    real = engines.create_async_engine  # type: ignore[attr-defined]

    def spy(url: Any, **options: Any) -> Any:
        seen.append(options)
        return real(url, **options)

    monkeypatch.setattr(engines, "create_async_engine", spy)
    for url, expected in [
        ("postgresql+asyncpg://u@h/db", {"timeout": 10.0, "command_timeout": 30.0}),
        ("mysql+asyncmy://u@h/db", {"connect_timeout": 10.0, "read_timeout": 30.0}),
    ]:
        backend = from_url(url, connect_args={"command_timeout": 5} if "pg" in url else {})
        pool = backend.engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow, pool._timeout) == (10, 0, 30.0)  # type: ignore[attr-defined]
        if "pg" in url:
            expected["command_timeout"] = 5  # the user's value wins, the others stay
        assert expected.items() <= seen[-1]["connect_args"].items()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def real_url(request: pytest.FixtureRequest) -> str:
    """Each real database in turn."""
    fixture = {"sqlite": "sqlite_file_url", "postgresql": "postgres_url", "mariadb": "mysql_url"}
    url: str = request.getfixturevalue(fixture[request.param])
    return url


# These hold the engine's pool, so the write is one that always runs there
# (`set_workload_state`); the link statements of a PostgreSQL backend built
# from a URL run on its hot pool, whose bound is tested in
# test_postgres_pool_hygiene.py and test_postgres_cancel_safe.py.


async def test_pool_wait_past_pool_timeout_is_pool_exhausted(real_url: str) -> None:
    backend = from_url(
        real_url, table_prefix=endpoints.PREFIX, pool_size=1, max_overflow=0, pool_timeout=0.3
    )
    executor = StatefulExecutor(backend)
    try:
        ns = f"pool {uuid.uuid4()}"
        await executor.get_workload_state(ns, ["svc"])  # schema checked, connection pooled
        async with backend.engine.connect():  # the only connection, held
            started = time.monotonic()
            with pytest.raises(PoolExhausted, match="nothing was sent"):
                await executor.set_workload_state(ns, "svc", "stable")
            assert time.monotonic() - started < 0.3 + MARGIN
        assert await executor.get_workload_state(ns, ["svc"]) == {}  # nothing was written
    finally:
        await executor.aclose()


async def test_executor_timeout_in_the_pool_wait_is_pool_exhausted(real_url: str) -> None:
    backend = from_url(real_url, table_prefix=endpoints.PREFIX, pool_size=1, max_overflow=0)
    executor = StatefulExecutor(backend, timeout=0.5)
    ns = f"pool {uuid.uuid4()}"
    try:
        await executor.get_workload_state(ns, ["svc"])
        async with backend.engine.connect():
            with pytest.raises(PoolExhausted):
                await executor.set_workload_state(ns, "svc", "stable")
    finally:
        await executor.aclose()


async def test_a_call_that_got_pool_exhausted_never_writes_later(sqlite_file_url: str) -> None:
    backend = from_url(sqlite_file_url, table_prefix=endpoints.PREFIX, pool_size=1, max_overflow=0)
    executor = StatefulExecutor(backend, timeout=0.5)
    ns = f"pool {uuid.uuid4()}"
    try:
        await executor.get_linked_pod(ns, "u", "svc")
        async with backend.engine.connect():  # the pool's one connection
            with pytest.raises(PoolExhausted):
                await executor.set_service_state(ns, "svc", 1, "ready")
        # The link writes run on the writer connection: waiting for the
        # writers' turn is waiting for a connection too.
        assert isinstance(backend.dialect, SQLiteDialect)
        async with writer_lock(backend.dialect.database):
            with pytest.raises(PoolExhausted):
                await executor.set_linked_pod(ns, "u", "svc", 1, -1)
        await asyncio.sleep(0.2)
        assert await executor.get_service_state(ns, "svc") == {}
        assert await executor.get_linked_pod(ns, "u", "svc") is None
    finally:
        await executor.aclose()
