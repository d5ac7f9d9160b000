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
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from stateful import StatefulExecutor
from stateful.backends.sql import SQLBackend, from_url
from tests.sql_backend import endpoints

ENGINES = 4
TASKS = 16
ROUNDS = 12
SERVICE = "svc:{x}"


@pytest.fixture
async def executors(sql_url: str) -> AsyncIterator[list[StatefulExecutor]]:
    """``ENGINES`` executors over the same database, each with its own engine.

    Half build their engine from the URL (the backend frames transactions in
    AUTOCOMMIT), half get one made by "the application" (SQLAlchemy frames them).
    """
    own = [create_async_engine(sql_url) for _ in range(ENGINES // 2)]
    group = [
        StatefulExecutor(from_url(sql_url, table_prefix=endpoints.PREFIX))
        for _ in range(ENGINES - len(own))
    ] + [StatefulExecutor(SQLBackend(engine, table_prefix=endpoints.PREFIX)) for engine in own]
    yield group
    await asyncio.gather(*(executor.aclose() for executor in group))
    await asyncio.gather(*(engine.dispose() for engine in own))


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


_WORKER = """
import asyncio, sys
import stateful

async def main(url, prefix, worker, rounds):
    async with stateful.connect(url, table_prefix=prefix) as ex:
        wins = 0
        for r in range(rounds):
            ok, _ = await ex.try_set_linked_pod("procs", f"u{r}", "svc", worker, -1)
            wins += ok
            await ex.set_linked_pod("procs", f"hot {r % 3}", "svc", worker, 60)
        print(wins)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


@pytest.mark.slow
def test_sqlite_writers_in_several_processes_queue_without_lock_errors(
    sqlite_file_url: str,
) -> None:
    """Processes do not share the in-process writer queue: the busy timeout must hold."""
    processes, rounds = 4, 60
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, sqlite_file_url, endpoints.PREFIX, str(w), str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(processes)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "database is locked" not in err
    # Every round had exactly one winner across the processes.
    assert sum(int(out) for out, _ in outputs) == rounds
