"""A script whose reply is lost is never sent again: its answer would describe a second run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from stateful import BackendUnavailable, StatefulExecutor
from stateful.backends.redis.backend import _SET_LINKED_POD
from stateful.backends.redis.client import (
    BoundedRedisCluster,
    CancelSafeConnection,
    ScriptOutcomeUnknown,
    _connections,
)
from tests.proxy import LoopbackProxy
from tests.redis_backend.scratch import scratch_backend


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LoopbackProxy]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    running = await LoopbackProxy(port).start()
    yield running
    await running.stop()


async def test_a_write_whose_reply_is_lost_is_reported_unknown_not_answered_twice(
    proxy: LoopbackProxy,
) -> None:
    ex = StatefulExecutor(scratch_backend(f"redis://127.0.0.1:{proxy.port}/0"))
    try:
        assert await ex.set_linked_pod("ns", "u", "svc", 1, -1) is None
        proxy.cut_next_reply = True
        # Sent again after the lost reply, the script would answer 2 (its own
        # first run) where the truth before this call was 1.
        with pytest.raises(BackendUnavailable):
            await ex.set_linked_pod("ns", "u", "svc", 2, -1)
        assert proxy.replies_cut == 1
        assert await ex.get_linked_pod("ns", "u", "svc") == 2  # it ran once, and recovered
        assert await ex.set_linked_pod("ns", "u", "svc", 3, -1) == 2
    finally:
        await ex.aclose()


#: What the link-writing script is sent as (not the pod index steps around it).
_LINK_SCRIPT = _SET_LINKED_POD.sha.encode()


class _Breaks(CancelSafeConnection):
    """A cluster connection that can lose the link script's reply, or fail its send."""

    lose_next_reply = False
    fail_next_send = False
    armed = False

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        is_link_script = _LINK_SCRIPT in b"".join(command)
        if is_link_script and type(self).fail_next_send:
            type(self).fail_next_send = False
            await self.disconnect(nowait=True)
            raise RedisConnectionError("send failed (test)")
        await super().send_packed_command(command, check_health)
        self.armed = is_link_script and type(self).lose_next_reply

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = await super().read_response(*args, **kwargs)
        if self.armed:
            # The server ran the script and answered; the answer never arrives.
            type(self).lose_next_reply = self.armed = False
            await self.disconnect(nowait=True)
            raise RedisConnectionError("reply lost (test)")
        return reply


def _breakable_cluster(url: str) -> StatefulExecutor:
    backend = scratch_backend(url)
    client = backend.client
    assert isinstance(client, BoundedRedisCluster)
    # A cluster URL takes no connection_class: swap it in before the first call
    # (the nodes are made from these kwargs when the client discovers the cluster).
    client.nodes_manager.connection_kwargs["connection_class"] = _Breaks
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = _Breaks
    return StatefulExecutor(backend)


async def test_a_cluster_script_whose_reply_is_lost_is_not_sent_again(
    redis_cluster_url: str,
) -> None:
    # redis-py's cluster client retries a command whose connection broke (it
    # follows failovers that way); a script that already ran would then run on
    # the promoted replica again. Seen under a master kill as set_linked_pod
    # answering its own pod as the previous one.
    ex = _breakable_cluster(redis_cluster_url)
    try:
        assert await ex.set_linked_pod("ns", "u", "svc", 1, -1) is None
        _Breaks.lose_next_reply = True
        with pytest.raises(BackendUnavailable) as caught:
            await ex.set_linked_pod("ns", "u", "svc", 2, -1)
        assert not _Breaks.lose_next_reply
        assert isinstance(caught.value.__cause__, ScriptOutcomeUnknown)
        assert await ex.get_linked_pod("ns", "u", "svc") == 2  # it ran once
        assert await ex.set_linked_pod("ns", "u", "svc", 3, -1) == 2
    finally:
        _Breaks.lose_next_reply = False
        await ex.aclose()


async def test_a_cluster_script_whose_send_failed_is_sent_again(redis_cluster_url: str) -> None:
    ex = _breakable_cluster(redis_cluster_url)
    try:
        assert await ex.set_linked_pod("ns", "u", "svc", 1, -1) is None
        _Breaks.fail_next_send = True
        # Nothing reached the server: redis-py's retry is safe and keeps the call alive.
        assert await ex.set_linked_pod("ns", "u", "svc", 2, -1) == 1
        assert not _Breaks.fail_next_send
        assert await ex.get_linked_pod("ns", "u", "svc") == 2
    finally:
        _Breaks.fail_next_send = False
        await ex.aclose()


async def test_a_cluster_connection_the_server_closed_is_replaced_before_a_script(
    redis_cluster_url: str,
) -> None:
    # Written into a connection the server has closed (a restarted or killed
    # node), a script would fail only at its reply, outcome unknown; it must go
    # out on a new connection instead.
    ex = _breakable_cluster(redis_cluster_url)
    try:
        assert await ex.set_linked_pod("ns", "u", "svc", 1, -1) is None
        client = ex.backend.client  # type: ignore[attr-defined]
        closed = 0
        for connection in _connections(client):
            if connection.is_connected:
                await connection.send_command("CLIENT", "ID")
                own_id = await connection.read_response()
                await connection.send_command("CLIENT", "KILL", "ID", own_id, "SKIPME", "no")
                assert await connection.read_response() == 1
                closed += 1
        assert closed
        await asyncio.sleep(0.05)  # the client sees the server close them
        assert await ex.set_linked_pod("ns", "u", "svc", 2, -1) == 1
        assert await ex.get_linked_pod("ns", "u", "svc") == 2
    finally:
        await ex.aclose()
