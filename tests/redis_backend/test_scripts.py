"""Lua scripts: documented headers, and a forgotten script cache recovered transparently."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid

from redis.asyncio import Redis

from stateful import StatefulExecutor
from stateful.backends.redis import from_url
from stateful.resources import resource_dir
from tests.redis_backend.monitor import CommandLog
from tests.redis_backend.scratch import scratch_backend
from tests.redis_backend.servers import RedisProcess

NS, SVC = "n{s}:", "s:}{"
UIDS = [f"u{i}:{{x}}" for i in range(1500)]  # more than one chunk


def _port(url: str) -> int:
    return int(url.partition("://")[2].split("/")[0].rpartition(":")[2] or 6379)


def test_every_script_documents_keys_argv_and_return() -> None:
    # files starting with "_" are preludes, sent before the scripts that use them
    scripts = sorted(p for p in resource_dir("lua").glob("*.lua") if not p.name.startswith("_"))
    assert len(scripts) == 15
    for path in scripts:
        header = path.read_text().split("]]", 1)[0]
        assert header.startswith(f"--[[ {path.stem}"), path.name
        assert re.search(r"^KEYS", header, re.M), path.name
        assert re.search(r"^ARGV|no ARGV", header, re.M), path.name
        assert re.search(r"^Returns", header, re.M), path.name


async def _flush_scripts(ports: list[int]) -> None:
    for port in ports:
        async with Redis(host="127.0.0.1", port=port) as admin:
            await admin.script_flush()


async def _exercise_after_flushes(executor: StatefulExecutor, ports: list[int]) -> None:
    """Every kind of script call, each right after the servers forgot every script."""
    await _flush_scripts(ports)
    assert await executor.set_linked_pod(NS, UIDS[0], SVC, 7, -1) is None
    await _flush_scripts(ports)
    assert await executor.get_linked_pod(NS, UIDS[0], SVC) == 7
    await _flush_scripts(ports)
    await executor.set_linked_pod(NS, UIDS[1], SVC, 8, 60)
    await _flush_scripts(ports)
    # The pipelined path: every chunk meets NOSCRIPT and is re-sent as EVAL.
    assert await executor.batch_get_linked_pod(NS, UIDS, SVC) == {7: [UIDS[0]], 8: [UIDS[1]]}
    await _flush_scripts(ports)
    assert await executor.remove_linked_pod(NS, UIDS[0], SVC, 0)
    await _flush_scripts(ports)
    await executor.set_workload_state(NS, SVC, "stable")
    assert await executor.get_workload_state(NS, [SVC]) == {SVC: "stable"}
    await _flush_scripts(ports)
    await executor.set_service_state(NS, SVC, 8, "ready", ttl_seconds=60)
    await _flush_scripts(ports)
    assert await executor.get_service_state(NS, SVC) == {8: "ready"}
    await _flush_scripts(ports)
    assert await executor.place_linked_pod(NS, UIDS[2], SVC, -1) == 8
    await _flush_scripts(ports)
    assert [uid async for uid in executor.pod_links(NS, SVC, 8)] == sorted(UIDS[1:3])
    await _flush_scripts(ports)
    assert await executor.count_pod_links(NS, SVC) == {8: 2}
    await _flush_scripts(ports)
    info = await executor.get_link_info(NS, UIDS[2], SVC)
    assert info is not None and info.pod_id == 8 and info.permanent
    await _flush_scripts(ports)
    assert await executor.remove_pod_links(NS, SVC, 8, 0) == 2
    await _flush_scripts(ports)
    assert await executor.remove_service_state(NS, SVC, 8) is True


async def test_flushed_script_cache_is_recovered_standalone(redis_url: str) -> None:
    async with StatefulExecutor(scratch_backend(redis_url)) as executor:
        await _exercise_after_flushes(executor, [_port(redis_url)])


async def test_flushed_script_cache_is_recovered_on_a_cluster(
    redis_cluster_url: str, redis_cluster_ports: list[int]
) -> None:
    async with StatefulExecutor(scratch_backend(redis_cluster_url)) as executor:
        await _exercise_after_flushes(executor, redis_cluster_ports)


async def test_recovery_costs_one_extra_command_once(redis_url: str) -> None:
    name = f"stateful-flush-{uuid.uuid4().hex[:8]}"
    ports = [_port(redis_url)]
    async with (
        StatefulExecutor(scratch_backend(redis_url, client_name=name)) as executor,
        CommandLog(ports, name) as log,
    ):
        await executor.set_linked_pod(NS, "u", SVC, 1, -1)
        await log.take()
        await _flush_scripts(ports)
        assert await executor.set_linked_pod(NS, "u", SVC, 2, -1) == 1
        assert [c.name for c in await log.take()] == ["EVALSHA", "EVAL"]
        assert await executor.set_linked_pod(NS, "u", SVC, 3, -1) == 2
        assert [c.name for c in await log.take()] == ["EVALSHA"]


async def test_server_restart_is_recovered(private_redis: RedisProcess) -> None:
    """A restarted server has lost its scripts and its connections; the call still succeeds."""
    async with StatefulExecutor(from_url(private_redis.url, prefix="p:")) as executor:
        await executor.set_linked_pod(NS, "u", SVC, 1, -1)
        private_redis.restart()  # nothing persisted: the store is empty again
        # A live application's loop sees the old connections close while they
        # sit in the pool (the checkout then reconnects); restart() blocked this
        # loop, so let it look once. A connection that breaks after a command
        # was sent is reported as unknown instead (test_client_resend.py).
        await asyncio.sleep(0.05)
        assert await executor.set_linked_pod(NS, "u", SVC, 2, -1) is None
        assert await executor.batch_get_linked_pod(NS, ["u", "v"], SVC) == {2: ["u"]}


LUA = resource_dir("lua")

def test_link_scripts_are_sent_with_the_shared_prelude() -> None:
    from stateful.backends.redis import scripts

    prelude = (LUA / "_links.lua").read_bytes()
    linked = scripts.load("set_linked_pod", prelude="_links")
    assert linked.source.startswith(prelude)
    assert linked.source.endswith((LUA / "set_linked_pod.lua").read_bytes())
    assert linked.sha == hashlib.sha1(linked.source, usedforsecurity=False).hexdigest()
    assert scripts.load("set_state").source == (LUA / "set_state.lua").read_bytes()
