"""Every operation, stateful against the raw driver, at each concurrency: the table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stateful.bench.measure import Call, Comparison, compare
from stateful.bench.targets import NS, SVC, WORKLOADS, Target

PODS = 8
BATCH = 100
BIG_BATCH = 10_000


@dataclass(frozen=True)
class Case:
    """One row family of the table: a stateful operation and its raw equivalent."""

    name: str
    raw_name: str
    ours: Call
    raw: Call


def _uid(i: int) -> str:
    return f"user-{i}"


def cases(t: Target, links: int) -> dict[str, Case]:
    """Build the cases over ``links`` preloaded uids (both sides hold the same links)."""
    ex = t.ex
    uids = [_uid(i) for i in range(links)]
    batch = uids[:BATCH]
    big = uids[:BIG_BATCH]

    def u(i: int) -> str:
        return uids[i % links]

    def moved(write: Callable[[str, int], Awaitable[object]]) -> Call:
        # Each call links its uid to the pod after the one it last got, so
        # every write moves the link (and updates the pod index).
        last: dict[int, int] = {}

        def call(i: int) -> Awaitable[object]:
            k = i % links
            pod = last[k] = (last.get(k, k % PODS) + 1) % PODS
            return write(uids[k], pod)

        return call

    found: list[Case] = [
        Case("get_linked_pod", "get",
             lambda i: ex.get_linked_pod(NS, u(i), SVC), lambda i: t.raw_get(u(i))),
        Case("get_linked_pod_if_persist", "get",
             lambda i: ex.get_linked_pod_if_persist(NS, u(i), SVC), lambda i: t.raw_get(u(i))),
        Case("set_linked_pod", "set",
             lambda i: ex.set_linked_pod(NS, u(i), SVC, i % PODS, -1),
             lambda i: t.raw_set(u(i), i % PODS)),
        Case("set_linked_pod (new pod)", "set",
             moved(lambda uid, pod: ex.set_linked_pod(NS, uid, SVC, pod, -1)),
             moved(t.raw_set)),
        Case("try_set_linked_pod", "set",
             lambda i: ex.try_set_linked_pod(NS, u(i), SVC, i % PODS, -1),
             lambda i: t.raw_set(u(i), i % PODS)),
        Case("set_linked_pod_if_absent", "set if absent",
             lambda i: ex.set_linked_pod_if_absent(NS, u(i), SVC, i % PODS, -1),
             lambda i: t.raw_set_nx(u(i), i % PODS)),
        # persist 60 keeps the link (temporary), so every call finds one to act on.
        Case("remove_linked_pod (keep 60 s)", "expire",
             lambda i: ex.remove_linked_pod(NS, u(i), SVC, 60),
             lambda i: t.raw_expire(u(i), 60)),
        Case("remove_linked_pod_with_id (keep 60 s)", "expire",
             lambda i: ex.remove_linked_pod_with_id(NS, u(i), SVC, 60, i % PODS),
             lambda i: t.raw_expire(u(i), 60)),
        Case(f"batch_get_linked_pod ({BATCH})", f"batch read {BATCH}",
             lambda i: ex.batch_get_linked_pod(NS, batch, SVC), lambda i: t.raw_batch(batch)),
        Case("get_link_service", "owner read",
             lambda i: ex.get_link_service(NS, u(i)), lambda i: t.raw_owner(u(i))),
        Case("set_service_state", "state write",
             lambda i: ex.set_service_state(NS, SVC, i % PODS, "ready"),
             lambda i: t.raw_set_state(i % PODS, "ready")),
        Case("get_service_state", "states read",
             lambda i: ex.get_service_state(NS, SVC), lambda i: t.raw_get_states()),
        Case("set_workload_state", "state write",
             lambda i: ex.set_workload_state(NS, SVC, "stable"),
             lambda i: t.raw_set_workload("stable")),
        Case("get_workload_state", "states read",
             lambda i: ex.get_workload_state(NS, WORKLOADS),
             lambda i: t.raw_get_workloads(WORKLOADS)),
    ]
    if links >= BIG_BATCH:
        found.append(Case(
            f"batch_get_linked_pod ({BIG_BATCH})", f"batch read {BIG_BATCH}",
            lambda i: ex.batch_get_linked_pod(NS, big, SVC), lambda i: t.raw_batch(big)))
    found += [
        Case("set_service_state (ttl 30 s)", "state write",
             lambda i: ex.set_service_state(NS, SVC, i % PODS, "ready", ttl_seconds=30),
             lambda i: t.raw_set_state(i % PODS, "ready")),
        Case("get_link_info", "get",
             lambda i: ex.get_link_info(NS, u(i), SVC), lambda i: t.raw_get(u(i))),
        # The router's hot path: the user is already linked, so placement keeps it.
        Case("place_linked_pod (linked user)", "set if absent",
             lambda i: ex.place_linked_pod(NS, u(i), SVC, -1),
             lambda i: t.raw_set_nx(u(i), i % PODS)),
    ]
    return {case.name: case for case in found}


def op_names(t: Target, links: int) -> list[str]:
    """Names of the cases available on ``t`` (for ``--ops`` and the docs)."""
    return list(cases(t, links))


async def preload(t: Target, links: int, concurrency: int = 32) -> None:
    """Give both sides the same ``links`` permanent links and ``PODS`` ready pods."""
    # One call on each side first: redis-py's cluster client fails calls that
    # race its first topology discovery ("Connection closed by server").
    await t.ex.set_linked_pod(NS, _uid(0), SVC, 0, -1)
    await t.raw_set(_uid(0), 0)
    queue = iter(range(1, links))

    async def worker() -> None:
        for i in queue:
            await t.ex.set_linked_pod(NS, _uid(i), SVC, i % PODS, -1)
            await t.raw_set(_uid(i), i % PODS)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    for pod in range(PODS):
        await t.ex.set_service_state(NS, SVC, pod, "ready")
        await t.raw_set_state(pod, "ready")
    await t.ex.set_workload_state(NS, SVC, "stable")
    await t.raw_set_workload("stable")


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    case: Case
    concurrency: int
    result: Comparison


async def run(
    t: Target,
    *,
    ops: list[str] | None,
    concurrencies: list[int],
    seconds: float,
    rounds: int,
    links: int,
    emit: Callable[[str], None],
) -> list[Row]:
    """Measure the chosen cases at each concurrency; emit the markdown table as it goes."""
    await preload(t, links)
    table = cases(t, links)
    chosen = ops or list(table)
    unknown = [name for name in chosen if name not in table]
    if unknown:
        raise ValueError(f"unknown operations {unknown}; available: {', '.join(table)}")
    emit(f"| {t.kind}: operation | raw ({t.raw_label}) | concurrency "
         "| stateful ops/s | raw ops/s | ratio | round spread |")
    emit("|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for name in chosen:
        case = table[name]
        for c in concurrencies:
            result = await compare(
                case.ours, case.raw, concurrency=c, seconds=seconds, rounds=rounds
            )
            rows.append(Row(case, c, result))
            emit(f"| {case.name} | {case.raw_name} | {c} | {result.ours:,.0f} "
                 f"| {result.raw:,.0f} | {result.ratio:.2f} | ±{result.spread:.0%} |")
    return rows
