"""``stateful state ...`` and ``stateful workload ...``: pod states and workload states."""

from __future__ import annotations

import argparse
from typing import Any

from stateful.cli.output import NOT_FOUND, OK, CommandFailed, Output, ttl_words
from stateful.executor import StatefulExecutor


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``state`` and ``workload`` groups to the top-level subcommands."""
    group = commands.add_parser(
        "state",
        help="read and set the states of the pods of a service",
        description="Read and set the states (e.g. ready, draining) of the pods of a service.",
    )
    states = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = states.add_parser("get", parents=[common], help="list the pods that have a live state")
    get.set_defaults(handler=get_states)
    set_ = states.add_parser("set", parents=[common], help="set the state of a pod")
    remove = states.add_parser("remove", parents=[common], help="remove the state of a pod")
    for parser in (get, set_, remove):
        parser.add_argument("namespace", metavar="NS")
        parser.add_argument("service", metavar="SERVICE")
    for parser in (set_, remove):
        parser.add_argument("pod", metavar="POD", type=int)
    set_.add_argument("state", metavar="STATE")
    set_.add_argument(
        "--ttl", type=int, metavar="SECONDS", help="the state expires unless set again (heartbeat)"
    )
    set_.set_defaults(handler=set_state)
    remove.set_defaults(handler=remove_state)

    group = commands.add_parser(
        "workload",
        help="read and set the workload states of services",
        description="Read and set the workload state (e.g. stable, updating) of services.",
    )
    workloads = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    wget = workloads.add_parser("get", parents=[common], help="show the workload state of services")
    wget.add_argument("namespace", metavar="NS")
    wget.add_argument("services", metavar="SERVICE", nargs="+")
    wget.set_defaults(handler=get_workloads)
    wset = workloads.add_parser("set", parents=[common], help="set the workload state of a service")
    wset.add_argument("namespace", metavar="NS")
    wset.add_argument("service", metavar="SERVICE")
    wset.add_argument("state", metavar="STATE")
    wset.set_defaults(handler=set_workload)


async def get_states(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Print pod → state for the pods with a live state."""
    rows = sorted((await ex.get_service_state(args.namespace, args.service)).items())
    if out.as_json:
        out.json([{"pod": pod, "state": state} for pod, state in rows])
    elif rows:
        out.table(["pod", "state"], rows)
    else:
        out.note(f"no pod of {args.service!r} has a live state")
    return OK


async def set_state(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Set a pod's state, for ``--ttl`` seconds or for good."""
    await ex.set_service_state(
        args.namespace, args.service, args.pod, args.state, ttl_seconds=args.ttl
    )
    if out.as_json:
        out.json({"pod": args.pod, "state": args.state, "ttl_seconds": args.ttl})
    else:
        out.line(f"{args.service} pod {args.pod}: {args.state} ({ttl_words(args.ttl)})")
    return OK


async def remove_state(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Remove a pod's state; exit 1 when it had none."""
    removed = await ex.remove_service_state(args.namespace, args.service, args.pod)
    if out.as_json:
        out.json({"removed": removed})
    if not removed:
        raise CommandFailed(NOT_FOUND, f"pod {args.pod} of {args.service!r} has no live state")
    if not out.as_json:
        out.line(f"removed the state of {args.service} pod {args.pod}")
    return OK


async def get_workloads(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Print the workload state of each listed service ("-" when it has none)."""
    found = await ex.get_workload_state(args.namespace, args.services)
    services = list(dict.fromkeys(args.services))
    if out.as_json:
        out.json([{"service": s, "state": found.get(s)} for s in services])
    else:
        out.table(["service", "state"], [[s, found.get(s, "-")] for s in services])
    return OK


async def set_workload(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Set a service's workload state."""
    await ex.set_workload_state(args.namespace, args.service, args.state)
    if out.as_json:
        out.json({"service": args.service, "state": args.state})
    else:
        out.line(f"{args.service}: {args.state}")
    return OK
