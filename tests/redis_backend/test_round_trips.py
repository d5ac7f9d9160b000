"""The round-trip budget: what Redis receives for each operation.

Single-key operations must cost exactly one command (one round trip); batch
reads one command per chunk of at most 1,000 keys (on a cluster, per hash
slot), all in one pipeline. Counted with MONITOR (see `monitor.CommandLog`)
and, for round trips, by counting the client's socket writes. Run with ``-s``
to see the table.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection

from stateful import StatefulExecutor
from stateful.backends.redis import CHUNK, RedisBackend
from stateful.backends.redis.client import _CancelSafeSend
from tests.redis_backend.monitor import CommandLog, Received
from tests.redis_backend.scratch import scratch_backend

NS, UID, SVC = "ns:{1}", "u:{2} é", "svc%3A"
MANY = 2500  # more than two chunks

Operation = Callable[[StatefulExecutor], Awaitable[Any]]

OPERATIONS: list[tuple[str, Operation]] = [
    ("set_service_state", lambda ex: ex.set_service_state(NS, SVC, 1, "ready")),
    ("get_service_state", lambda ex: ex.get_service_state(NS, SVC)),
    ("set_workload_state", lambda ex: ex.set_workload_state(NS, SVC, "stable")),
    ("get_workload_state", lambda ex: ex.get_workload_state(NS, [SVC, "b", "c"])),
    ("set_service_state (heartbeat)",
     lambda ex: ex.set_service_state(NS, SVC, 2, "ready", ttl_seconds=30)),
    ("remove_service_state", lambda ex: ex.remove_service_state(NS, SVC, 2)),
    ("set_linked_pod", lambda ex: ex.set_linked_pod(NS, UID, SVC, 3, -1)),
    ("get_link_info", lambda ex: ex.get_link_info(NS, UID, SVC)),
    ("place_linked_pod (linked)", lambda ex: ex.place_linked_pod(NS, UID, SVC, -1)),
    ("pod_links", lambda ex: _collect(ex.pod_links(NS, SVC, 3))),
    ("count_pod_links", lambda ex: ex.count_pod_links(NS, SVC)),
    ("try_set_linked_pod", lambda ex: ex.try_set_linked_pod(NS, UID, SVC, 4, 60)),
    ("set_linked_pod_if_absent", lambda ex: ex.set_linked_pod_if_absent(NS, UID, SVC, 5, 60)),
    ("get_linked_pod", lambda ex: ex.get_linked_pod(NS, UID, SVC)),
    ("get_linked_pod_if_persist", lambda ex: ex.get_linked_pod_if_persist(NS, UID, SVC)),
    ("batch_get_linked_pod", lambda ex: ex.batch_get_linked_pod(NS, [UID, "x", "y"], SVC)),
    ("remove_linked_pod", lambda ex: ex.remove_linked_pod(NS, UID, SVC, 30)),
    ("remove_linked_pod_with_id", lambda ex: ex.remove_linked_pod_with_id(NS, UID, SVC, 0, 3)),
    ("get_link_service", lambda ex: ex.get_link_service(NS, UID)),
    ("set_linked_pod (relink)", lambda ex: ex.set_linked_pod(NS, UID, SVC, 3, 60)),
    ("remove_pod_links", lambda ex: ex.remove_pod_links(NS, SVC, 3, 0)),
]
SINGLE_KEY = {name for name, _ in OPERATIONS} - {
    "batch_get_linked_pod", "get_workload_state", "count_pod_links", "remove_pod_links"
}
# (count_pod_links is one command on a standalone server, a walk on a cluster.)
#: On a cluster a write that may move a link keeps the pod index in other
#: steps (index_add before, index_drop after); what each write sends there in
#: this sequence (the link is created, kept, made temporary, deleted).
CLUSTER_WRITES = {
    "set_linked_pod": ["EVALSHA", "EVALSHA"],  # index_add, link (created)
    "try_set_linked_pod": ["EVALSHA"],  # refused: a permanent link to 3
    "set_linked_pod_if_absent": ["EVALSHA"],  # kept
    "place_linked_pod (linked)": ["EVALSHA"],  # kept
    "remove_linked_pod": ["EVALSHA"],  # made temporary, same pod
    "remove_linked_pod_with_id": ["EVALSHA", "EVALSHA"],  # deleted, index_drop
    "set_linked_pod (relink)": ["EVALSHA", "EVALSHA"],  # index_add, link (created)
}


async def _collect(uids: AsyncIterator[str]) -> list[str]:
    return [uid async for uid in uids]


MANY_UIDS = [f"user:{{{i}}}" for i in range(MANY)]
BATCHES: list[tuple[str, Operation]] = [
    ("get_workload_state", lambda ex: ex.get_workload_state(NS, MANY_UIDS)),
    ("batch_get_linked_pod", lambda ex: ex.batch_get_linked_pod(NS, MANY_UIDS, SVC)),
]


class SendCounter:
    """Counts socket writes (one per command or per pipeline) of all redis-py connections.

    Our URL clients use cancel-safe connection classes (`client._CancelSafeSend`)
    that may write without calling redis-py's own send: both are wrapped, and a
    send is counted once even when one calls the other.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for cls in (AbstractConnection, _CancelSafeSend):
            original = cls.__dict__["send_packed_command"]

            async def counting(
                connection: AbstractConnection, *args: Any, _original: Any = original,
                **kwargs: Any,
            ) -> None:
                outer = not getattr(connection, "_stateful_counting", False)
                if outer:
                    self.count += 1
                    connection._stateful_counting = True  # type: ignore[attr-defined]
                try:
                    await _original(connection, *args, **kwargs)
                finally:
                    if outer:
                        connection._stateful_counting = False  # type: ignore[attr-defined]

            monkeypatch.setattr(cls, "send_packed_command", counting)

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


def _describe(received: list[Received]) -> str:
    names: dict[str, int] = {}
    for command in received:
        names[command.name] = names.get(command.name, 0) + 1
    return ", ".join(f"{n} x {name}" if n > 1 else name for name, n in names.items())


def _keys_per_command(command: Received) -> int:
    if command.name in ("EVALSHA", "EVAL"):
        return int(command.args[1])
    return len(command.args) - 1  # HMGET key field…: fields; GET/HGETALL key: 0


async def _measure(
    url: str, ports: list[int], monkeypatch: pytest.MonkeyPatch, title: str
) -> dict[str, tuple[list[Received], int]]:
    name = f"stateful-rt-{uuid.uuid4().hex[:8]}"
    backend: RedisBackend = scratch_backend(url, client_name=name)
    sends = SendCounter(monkeypatch)
    results: dict[str, tuple[list[Received], int]] = {}
    async with StatefulExecutor(backend) as executor, CommandLog(ports, name) as log:
        # Warm up: open the connections (and learn the cluster layout) first.
        for _, operation in OPERATIONS + BATCHES:
            await operation(executor)
        await log.take()
        for label, operation in OPERATIONS + [(f"{n} ({MANY} keys)", op) for n, op in BATCHES]:
            sends.take()
            await operation(executor)
            count = sends.take()
            results[label] = (await log.take(), count)
    print(f"\n{title}\n| operation | commands received | socket writes | run inside the script |")
    print("|---|---|---|---|")
    for label, (received, count) in results.items():
        inner = "; ".join(" ".join(c.inner) for c in received[:1] if c.inner)
        more = " …" if len(received) > 1 and received[0].inner else ""
        print(f"| {label} | {len(received)}: {_describe(received)} | {count} | {inner}{more} |")
    return results


async def test_standalone_round_trips(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = int(redis_url.partition("://")[2].split("/")[0].rpartition(":")[2] or 6379)
    results = await _measure(redis_url, [port], monkeypatch, "standalone")
    for name in SINGLE_KEY:
        received, sends = results[name]
        assert len(received) == 1 and sends == 1, (name, received)
        assert received[0].name in ("EVALSHA", "HGET", "HGETALL"), (name, received)
    # The index is kept inside the link scripts; a page of a pod is one script.
    assert [c.name for c in results["count_pod_links"][0]] == ["EVALSHA"]
    assert [c.name for c in results["remove_pod_links"][0]] == ["EVALSHA"]
    for name in ("batch_get_linked_pod", "get_workload_state"):
        received, sends = results[name]
        assert len(received) == 1 and sends == 1, (name, received)
        received, sends = results[f"{name} ({MANY} keys)"]
        assert len(received) == -(-MANY // CHUNK) and sends == 1, (name, len(received), sends)
        assert all(_keys_per_command(c) <= CHUNK for c in received)


async def test_cluster_round_trips(
    redis_cluster_url: str, redis_cluster_ports: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = await _measure(redis_cluster_url, redis_cluster_ports, monkeypatch, "cluster")
    for name in SINGLE_KEY - {"pod_links"}:
        received, sends = results[name]
        expected = CLUSTER_WRITES.get(name, [received[0].name])
        assert [c.name for c in received] == expected and sends == len(expected), (name, received)
        assert len(expected) > 1 or received[0].name in ("EVALSHA", "HGET", "HGETALL"), name
    # A page: candidates from the index, then their links checked (one slot here).
    assert [c.name for c in results["pod_links"][0]] == ["EVALSHA", "EVALSHA"]
    # (MONITOR logs are read node by node: compare without order.)
    counted = sorted(c.name for c in results["count_pod_links"][0])
    assert counted == ["EVALSHA", "EVALSHA", "SMEMBERS"]
    # remove_pod_links: candidates, their removals, one index_drop.
    assert [c.name for c in results["remove_pod_links"][0]] == ["EVALSHA"] * 3
    # One command per hash slot touched; one pipeline write per node.
    received, sends = results[f"batch_get_linked_pod ({MANY} keys)"]
    assert all(c.name == "EVALSHA" for c in received)
    assert sends == len(redis_cluster_ports)
    assert sum(_keys_per_command(c) for c in received) == MANY
