"""Concurrent histories on every backend: several processes, one hot set of keys, all checked.

Each round, every client (about 8 on each key) makes random link operations
on a few hot keys of a fresh namespace, with the store's clock held still;
the merged history of all processes must be linearizable. The memory backend
runs its clients as tasks of one process; the others as several processes,
each with its own executors and connections.

Figures are printed (``pytest -s`` shows them). Longer runs:
``STATEFUL_RELIABILITY=deep`` (or ``HYPOTHESIS_PROFILE=deep``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import stateful
from stateful import ManualClock, StatefulExecutor
from stateful.backends.memory import MemoryBackend
from stateful.testing.history import History, HistoryRecorder
from stateful.testing.linearizability import check_history
from tests.reliability.conftest import Target, scale
from tests.reliability.workload import START_MS, Plan, plan_for, prepare, round_time, run_client

REPO = Path(__file__).resolve().parents[2]
PROCESSES = 4
CLIENTS_PER_PROCESS = 2  # 8 clients, every one on every hot key
CHILD_LIMIT_S = 120.0


def peak_overlap(history: History) -> int:
    """The most calls on one link in flight at the same instant (answered calls only)."""
    peak = 0
    by_key: dict[object, list[tuple[int, int]]] = {}
    for op in history:
        if op.key is not None and op.returned_ns is not None:
            by_key.setdefault(op.key, []).extend([(op.invoked_ns, 1), (op.returned_ns, -1)])
    for events in by_key.values():
        running = 0
        for _, change in sorted(events, key=lambda e: (e[0], e[1])):
            running += change
            peak = max(peak, running)
    return peak


def _check_run(backend: str, rounds: list[History], saved: Path, min_overlap: int = 1) -> None:
    """Check the run's rounds as one history: each operation carries its clock reading."""
    history = History.merge(rounds)
    overlap = peak_overlap(history)
    assert overlap >= min_overlap, f"{backend}: calls barely overlapped (peak {overlap})"
    result = check_history(history, budget_s=30.0)
    if not result.ok:
        saved.write_text(history.to_json())
        raise AssertionError(f"{backend} (history in {saved}):\n{result}")
    # Teeth: the same history with one answer altered (a pod nobody ever
    # used) must be rejected, or the check above proved nothing.
    altered = next(
        i
        for i, op in enumerate(history.operations)
        if op.name == "set_linked_pod_if_absent" and op.outcome == "ok"
    )
    forged = list(history.operations)
    forged[altered] = replace(forged[altered], result=99)
    verdict = check_history(History(forged), budget_s=30.0, minimise=False).verdict
    assert verdict == "violation", f"{backend}: a forged answer was not caught ({verdict})"
    counts = history.counts()
    print(
        f"\n[histories] {backend}: 1 history of {len(rounds)} rounds "
        "(clock held still in each; the last one quiet reads), "
        f"{result.operations} operations on {result.keys} keys checked linearizable in "
        f"{result.elapsed_s:.2f} s (ok {counts['ok']}, maybe {counts['maybe']}, "
        f"error {counts['error']}); peak {overlap} calls in flight on one link"
    )


async def quiet_reads(executor: StatefulExecutor, clock: ManualClock, plan: Plan) -> History:
    """Read every link, the counts and the pod walks once no call runs; check they agree.

    `count_pod_links` is exact when no write runs concurrently (SPEC), so it
    must match the links read one by one; the reads join the checked history.
    """
    history = History()
    reader = HistoryRecorder(executor, client="quiet", history=history, clock=clock)
    for svc in plan.services:
        pods: dict[int, list[str]] = {}
        for uid in plan.uids:
            info = await reader.call("get_link_info", plan.namespace, uid, svc)
            if info is not None:
                pods.setdefault(info.pod_id, []).append(uid)
        counts = await reader.call("count_pod_links", plan.namespace, svc)
        assert counts == {pod: len(uids) for pod, uids in pods.items()}, (svc, counts, pods)
        for pod in plan.pods:
            walked = await reader.call("pod_links", plan.namespace, svc, pod, page_size=1)
            assert sorted(walked) == sorted(pods.get(pod, [])), (svc, pod, walked)
    return history


async def test_memory_histories_are_linearizable(tmp_path: Path) -> None:
    rounds, ops = scale(4, 30), scale(40, 60)
    clock = ManualClock(START_MS)
    executor = StatefulExecutor(MemoryBackend(clock=clock))
    histories = []
    plan = plan_for(f"mem-{uuid.uuid4().hex[:8]}")
    try:
        for round_no in range(rounds):
            clock.advance_ms(round_time(round_no) - clock.now_ms())
            history = History()
            await prepare(
                HistoryRecorder(executor, client="prep", history=history, clock=clock), plan
            )
            clients = [
                HistoryRecorder(executor, client=f"c{c}", history=history, clock=clock)
                for c in range(8)
            ]
            await asyncio.gather(
                *(run_client(rec, plan, f"{c}-{round_no}", ops) for c, rec in enumerate(clients))
            )
            histories.append(history)
        histories.append(await quiet_reads(executor, clock, plan))
    finally:
        await executor.aclose()
    _check_run("memory", histories, tmp_path / "history.json")


async def run_processes(
    target: Target, tmp_path: Path, base: str, rounds: int, ops: int
) -> list[History]:
    """Run the workload in `PROCESSES` child processes; return the merged history of each round."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    children = []
    for process in range(PROCESSES):
        config = {
            "url": target.url,
            "options": target.options,
            "process": process,
            "processes": PROCESSES,
            "executors": 2,
            "clients": CLIENTS_PER_PROCESS,
            "rounds": rounds,
            "ops": ops,
            "seed": base,
            "base": base,
            "barrier": str(barrier),
        }
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.reliability.workload",
                json.dumps(config),
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    try:
        async with asyncio.timeout(CHILD_LIMIT_S):
            outputs = await asyncio.gather(*(child.communicate() for child in children))
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    per_round: list[list[History]] = [[] for _ in range(rounds)]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, f"child failed ({child.returncode}):\n{err.decode()[-3000:]}"
        for round_no, text in enumerate(json.loads(out)["rounds"]):
            per_round[round_no].append(History.from_json(text))
    return [History.merge(parts) for parts in per_round]


async def test_histories_across_processes_are_linearizable(target: Target, tmp_path: Path) -> None:
    rounds, ops = scale(3, 20), scale(30, 60)
    started = time.monotonic()
    base = f"h-{uuid.uuid4().hex[:8]}"
    histories = await run_processes(target, tmp_path, base, rounds, ops)
    for history in histories:
        clients = {op.client for op in history if not op.client.endswith("prep")}
        assert len(clients) == PROCESSES * CLIENTS_PER_PROCESS
        assert history.counts()["ok"] > len(history) // 2, "most calls must succeed"
    clock = ManualClock(round_time(rounds - 1))
    async with stateful.connect(target.url, clock=clock, **target.options) as executor:
        histories.append(await quiet_reads(executor, clock, plan_for(base)))
    _check_run(f"{target.name} ({PROCESSES} processes)", histories, tmp_path / "history.json", 3)
    print(f"[histories] {target.name}: {time.monotonic() - started:.1f} s")
