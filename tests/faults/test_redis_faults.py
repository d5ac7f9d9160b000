"""Redis faults under a checked load, on servers these tests spawn (never a shared one).

Each test keeps `tests.faults.load.Load` running on one executor while the
fault is injected, then proves: only `BackendUnavailable` while it lasted, no
wrong answer, no acknowledged write lost, and the same executor answering
again by itself. Every test prints its figures (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import stateful
from stateful import StatefulExecutor
from tests.faults.load import scaled, under_fault
from tests.redis_backend.servers import (
    AOF_ALWAYS,
    RedisClusterProcesses,
    RedisProcess,
    SentinelProcesses,
    redis_server_binary,
)
from tests.support import server_missing

#: Limit per operation: a call to a dead or moving server ends with BackendUnavailable.
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def aof_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One spawned server for the module, writing an AOF with ``appendfsync always``."""
    if redis_server_binary() is None:
        server_missing("the Redis fault tests spawn redis-server, which is not on PATH")
    server = RedisProcess(tmp_path_factory.mktemp("redis-aof"), *AOF_ALWAYS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def executor(aof_redis: RedisProcess) -> AsyncIterator[StatefulExecutor]:
    """An executor on the module's server."""
    async with stateful.connect(aof_redis.url, timeout=TIMEOUT) as ex:
        yield ex


async def test_kill_9_and_restart_with_aof_loses_no_acknowledged_write(
    aof_redis: RedisProcess, executor: StatefulExecutor
) -> None:
    downtimes: list[float] = []

    async def kill_and_restart() -> None:
        aof_redis.kill()
        killed = time.monotonic()
        await asyncio.sleep(0.3)  # the load meets a dead server
        await asyncio.to_thread(aof_redis.start)
        downtimes.append(time.monotonic() - killed)

    figures = await under_fault(
        executor, "redis kill -9 + AOF restart", kill_and_restart, rounds=scaled(2, 10)
    )
    print(f"[faults] redis kill -9: seconds down {[round(d, 2) for d in downtimes]}")
    assert figures.failed > 0, "the load never met the dead server: the fault was not injected"


async def test_client_kill_of_the_pools_connections(
    aof_redis: RedisProcess, executor: StatefulExecutor
) -> None:
    killed: list[int] = []

    async def client_kill() -> None:
        def kill() -> None:
            with aof_redis.client() as admin:
                # Every normal client but this one: only the executor's pool is connected.
                killed.append(
                    int(admin.execute_command("CLIENT KILL", "TYPE", "normal", "SKIPME", "yes"))
                )

        await asyncio.to_thread(kill)

    # Many short rounds and many calls in flight: a connection killed between
    # the server running a script and the reply reaching the client is a
    # narrow window.
    await under_fault(
        executor, "redis CLIENT KILL", client_kill, rounds=scaled(15, 60), settle=0.2,
        workers=64,
    )
    print(f"[faults] redis CLIENT KILL: connections killed per round {killed}")
    assert sum(killed) > 0, "no connection of the pool was killed: the fault was not injected"


async def test_script_flush_is_recovered_transparently(
    aof_redis: RedisProcess, executor: StatefulExecutor
) -> None:
    async def script_flush() -> None:
        def flush() -> None:
            with aof_redis.client() as admin:
                admin.script_flush()

        await asyncio.to_thread(flush)

    figures = await under_fault(
        executor, "redis SCRIPT FLUSH", script_flush, rounds=scaled(5, 30), settle=0.3
    )
    # The contract: a flushed script cache is recovered without the caller noticing.
    assert figures.failed == 0, figures.line()


async def test_cluster_master_killed_its_replica_takes_over(tmp_path: Path) -> None:
    if redis_server_binary() is None:
        server_missing("the cluster failover test spawns redis-server, which is not on PATH")
    cluster = await asyncio.to_thread(
        RedisClusterProcesses,
        tmp_path / "cluster",
        3,
        replicas=1,
        node_timeout_ms=1000,
        # A killed node restarted without its data would come back empty.
        extra=AOF_ALWAYS,
    )
    restarts: list[asyncio.Task[None]] = []
    try:
        promoted: list[float] = []

        async def kill_a_master() -> None:
            await asyncio.gather(*restarts)
            await asyncio.to_thread(cluster.wait_ok)
            await asyncio.to_thread(cluster.wait_replicas_in_sync)
            victim = cluster.master_of_slot(0)
            await asyncio.to_thread(
                victim.kill_once_replicated, cluster.nodes + cluster.replicas
            )
            killed = time.monotonic()
            # The slot's replica wins an election once the master is silent for
            # node_timeout_ms; wait for that, then let the test time recovery.
            deadline = killed + 30
            while True:
                try:
                    if cluster.master_of_slot(0) is not victim:
                        break
                except Exception:  # a node mid-election may refuse
                    pass
                assert time.monotonic() < deadline, "no replica was promoted"
                await asyncio.sleep(0.05)
            promoted.append(time.monotonic() - killed)
            # The old master comes back as a replica of the new one (the next
            # round has a replica to promote again) while recovery is timed.
            restarts.append(asyncio.create_task(asyncio.to_thread(victim.start)))

        async with stateful.connect(cluster.url, timeout=TIMEOUT) as executor:
            figures = await under_fault(
                executor,
                "redis cluster master kill -9 + replica promoted",
                kill_a_master,
                # Two rounds: a script re-sent across the failover is a race,
                # and each round is another chance to catch it.
                rounds=scaled(2, 6),
                settle=2.0,
                recover_limit=30.0,
                workers=64,
            )
        # The kill is proven by the promotion; calls meeting the dead master may
        # fail or may wait for the new one (the cluster client follows it).
        print(f"[faults] redis cluster: seconds from kill to promotion {promoted}")
        assert len(promoted) == figures.faults
    finally:
        await asyncio.gather(*restarts, return_exceptions=True)
        await asyncio.to_thread(cluster.stop)


async def test_sentinel_fails_over_to_the_replica(tmp_path: Path) -> None:
    if redis_server_binary() is None:
        server_missing("the sentinel failover test spawns redis-server, which is not on PATH")
    group = await asyncio.to_thread(
        SentinelProcesses,
        tmp_path / "sentinel",
        replicas=1,
        down_after_ms=1000,
        # Without its data, the killed master, started again, is an empty
        # master until the sentinel demotes it: a deep run lost 91 writes so.
        extra=AOF_ALWAYS,
    )
    restarts: list[asyncio.Task[None]] = []
    try:
        switched: list[float] = []

        async def kill_the_master() -> None:
            await asyncio.gather(*restarts)
            await asyncio.to_thread(group.wait_replica_ready)
            before = group.master_port()
            victim = next(
                node for node in [group.master, *group.replicas] if node.port == before
            )
            await asyncio.to_thread(victim.kill_once_replicated, [group.master, *group.replicas])
            killed = time.monotonic()
            deadline = killed + 30
            while group.master_port() == before:
                assert time.monotonic() < deadline, "the sentinel did not fail over"
                await asyncio.sleep(0.05)
            switched.append(time.monotonic() - killed)
            # Back as a replica of the new master (the sentinel reconfigures
            # it) while recovery is timed.
            restarts.append(asyncio.create_task(asyncio.to_thread(victim.start)))

        async with stateful.connect(group.url, timeout=TIMEOUT) as executor:
            figures = await under_fault(
                executor,
                "redis sentinel master kill -9 + failover",
                kill_the_master,
                rounds=scaled(1, 3),
                settle=2.0,
                recover_limit=30.0,
            )
        print(f"[faults] redis sentinel: seconds from kill to failover {switched}")
        assert len(switched) == figures.faults
    finally:
        await asyncio.gather(*restarts, return_exceptions=True)
        await asyncio.to_thread(group.stop)
