"""``stateful pod ...``: the users of a pod, the load of every pod, and draining a pod."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stateful.cli.output import OK, Output
from stateful.executor import StatefulExecutor


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``pod`` group to the top-level subcommands."""
    group = commands.add_parser(
        "pod",
        help="see who is on a pod, the load of each pod, and drain a pod",
        description="See the users of a pod and the load of every pod, and drain a pod.",
    )
    pods = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    links = pods.add_parser(
        "links", parents=[common], help="list the uids linked to a pod, one per line"
    )
    count = pods.add_parser(
        "count", parents=[common], help="list each pod's state and number of live links"
    )
    drain = pods.add_parser(
        "drain", parents=[common], help="remove every link to a pod (users get placed again)"
    )
    for parser in (links, count, drain):
        parser.add_argument("namespace", metavar="NS")
        parser.add_argument("service", metavar="SERVICE")
    for parser in (links, drain):
        parser.add_argument("pod", metavar="POD", type=int)
    links.add_argument(
        "--page-size", type=int, default=1000, help="uids fetched per round trip (default 1000)"
    )
    drain.add_argument(
        "--keep",
        type=int,
        default=0,
        metavar="SECONDS",
        help="keep each link SECONDS more as a temporary one instead of deleting it",
    )
    links.set_defaults(handler=pod_links)
    count.set_defaults(handler=count_links)
    drain.set_defaults(handler=drain_pod)


async def pod_links(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Stream the pod's uids as they arrive: memory stays bounded for any number of links."""
    uids = ex.pod_links(args.namespace, args.service, args.pod, page_size=args.page_size)
    if not out.as_json:
        async for uid in uids:
            out.line(uid)
        return OK
    # One JSON array, written element by element rather than built in memory.
    separator = "["
    async for uid in uids:
        out.out.write(separator + json.dumps(uid, ensure_ascii=False))
        separator = ","
    out.out.write("[]\n" if separator == "[" else "]\n")
    return OK


async def count_links(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Print every pod that has a live state or live links, with both."""
    states = await ex.get_service_state(args.namespace, args.service)
    counts = await ex.count_pod_links(args.namespace, args.service)
    pods = sorted({*states, *counts})
    if out.as_json:
        out.json([{"pod": p, "state": states.get(p), "links": counts.get(p, 0)} for p in pods])
    elif pods:
        out.table(
            ["pod", "state", "links"], [[p, states.get(p, "-"), counts.get(p, 0)] for p in pods]
        )
        linked = len(counts)
        out.note(f"{sum(counts.values())} live links on {linked} pod{'' if linked == 1 else 's'}")
    else:
        out.note(f"{args.service!r} has no pod with a live state or a live link")
    return OK


async def drain_pod(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Remove every link to the pod (each only if it still points there); print how many."""
    removed = await ex.remove_pod_links(args.namespace, args.service, args.pod, args.keep)
    if out.as_json:
        out.json({"removed": removed})
    else:
        kept = f" (kept {args.keep}s for a reconnect)" if args.keep > 0 else ""
        out.line(f"removed {removed} links to {args.service} pod {args.pod}{kept}")
    return OK
