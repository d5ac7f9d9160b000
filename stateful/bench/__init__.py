"""``stateful bench URL``: how much stateful costs over the raw driver, and at scale.

Three runs, each printing a markdown table on standard output:

* default: every operation through `stateful.StatefulExecutor` against the
  raw driver doing the minimal equivalent (a dict, redis-py, asyncpg,
  aiosqlite, asyncmy), at each ``--concurrency``, in interleaved rounds of
  ``--seconds``; medians of ops/s and the ratio stateful / raw::

      stateful bench redis://127.0.0.1:6379/0 --concurrency 1,16,64 --seconds 1

* ``--scale 1000,1000000``: grow the store through the sizes; load rate,
  bytes per link and p50/p99 read latency at each (takes minutes at 1M);
* ``--pods``: ``count_pod_links`` over 64 pods and 1M links, ``pod_links`` and
  ``remove_pod_links`` over a pod of 100k links.

Everything goes under a fresh key or table prefix, deleted at the end (also
after an error or Ctrl-C). Benchmarks are not tests: nothing here asserts a
time. `main` is what the ``stateful`` command calls.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from collections.abc import Sequence

from stateful.errors import StatefulError

__all__ = ["main"]


def _ints(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parser(prog: str = "stateful bench") -> argparse.ArgumentParser:
    """Build the command line of ``stateful bench`` (the CLI may reuse it for its subcommand)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="store URL: memory://, redis://..., sqlite+aiosqlite:///file, ...")
    p.add_argument("--ops", default="", help="comma-separated operations (default: all)")
    p.add_argument("--list-ops", action="store_true", help="print the operations and exit")
    p.add_argument("--concurrency", type=_ints, default=[1, 16, 64],
                   help="concurrent tasks, comma-separated (default 1,16,64)")
    p.add_argument("--seconds", type=float, default=0.5, help="length of one round (default 0.5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per side (default 3)")
    p.add_argument("--links", type=int, default=1000,
                   help="links preloaded for the comparison (10000 adds the 10k batch case)")
    p.add_argument("--scale", type=_ints, default=None, metavar="SIZES",
                   help="scale run through these link counts, e.g. 1000,1000000,10000000")
    p.add_argument("--pods", action="store_true",
                   help="pods run: count_pod_links, pod_links, remove_pod_links")
    p.add_argument("--pod-links", type=int, default=1_000_000,
                   help="links of the pods run's service (default 1000000)")
    p.add_argument("--big-pod", type=int, default=100_000,
                   help="links on the pods run's pod 0 (default 100000)")
    p.add_argument("--api-load", action="store_true",
                   help="load through the API (slow), not in bulk (SQL: inserts; Redis: pipelined)")
    p.add_argument("--reads", type=int, default=5000, help="scale run: reads timed per size")
    p.add_argument("--load-seconds", type=float, default=None,
                   help="scale run: stop loading a step after this long (API loads)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``stateful bench`` with ``argv`` (without the program name); return the exit status."""
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130
    except (ValueError, RuntimeError, OSError, StatefulError) as exc:
        print(f"stateful bench: {exc}", file=sys.stderr)
        return 2


def _emit(line: str) -> None:
    print(line, flush=True)


async def _main(args: argparse.Namespace) -> int:
    from stateful.bench import compare, pods, scale
    from stateful.bench.targets import target_for

    t = target_for(args.url)
    await t.open()
    try:
        if args.list_ops:
            for name in compare.op_names(t, args.links):
                _emit(name)
            return 0
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        _emit(f"<!-- stateful bench {t.kind} {_redacted(args.url)} at {started}; "
              f"Python {platform.python_version()}, {platform.machine()} -->")
        if args.scale:
            await scale.run(t, args.scale, bulk=not args.api_load, reads=args.reads,
                            read_seconds=30.0, load_seconds=args.load_seconds, emit=_emit)
        elif args.pods:
            await pods.run(t, total=args.pod_links, big=args.big_pod, bulk=not args.api_load,
                           count_calls=20, emit=_emit)
        else:
            ops = [name.strip() for name in args.ops.split(",") if name.strip()] or None
            _emit(f"<!-- {args.rounds} interleaved rounds of {args.seconds} s per side, "
                  f"medians; {args.links} links preloaded -->")
            await compare.run(t, ops=ops, concurrencies=args.concurrency, seconds=args.seconds,
                              rounds=args.rounds, links=args.links, emit=_emit)
    finally:
        await t.close()
    return 0


def _redacted(url: str) -> str:
    """``url`` without a password."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':')[0]}:***@{host}"


if __name__ == "__main__":
    sys.exit(main())
