"""Which store a command talks to, and the checks shared by the commands that write links."""

from __future__ import annotations

import argparse
import os
from typing import Any

from stateful.cli.output import NOT_FOUND, USAGE, CommandFailed, Output
from stateful.executor import StatefulExecutor
from stateful.registry import prefix_option

URL_VARIABLE = "STATEFUL_URL"
PREFIX_VARIABLE = "STATEFUL_PREFIX"
DEFAULT_URL = "sqlite+aiosqlite:///stateful-demo.db"  # the embedded file `stateful demo` uses
READY = "ready"


def store_url(args: argparse.Namespace) -> str:
    """Return the store URL: ``--url``, else ``$STATEFUL_URL``, else the demo's SQLite file."""
    url: str | None = getattr(args, "url", None)
    return url or os.environ.get(URL_VARIABLE) or DEFAULT_URL


def store_options(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Return the backend options for ``url``: the key or table prefix, if one was given.

    ``--prefix``, else ``$STATEFUL_PREFIX``: the Redis key prefix or the SQL
    table prefix the routers were configured with.
    """
    prefix: str | None = getattr(args, "prefix", None) or os.environ.get(PREFIX_VARIABLE)
    if not prefix:
        return {}
    option = prefix_option(url)
    if option is None:
        raise CommandFailed(USAGE, f"--prefix: {url.partition('://')[0]} stores have no prefix")
    return {option: prefix}


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
