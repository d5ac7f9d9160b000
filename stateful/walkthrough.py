"""A short routing walk-through: what a router of a stateful service does with the store.

Run it with ``stateful demo [URL]`` (default: a SQLite file in the current folder).
"""

from __future__ import annotations

import stateful

NAMESPACE = "demo"
SERVICE = "game"
USERS = ["alice", "bob", "carol", "dave"]
PERSIST_WINDOW_S = 30  # a user who reconnects within 30 s returns to the same pod
HEARTBEAT_S = 30  # a pod state not renewed within 30 s is gone: the pod is taken as dead


async def route(ex: stateful.StatefulExecutor, uid: str) -> int:
    """Return the pod for ``uid``: its linked pod, else the least-loaded ready pod.

    `place_linked_pod` keeps a user on the pod it is linked to; a new user
    goes to the ready pod with the fewest users, and two routers placing the
    same user at once both get the pod stored first.
    """
    pod = await ex.place_linked_pod(NAMESPACE, uid, SERVICE, -1)
    if pod is None:
        raise RuntimeError(f"no ready pod of {SERVICE!r}")
    return pod


async def walkthrough(url: str) -> None:
    """Walk through routing users to pods of a game service on the store at ``url``."""
    print(f"store: {url}")
    async with stateful.connect(url, timeout=5.0) as ex:
        for uid in USERS:  # start from a clean slate when re-run on the same store
            await ex.remove_linked_pod(NAMESPACE, uid, SERVICE, 0)

        print(f"1. three pods of 'game' come up and heartbeat every {HEARTBEAT_S // 3} s")
        for pod in range(3):
            await ex.set_service_state(NAMESPACE, SERVICE, pod, "ready", ttl_seconds=HEARTBEAT_S)
        await ex.set_workload_state(NAMESPACE, SERVICE, "stable")
        print(f"   pods: {await ex.get_service_state(NAMESPACE, SERVICE)}")

        print("2. users connect and are placed on the least-loaded pod; each stays there")
        for uid in USERS:
            first, again = await route(ex, uid), await route(ex, uid)
            assert first == again
            print(f"   {uid} -> pod {first}")
        print(f"   users per pod: {await ex.count_pod_links(NAMESPACE, SERVICE)}")

        print(f"3. bob disconnects; his link is kept {PERSIST_WINDOW_S} s for a reconnect")
        bob_pod = await ex.get_linked_pod(NAMESPACE, "bob", SERVICE)
        await ex.remove_linked_pod(NAMESPACE, "bob", SERVICE, PERSIST_WINDOW_S)
        info = await ex.get_link_info(NAMESPACE, "bob", SERVICE)
        assert info is not None and info.expires_at_ms is not None
        print(f"   bob's link: pod {info.pod_id}, temporary: {not info.permanent}")
        back = await route(ex, "bob")
        print(f"   bob reconnects -> pod {back} (was {bob_pod})")

        print("4. pod 1 drains before a deploy: its users are moved")
        await ex.set_workload_state(NAMESPACE, SERVICE, "updating")
        await ex.set_service_state(NAMESPACE, SERVICE, 1, "draining", ttl_seconds=HEARTBEAT_S)
        on_pod_1 = sorted([uid async for uid in ex.pod_links(NAMESPACE, SERVICE, 1)])
        print(f"   on pod 1: {on_pod_1}")
        removed = await ex.remove_pod_links(NAMESPACE, SERVICE, 1, 0)
        print(f"   links removed: {removed}")
        for uid in on_pod_1:
            print(f"   {uid} -> pod {await route(ex, uid)}")
        await ex.remove_service_state(NAMESPACE, SERVICE, 1)  # scaled down
        await ex.set_workload_state(NAMESPACE, SERVICE, "stable")
        print(f"   pods: {await ex.get_service_state(NAMESPACE, SERVICE)}")

        print("5. where is alice, across services?")
        await ex.set_linked_pod(NAMESPACE, "alice", "chat", 7, -1)
        links = await ex.get_link_service(NAMESPACE, "alice")
        print(f"   alice: {dict(sorted(links.items()))}")
        states = await ex.get_workload_state(NAMESPACE, [SERVICE, "chat"])
        print(f"   workload states: {states}")
    print("done")
