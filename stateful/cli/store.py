"""Which store a command talks to, and the checks shared by the commands that write links."""

from __future__ import annotations

import argparse
import os

from stateful.cli.output import NOT_FOUND, CommandFailed, Output
from stateful.executor import StatefulExecutor

URL_VARIABLE = "STATEFUL_URL"
DEFAULT_URL = "sqlite+aiosqlite:///stateful-demo.db"  # the embedded file `stateful demo` uses
READY = "ready"


def store_url(args: argparse.Namespace) -> str:
    """Return the store URL: ``--url``, else ``$STATEFUL_URL``, else the demo's SQLite file."""
    url: str | None = getattr(args, "url", None)
    return url or os.environ.get(URL_VARIABLE) or DEFAULT_URL


def ttl_persist(ttl: int | None) -> int:
    """Turn ``--ttl N`` (or its absence) into the API's ``persist_seconds`` (-1: permanent)."""
    return -1 if ttl is None else ttl


async def check_pod_is_up(
    ex: StatefulExecutor, args: argparse.Namespace, out: Output, pod: int
) -> None:
    """Refuse to route users to a pod without a live state, unless ``--force``.

    A pod with no state is one the routers do not know (dead, scaled down, a
    typo): a link to it strands the user. A pod whose state is not ``ready``
    (e.g. ``draining``) only draws a warning, since moving users there can be
    intended.
    """
    if args.force:
        return
    states = await ex.get_service_state(args.namespace, args.service)
    state = states.get(pod)
    if state is None:
        known = ", ".join(f"{p} {s}" for p, s in sorted(states.items())) or "none"
        raise CommandFailed(
            NOT_FOUND,
            f"refused: pod {pod} of {args.service!r} has no live state (pods: {known}); "
            "pass --force to link anyway",
        )
    if state != READY:
        out.note(f"warning: pod {pod} of {args.service!r} is {state!r}, not {READY!r}")
