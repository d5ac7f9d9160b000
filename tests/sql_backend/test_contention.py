"""Races on the same links from many tasks over several engines: one winner each time.

Every round, ``TASKS`` tasks spread over ``ENGINES`` backends (each with its
own engine and connection pool) call the same operation on the same link at
once. Whatever the interleaving, the answers must be those of some serial
order: one `try_set_linked_pod` wins and every loser reports the winner's
pod; every `set_linked_pod_if_absent` returns the same pod; one
`remove_linked_pod_with_id` removes; the previous pods that racing
`set_linked_pod` calls report form one chain. On SQLite this also proves that
writers queue instead of failing with "database is locked".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from stateful import StatefulExecutor
from stateful.backends.sql import SQLBackend, from_url
from tests.sql_backend import endpoints

ENGINES = 4
TASKS = 16
ROUNDS = 12
SERVICE = "svc:{x}"


@pytest.fixture
async def executors(sql_url: str) -> AsyncIterator[list[StatefulExecutor]]:
    """``ENGINES`` executors over the same database, each with its own engine."""
    group = [
        StatefulExecutor(from_url(sql_url, table_prefix=endpoints.PREFIX)) for _ in range(ENGINES)
    ]
    yield group
    await asyncio.gather(*(executor.aclose() for executor in group))


def _retries(executors: list[StatefulExecutor]) -> int:
    return sum(e.backend.retries for e in executors if isinstance(e.backend, SQLBackend))


async def test_racing_link_operations_have_exactly_one_winner(
    executors: list[StatefulExecutor], sql_url: str
) -> None:
    namespace = f"race-{uuid.uuid4()}"
    pods = list(range(100, 100 + TASKS))
    first = executors[0]

    def spread(i: int) -> StatefulExecutor:
        return executors[i % ENGINES]

    started = time.perf_counter()
    for round_ in range(ROUNDS):
        uid = f"user {round_} É"

        # try_set_linked_pod: one permanent link wins, losers see its pod.
        tried = await asyncio.gather(
            *(
                spread(i).try_set_linked_pod(namespace, uid, SERVICE, pod, -1)
                for i, pod in enumerate(pods)
            )
        )
        winners = [pod for ok, pod in tried if ok]
        assert len(winners) == 1, tried
        (winner,) = winners
        assert all(pod == winner for _, pod in tried), tried
        assert await first.get_linked_pod(namespace, uid, SERVICE) == winner

        # remove_linked_pod_with_id: half ask with the winner's pod, half with another.
        other = pods[0] if winner != pods[0] else pods[1]
        removed = await asyncio.gather(
            *(
                spread(i).remove_linked_pod_with_id(
                    namespace, uid, SERVICE, 0, winner if i % 2 == 0 else other
                )
                for i in range(TASKS)
            )
        )
        assert sum(removed) == 1, removed
        assert all(not ok for i, ok in enumerate(removed) if i % 2 == 1)
        assert await first.get_linked_pod(namespace, uid, SERVICE) is None

        # set_linked_pod_if_absent: everybody gets the pod of the one that created it.
        absent_uid = f"{uid} absent"
        kept = await asyncio.gather(
            *(
                spread(i).set_linked_pod_if_absent(namespace, absent_uid, SERVICE, pod, 60)
                for i, pod in enumerate(pods)
            )
        )
        assert len(set(kept)) == 1 and kept[0] in pods, kept
        assert await first.get_linked_pod(namespace, absent_uid, SERVICE) == kept[0]

        # set_linked_pod: the previous pods reported form one chain of all the writes.
        chain_uid = f"{uid} chain"
        previous = await asyncio.gather(
            *(
                spread(i).set_linked_pod(namespace, chain_uid, SERVICE, pod, -1)
                for i, pod in enumerate(pods)
            )
        )
        assert previous.count(None) == 1, previous
        reported = [pod for pod in previous if pod is not None]
        assert len(set(reported)) == len(reported) == TASKS - 1, previous
        (last,) = set(pods) - set(reported)
        assert await first.get_linked_pod(namespace, chain_uid, SERVICE) == last

    elapsed = time.perf_counter() - started
    calls = ROUNDS * TASKS * 4
    print(
        f"\n{sql_url.partition(':')[0]}: {ROUNDS} rounds x 4 races x {TASKS} tasks over "
        f"{ENGINES} engines = {calls} racing calls in {elapsed:.2f} s; "
        f"exactly one winner every time; {_retries(executors)} transactions retried"
    )
