"""A short routing walk-through: what a router of a stateful service does with the store.

Run it with ``stateful demo [URL]`` (default: a SQLite file in the current folder).
"""

from __future__ import annotations

import stateful

NAMESPACE = "demo"
SERVICE = "game"
USERS = ["alice", "bob", "carol", "dave"]
PERSIST_WINDOW_S = 30  # a user who reconnects within 30 s returns to the same pod


async def route(ex: stateful.StatefulExecutor, uid: str) -> int:
    """Return the pod for ``uid``: its linked pod, else a ready pod chosen now.

    `set_linked_pod_if_absent` makes the choice race-free: if two routers pick
    different pods for the same user at once, both get the one stored first.
    """
    pod = await ex.get_linked_pod(NAMESPACE, uid, SERVICE)
    if pod is not None:
        return pod
    states = await ex.get_service_state(NAMESPACE, SERVICE)
    ready = sorted(p for p, state in states.items() if state == "ready")
    if not ready:
        raise RuntimeError(f"no ready pod of {SERVICE!r}")
    # Any stable choice works here; a real router might pick the least-loaded pod.
    choice = ready[sum(uid.encode()) % len(ready)]
    return await ex.set_linked_pod_if_absent(NAMESPACE, uid, SERVICE, choice, -1)


async def walkthrough(url: str) -> None:
    """Walk through routing users to pods of a game service on the store at ``url``."""
    print(f"store: {url}")
    async with stateful.connect(url, timeout=5.0) as ex:
        for uid in USERS:  # start from a clean slate when re-run on the same store
            await ex.remove_linked_pod(NAMESPACE, uid, SERVICE, 0)

        print("1. three pods of 'game' come up; the service is stable")
        for pod in range(3):
            await ex.set_service_state(NAMESPACE, SERVICE, pod, "ready")
        await ex.set_workload_state(NAMESPACE, SERVICE, "stable")
        print(f"   pods: {await ex.get_service_state(NAMESPACE, SERVICE)}")

        print("2. users connect and are routed; each stays on its pod")
        for uid in USERS:
            first, again = await route(ex, uid), await route(ex, uid)
            assert first == again
            print(f"   {uid} -> pod {first}")

        print(f"3. bob disconnects; his link is kept {PERSIST_WINDOW_S} s for a reconnect")
        bob_pod = await ex.get_linked_pod(NAMESPACE, "bob", SERVICE)
        await ex.remove_linked_pod(NAMESPACE, "bob", SERVICE, PERSIST_WINDOW_S)
        permanent = await ex.get_linked_pod_if_persist(NAMESPACE, "bob", SERVICE)
        print(f"   permanent link now: {permanent}")
        back = await route(ex, "bob")
        print(f"   bob reconnects -> pod {back} (was {bob_pod})")
        await ex.set_linked_pod(NAMESPACE, "bob", SERVICE, back, -1)

        print("4. pod 1 starts draining: find its users and move them")
        await ex.set_workload_state(NAMESPACE, SERVICE, "updating")
        await ex.set_service_state(NAMESPACE, SERVICE, 1, "draining")
        by_pod = await ex.batch_get_linked_pod(NAMESPACE, USERS, SERVICE)
        print(f"   users by pod: {by_pod}")
        for uid in by_pod.get(1, []):
            # only if still on pod 1: another router may have moved the user already
            if await ex.remove_linked_pod_with_id(NAMESPACE, uid, SERVICE, 0, 1):
                print(f"   {uid} moved -> pod {await route(ex, uid)}")
        await ex.set_workload_state(NAMESPACE, SERVICE, "stable")

        print("5. where is alice, across services?")
        await ex.set_linked_pod(NAMESPACE, "alice", "chat", 7, -1)
        links = await ex.get_link_service(NAMESPACE, "alice")
        print(f"   alice: {dict(sorted(links.items()))}")
        states = await ex.get_workload_state(NAMESPACE, [SERVICE, "chat"])
        print(f"   workload states: {states}")
    print("done")
