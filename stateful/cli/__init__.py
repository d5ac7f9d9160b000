"""The ``stateful`` command: ``demo``, ``migrate`` and ``purge``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

DEFAULT_DEMO_URL = "sqlite+aiosqlite:///stateful-demo.db"  # an embedded file, no server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stateful", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="walk through routing a few users to pods")
    demo.add_argument("url", nargs="?", default=DEFAULT_DEMO_URL, help="store URL")
    migrate = commands.add_parser("migrate", help="create or upgrade the SQL schema")
    migrate.add_argument("url", help="SQLAlchemy async URL, e.g. postgresql+asyncpg://...")
    migrate.add_argument("--table-prefix", default=None, help="table name prefix")
    purge = commands.add_parser("purge", help="delete expired links from a SQL store")
    purge.add_argument("url", help="SQLAlchemy async URL")
    purge.add_argument("--table-prefix", default=None, help="table name prefix")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from stateful.walkthrough import walkthrough

        asyncio.run(walkthrough(args.url))
        return 0

    from stateful.backends import sql

    options = {} if args.table_prefix is None else {"table_prefix": args.table_prefix}
    if args.command == "migrate":
        revision = asyncio.run(sql.migrate_url(args.url, **options))
        print(f"stateful: {args.url} is at schema revision {revision}")
    else:
        deleted = asyncio.run(sql.purge_url(args.url, **options))
        print(f"stateful: purged {deleted} expired links")
    return 0


if __name__ == "__main__":
    sys.exit(main())
