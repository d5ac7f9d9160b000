"""SQL backends against their raw drivers: ``stateful bench`` on SQLite, PostgreSQL, MariaDB.

Kept for the command in docs/sql.md; the harness is `stateful.bench`::

    .venv/bin/python -m benchmarks.sql_bench [--seconds S] [--concurrency 1,16,64]

The old ``--n`` (calls per operation) is accepted and ignored: rounds are now
timed (``--seconds``), not counted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from stateful.bench import main as bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="ignored (see --seconds)")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--mysql", default="mysql+asyncmy://root@127.0.0.1:3306/test")
    args, extra = parser.parse_known_args()
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        for url in (f"sqlite+aiosqlite:///{tmp}/bench.db", args.postgres, args.mysql):
            status |= bench([url, *extra])
    return status


if __name__ == "__main__":
    sys.exit(main())
