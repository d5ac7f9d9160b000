"""One clock per store: PostgreSQL and MariaDB read the database server's clock by
default, so application servers whose clocks disagree still agree on what is live;
SQLite reads the system clock; an explicit clock still wins."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import select

from stateful import ManualClock, StatefulExecutor
from stateful.backends.sql import SQLBackend, from_url
from tests.sql_backend import endpoints

TEN_MINUTES_NS = 600 * 10**9


class ProcessClock:
    """Shifts `time.time_ns` (what `SystemClock` reads) while one "app server" runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Patch `time.time_ns` to the real time plus `skew_ns`."""
        real = time.time_ns
        self.skew_ns = 0
        monkeypatch.setattr(time, "time_ns", lambda: real() + self.skew_ns)


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    """The databases with a server clock."""
    url: str = request.getfixturevalue(
        {"postgresql": "postgres_url", "mariadb": "mysql_url"}[request.param]
    )
    return url


async def _server_now(backend: SQLBackend) -> int:
    async with backend.engine.connect() as conn:
        return int((await conn.execute(select(backend.dialect.server_now()))).scalar_one())


async def test_app_servers_with_skewed_clocks_agree(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = ProcessClock(monkeypatch)
    a = StatefulExecutor(from_url(server_url, table_prefix=endpoints.PREFIX))
    b = StatefulExecutor(from_url(server_url, table_prefix=endpoints.PREFIX))
    ns = f"clock {uuid.uuid4()}"
    try:
        process.skew_ns = 0  # app server A, on time
        await a.set_linked_pod(ns, "u", "svc", 1, 60)
        await a.set_service_state(ns, "svc", 0, "ready", ttl_seconds=60)
        process.skew_ns = TEN_MINUTES_NS  # app server B, ten minutes ahead
        assert await b.get_linked_pod(ns, "u", "svc") == 1
        assert await b.get_service_state(ns, "svc") == {0: "ready"}
        assert await b.count_pod_links(ns, "svc") == {1: 1}
        await b.set_linked_pod(ns, "v", "svc", 2, 1)
        process.skew_ns = -TEN_MINUTES_NS  # A, now ten minutes behind
        assert await a.get_linked_pod(ns, "v", "svc") == 2
        info = await a.get_link_info(ns, "v", "svc")
        assert info is not None and info.expires_at_ms is not None
        assert info.expires_at_ms - info.updated_at_ms == 1000
        # Times are the server's: far from both skewed process clocks.
        server_now = await _server_now(a._backend)  # type: ignore[arg-type]
        assert abs(info.updated_at_ms - server_now) < 5_000
        await asyncio.sleep(1.2)  # v expires on the server's clock, for both
        assert await a.get_linked_pod(ns, "v", "svc") is None
        process.skew_ns = TEN_MINUTES_NS
        assert await b.get_linked_pod(ns, "v", "svc") is None
        assert await b.get_linked_pod(ns, "u", "svc") == 1
    finally:
        await a.aclose()
        await b.aclose()


async def test_sqlite_follows_the_system_clock(
    sqlite_file_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: on SQLite the same skew does decide liveness (one machine, one clock)."""
    process = ProcessClock(monkeypatch)
    ns = f"clock {uuid.uuid4()}"
    async with StatefulExecutor(from_url(sqlite_file_url, table_prefix=endpoints.PREFIX)) as ex:
        await ex.set_linked_pod(ns, "u", "svc", 1, 60)
        process.skew_ns = TEN_MINUTES_NS
        assert await ex.get_linked_pod(ns, "u", "svc") is None


async def test_an_explicit_clock_wins_over_the_server_clock(server_url: str) -> None:
    clock = ManualClock(start_ms=1_000_000)  # 1970: far from the server's clock
    ns = f"clock {uuid.uuid4()}"
    async with StatefulExecutor(
        from_url(server_url, table_prefix=endpoints.PREFIX, clock=clock)
    ) as ex:
        await ex.set_linked_pod(ns, "u", "svc", 1, 5)
        info = await ex.get_link_info(ns, "u", "svc")
        assert info is not None and (info.updated_at_ms, info.expires_at_ms) == (
            1_000_000,
            1_005_000,
        )
        clock.advance(5)
        assert await ex.get_linked_pod(ns, "u", "svc") is None
