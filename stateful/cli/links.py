"""``stateful link ...``: read, move and remove the links of users to pods."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from stateful.cli.output import (
    NOT_FOUND,
    OK,
    CommandFailed,
    Output,
    timestamp,
    ttl_left,
    ttl_words,
)
from stateful.cli.store import check_pod_is_up, ttl_persist
from stateful.executor import StatefulExecutor


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``link`` group to the top-level subcommands."""
    group = commands.add_parser(
        "link",
        help="read, move and remove the links of users to pods",
        description="Read, move and remove the links of users (uids) to pods of a service.",
    )
    links = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    def command(name: str, handler: Any, help_text: str, *, service: bool = True) -> Any:
        parser = links.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.add_argument("namespace", metavar="NS")
        parser.add_argument("uid", metavar="UID")
        if service:
            parser.add_argument("service", metavar="SERVICE")
        parser.set_defaults(handler=handler)
        return parser

    get = command("get", get_link, "show the pod a user is linked to")
    get.add_argument(
        "--permanent", action="store_true", help="only a permanent link counts (not a kept one)"
    )
    command("info", link_info, "show a link: pod, time left, last update")
    for name, handler, help_text in (
        ("set", set_link, "link a user to a pod, replacing any link"),
        ("try-set", try_set_link, "link a user to a pod unless permanently linked elsewhere"),
        ("set-if-absent", set_link_if_absent, "link a user to a pod unless already linked"),
    ):
        writer = command(name, handler, help_text)
        writer.add_argument("pod", metavar="POD", type=int)
        writer.add_argument(
            "--ttl", type=int, metavar="SECONDS", help="the link expires after SECONDS"
        )
        writer.add_argument(
            "--force", action="store_true", help="link even to a pod that has no live state"
        )
    remove = command("remove", remove_link, "remove a user's link")
    remove.add_argument("--pod", type=int, help="only if the link points at this pod")
    remove.add_argument(
        "--keep",
        type=int,
        default=0,
        metavar="SECONDS",
        help="keep the link SECONDS more as a temporary one (a reconnect returns there)",
    )
    command(
        "services",
        link_services,
        "list a user's permanent links, service by service",
        service=False,
    )
    batch = links.add_parser(
        "batch-get",
        parents=[common],
        help="show the pods of many users (uids as arguments, or one per line on stdin)",
        description="Show the pods of many users of one service. Without UID arguments (or "
        "with '-') the uids are read from stdin, one per line.",
    )
    batch.add_argument("namespace", metavar="NS")
    batch.add_argument("service", metavar="SERVICE")
    batch.add_argument("uids", metavar="UID", nargs="*")
    batch.set_defaults(handler=batch_get)


def _where(args: argparse.Namespace) -> str:
    return f"{args.uid!r} in {args.service!r} (namespace {args.namespace!r})"


async def get_link(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Print the linked pod; exit 1 when there is no live link."""
    read = ex.get_linked_pod_if_persist if args.permanent else ex.get_linked_pod
    pod = await read(args.namespace, args.uid, args.service)
    if out.as_json:
        out.json(
            {"namespace": args.namespace, "uid": args.uid, "service": args.service, "pod": pod}
        )
    elif pod is not None:
        out.table(["uid", "service", "pod"], [[args.uid, args.service, pod]])
    if pod is None:
        kind = "permanent link" if args.permanent else "live link"
        raise CommandFailed(NOT_FOUND, f"no {kind} for {_where(args)}")
    return OK


async def link_info(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Print pod, expiry and last update of a link; exit 1 when there is none."""
    info = await ex.get_link_info(args.namespace, args.uid, args.service)
    if info is None:
        if out.as_json:
            out.json(None)
        raise CommandFailed(NOT_FOUND, f"no live link for {_where(args)}")
    if out.as_json:
        out.json(
            {
                "namespace": info.namespace,
                "uid": info.uid,
                "service": info.service_name,
                "pod": info.pod_id,
                "permanent": info.permanent,
                "expires_at_ms": info.expires_at_ms,
                "updated_at_ms": info.updated_at_ms,
            }
        )
    else:
        expires = "never" if info.expires_at_ms is None else timestamp(info.expires_at_ms)
        out.table(
            ["uid", "service", "pod", "ttl", "expires", "updated"],
            [
                [
                    info.uid,
                    info.service_name,
                    info.pod_id,
                    ttl_left(info.expires_at_ms),
                    expires,
                    timestamp(info.updated_at_ms),
                ]
            ],
        )
    return OK


async def set_link(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Link the user to the pod whatever it was linked to; print the previous pod."""
    await check_pod_is_up(ex, args, out, args.pod)
    previous = await ex.set_linked_pod(
        args.namespace, args.uid, args.service, args.pod, ttl_persist(args.ttl)
    )
    if out.as_json:
        out.json({"pod": args.pod, "ttl_seconds": args.ttl, "previous": previous})
    else:
        was = "no live link" if previous is None else f"pod {previous}"
        out.line(f"{args.uid} -> {args.service} pod {args.pod} ({ttl_words(args.ttl)}); was {was}")
    return OK


async def try_set_link(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Link unless a permanent link to another pod exists; exit 1 when refused."""
    await check_pod_is_up(ex, args, out, args.pod)
    ok, pod = await ex.try_set_linked_pod(
        args.namespace, args.uid, args.service, args.pod, ttl_persist(args.ttl)
    )
    if out.as_json:
        out.json({"ok": ok, "pod": pod})
    if not ok:
        raise CommandFailed(NOT_FOUND, f"refused: {_where(args)} has a permanent link to pod {pod}")
    if not out.as_json:
        out.line(f"{args.uid} -> {args.service} pod {pod} ({ttl_words(args.ttl)})")
    return OK


async def set_link_if_absent(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Link unless a live link exists (a kept one is refreshed); print the pod now linked."""
    await check_pod_is_up(ex, args, out, args.pod)
    pod = await ex.set_linked_pod_if_absent(
        args.namespace, args.uid, args.service, args.pod, ttl_persist(args.ttl)
    )
    if out.as_json:
        out.json({"pod": pod})
    elif pod == args.pod:
        out.line(f"{args.uid} -> {args.service} pod {pod}")
    else:
        out.line(f"{args.uid} stays on {args.service} pod {pod} (already linked)")
    return OK


async def remove_link(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Remove (or, with ``--keep``, expire later) the link; exit 1 when nothing was removed."""
    if args.pod is None:
        removed = await ex.remove_linked_pod(args.namespace, args.uid, args.service, args.keep)
    else:
        removed = await ex.remove_linked_pod_with_id(
            args.namespace, args.uid, args.service, args.keep, args.pod
        )
    if out.as_json:
        out.json({"removed": removed})
    if not removed:
        on_pod = "" if args.pod is None else f" to pod {args.pod}"
        raise CommandFailed(NOT_FOUND, f"no live link{on_pod} for {_where(args)}")
    if not out.as_json:
        kept = f"; kept {args.keep}s for a reconnect" if args.keep > 0 else ""
        out.line(f"removed the link of {args.uid} to {args.service}{kept}")
    return OK


async def link_services(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Print the user's permanent links, service → pod."""
    links = await ex.get_link_service(args.namespace, args.uid)
    rows = sorted(links.items())
    if out.as_json:
        out.json([{"service": service, "pod": pod} for service, pod in rows])
    elif rows:
        out.table(["service", "pod"], rows)
    else:
        out.note(f"{args.uid!r} has no permanent link in namespace {args.namespace!r}")
    return OK


def _uids(args: argparse.Namespace) -> list[str]:
    if args.uids and args.uids != ["-"]:
        return list(args.uids)
    # One uid per line: uids may hold spaces, so only the line break separates them.
    return [line.rstrip("\r\n") for line in sys.stdin if line.rstrip("\r\n")]


async def batch_get(ex: StatefulExecutor, args: argparse.Namespace, out: Output) -> int:
    """Print the pod of each linked uid, in input order; uids without a link are counted."""
    uids = _uids(args)
    by_pod = await ex.batch_get_linked_pod(args.namespace, uids, args.service)
    pod_of = {uid: pod for pod, members in by_pod.items() for uid in members}
    rows = [[uid, pod_of[uid]] for uid in dict.fromkeys(uids) if uid in pod_of]
    if out.as_json:
        out.json([{"uid": uid, "pod": pod} for uid, pod in rows])
    elif rows:
        out.table(["uid", "pod"], rows)
    asked = len(dict.fromkeys(uids))
    if asked > len(rows):
        out.note(f"{asked - len(rows)} of {asked} uids have no live link")
    return OK
