"""``stateful migrate|purge|bench|demo``: looking after a store rather than its contents."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
from typing import Any

from stateful.cli.output import OK, USAGE, CommandFailed, Output
from stateful.cli.store import DEFAULT_URL, store_options, store_url
from stateful.errors import StatefulError
from stateful.registry import is_sql_url, prefix_option, sql_backend_module


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``migrate``, ``purge``, ``bench`` and ``demo`` to the top-level subcommands."""
    for name, run, help_text in (
        (
            "migrate",
            migrate,
            "create or upgrade the SQL schema (SQLite does it by itself), or move a Redis "
            "store's links out of the former key layout",
        ),
        ("purge", purge, "delete expired links now (SQL stores; Redis and memory need none)"),
    ):
        parser = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.add_argument("store", metavar="URL", nargs="?", help="store URL (or --url)")
        parser.add_argument("--table-prefix", dest="prefix", help="the same as --prefix")
        parser.set_defaults(run=run)
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="walk through routing a few users to pods",
        description="Walk through what a router does with the store, on a scratch namespace "
        f"'demo'. Default store: {DEFAULT_URL} (needs the sql extra; memory:// needs nothing).",
    )
    demo.add_argument("store", metavar="URL", nargs="?", help="store URL (or --url)")
    demo.set_defaults(run=run_demo)
    # Listed for --help only: main() hands everything after "bench" to the benchmark.
    commands.add_parser(
        "bench", help="measure latency and throughput of a store (stateful bench --help)"
    )


def _url(args: argparse.Namespace) -> str:
    return args.store or store_url(args)


def migrate(args: argparse.Namespace, out: Output) -> int:
    """Bring a SQL store to the newest schema revision, a Redis store to the current layout."""
    url = _url(args)
    if prefix_option(url) == "prefix":
        return _upgrade_redis(url, args, out)
    if not is_sql_url(url):
        out.note(f"{url.partition('://')[0]} stores have no schema: nothing to migrate")
        return OK
    revision = asyncio.run(sql_backend_module(url).migrate_url(url, **store_options(args, url)))
    if out.as_json:
        out.json({"revision": revision})
    else:
        out.line(f"schema at revision {revision}")
    return OK


def _upgrade_redis(url: str, args: argparse.Namespace, out: Output) -> int:
    redis_backend = importlib.import_module("stateful.backends.redis")
    done = asyncio.run(redis_backend.migrate_url(url, **store_options(args, url)))
    if out.as_json:
        out.json(dataclasses.asdict(done))
    else:
        out.line(
            f"moved {done.moved} links out of the former key layout "
            f"(dropped: {done.superseded} superseded by newer links, {done.expired} expired, "
            f"{done.stale_entries} stale permanent-link entries)"
        )
    return OK


def purge(args: argparse.Namespace, out: Output) -> int:
    """Delete a SQL store's expired rows now; say why other stores need no purge."""
    url = _url(args)
    if not is_sql_url(url):
        scheme = url.partition("://")[0]
        why = (
            "Redis expires keys by itself"
            if "redis" in scheme or scheme == "unix"
            else (f"{scheme} stores drop expired links by themselves")
        )
        out.note(f"nothing to purge: {why}")
        if out.as_json:
            out.json({"purged": 0})
        return OK
    deleted = asyncio.run(sql_backend_module(url).purge_url(url, **store_options(args, url)))
    if out.as_json:
        out.json({"purged": deleted})
    else:
        out.line(f"purged {deleted} expired links")
    return OK


def run_demo(args: argparse.Namespace, out: Output) -> int:
    """Run the walk-through; on a plain install, say what to install for the default store."""
    from stateful.walkthrough import walkthrough

    url = _url(args)
    try:
        asyncio.run(walkthrough(url))
    except StatefulError as exc:
        if url == DEFAULT_URL and "pip install" in str(exc):
            raise CommandFailed(USAGE, f"{exc} (or try: stateful demo memory://)") from exc
        raise
    return OK


def run_bench(args: argparse.Namespace, out: Output) -> int:
    """Hand the arguments to ``stateful.bench.main``."""
    try:
        bench = importlib.import_module("stateful.bench")
    except ModuleNotFoundError as exc:
        if exc.name != "stateful.bench":
            raise
        raise CommandFailed(USAGE, "bench is not available in this version of stateful") from None
    code: int = bench.main(list(args.rest))
    return code
