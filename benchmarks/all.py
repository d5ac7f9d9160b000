"""Run ``stateful bench`` on every backend, one process each, and print the tables.

Not a test. Run from the repository root::

    .venv/bin/python -m benchmarks.all                      # comparison tables
    .venv/bin/python -m benchmarks.all --suite pods         # issue 11's pod operations
    .venv/bin/python -m benchmarks.all --suite scale        # 1k and 1M links
    .venv/bin/python -m benchmarks.all --suite scale --sizes 1000,1000000,10000000 \\
        --only memory,redis                                 # the 10M run

Servers come from ``STATEFUL_BENCH_REDIS_URL`` / ``_CLUSTER_URL`` / ``_POSTGRES_URL`` /
``_MARIADB_URL``, else the local defaults (no cluster unless given). SQLite
uses a file in a temporary directory; ``--spawn-cluster`` starts a throw-away
3-master Redis Cluster when no cluster URL is given. Extra arguments after ``--`` go to
every ``stateful bench`` call. Each backend runs in its own process so that
one backend's memory (the memory backend's RSS) does not weigh on the next.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULTS = {
    "memory": "memory://",
    "redis": os.environ.get("STATEFUL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "redis-cluster": os.environ.get("STATEFUL_BENCH_CLUSTER_URL", ""),
    "sqlite": "",  # a temporary file, set in main()
    "postgresql": os.environ.get(
        "STATEFUL_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get(
        "STATEFUL_BENCH_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306/test"
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["compare", "scale", "pods"], default="compare")
    parser.add_argument("--only", default="", help="comma-separated backends (default: all)")
    parser.add_argument("--sizes", default="1000,1000000", help="scale suite: link counts")
    parser.add_argument("--spawn-cluster", action="store_true",
                        help="start a 3-master Redis Cluster for the run (needs redis-server)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- extra stateful bench args")
    args = parser.parse_args()
    extra = [a for a in args.rest if a != "--"]
    chosen = [name for name in args.only.split(",") if name] or list(DEFAULTS)
    status = 0
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        urls = dict(DEFAULTS, sqlite=f"sqlite+aiosqlite:///{tmp}/bench.db")
        if args.spawn_cluster and "redis-cluster" in chosen and not urls["redis-cluster"]:
            # The test suite's helper: three masters on free ports, stopped at the end.
            from tests.redis_backend.servers import RedisClusterProcesses

            cluster = RedisClusterProcesses(Path(tmp) / "cluster")
            stack.callback(cluster.stop)
            urls["redis-cluster"] = cluster.url
        for name in chosen:
            url = urls[name]
            if not url:
                print(f"\n<!-- {name}: no URL given, skipped -->", flush=True)
                continue
            suite = {"compare": [], "scale": ["--scale", args.sizes], "pods": ["--pods"]}
            command = [sys.executable, "-m", "stateful.bench", url, *suite[args.suite], *extra]
            print(f"\n<!-- $ stateful bench {' '.join(command[3:])} -->\n", flush=True)
            status |= subprocess.call(command)
    return status


if __name__ == "__main__":
    sys.exit(main())
