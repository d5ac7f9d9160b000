"""The ``stateful`` command: operate a routing store from a shell.

Every command talks to the store at --url, else $STATEFUL_URL, else the
embedded SQLite file of the demo (stateful-demo.db). Results are tables, or
JSON with --json. Exit codes: 0 ok, 1 not found or refused, 2 usage or
set-up error, 3 store unavailable or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from stateful.cli import admin, links, pods, states
from stateful.cli.output import UNAVAILABLE, USAGE, CommandFailed, Output
from stateful.cli.store import PREFIX_VARIABLE, URL_VARIABLE, store_options, store_url
from stateful.errors import BackendError, StatefulError, ValidationError

__all__ = ["main"]

DEFAULT_TIMEOUT_S = 10.0  # an operator's command never hangs on a stalled store

EPILOG = f"""\
store URL: --url, else ${URL_VARIABLE}, else sqlite+aiosqlite:///stateful-demo.db
exit codes: 0 ok, 1 not found or refused, 2 usage or set-up error, 3 store unavailable
examples:
  stateful --url redis://localhost:6379/0 link info prod alice game
  stateful pod count prod game
  stateful link set prod alice game 3
"""


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message} (see: {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from stateful import __version__
    from stateful.registry import DISTRIBUTION

    try:
        return f"{DISTRIBUTION} {version(DISTRIBUTION)}"
    except PackageNotFoundError:  # run from a checkout that is not installed
        return f"{DISTRIBUTION} {__version__}"


def _common() -> argparse.ArgumentParser:
    # Accepted before or after the command: SUPPRESS keeps a subcommand from
    # resetting what was given before it.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--url", help=f"store URL (default: ${URL_VARIABLE}, else the demo file)")
    common.add_argument(
        "--prefix",
        help=f"Redis key prefix or SQL table prefix of the store (default: ${PREFIX_VARIABLE})",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"limit for each store operation (default {DEFAULT_TIMEOUT_S:g})",
    )
    common.add_argument(
        "--debug", action="store_true", help="log each operation and show tracebacks on stderr"
    )
    return common


def parser() -> argparse.ArgumentParser:
    """Build the ``stateful`` argument parser."""
    common = _common()
    top = _Parser(
        prog="stateful",
        description="Operate a stateful routing store: links of users to pods, pod states, "
        "workload states.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    top.set_defaults(url=None, prefix=None, json=False, timeout=DEFAULT_TIMEOUT_S, debug=False)
    top.add_argument("--version", action="version", version=_version())
    commands = top.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    links.add_commands(commands, common)
    states.add_commands(commands, common)
    pods.add_commands(commands, common)
    admin.add_commands(commands, common)
    return top


async def _with_store(args: argparse.Namespace, out: Output) -> int:
    from stateful.registry import connect

    observer = None
    if args.debug:
        from stateful.telemetry import LoggingObserver

        observer = LoggingObserver()
    url = store_url(args)
    options = store_options(args, url)
    async with connect(url, timeout=args.timeout, observer=observer, **options) as ex:
        code: int = await args.handler(ex, args, out)
        return code


def _failure(error: BaseException) -> tuple[int, str]:
    if isinstance(error, CommandFailed):
        return error.code, str(error)
    if isinstance(error, ValidationError):
        return USAGE, f"invalid {error}"
    if isinstance(error, BackendError):
        return UNAVAILABLE, f"store failed: {error}"
    if isinstance(error, StatefulError):
        return USAGE, str(error)
    return UNAVAILABLE, f"unexpected error: {type(error).__name__}: {error}"


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # stdout is not a file (tests capture it): nothing will complain


def _one_line(message: str) -> str:
    # Driver messages span lines (SQLAlchemy adds a "Background on this error"
    # link); an operator's terminal and log scrapers want one line.
    lines = [line.strip() for line in message.splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("(Background on"))


def _bench_arguments(argv: Sequence[str]) -> list[str] | None:
    # ``stateful bench ...`` hands everything after ``bench`` (``--help``
    # included) to the benchmark, which argparse's REMAINDER cannot do for
    # leading options.
    valued = {"--url", "--prefix", "--timeout"}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in valued else 1
    if i < len(argv) and argv[i] == "bench":
        return list(argv[i + 1 :])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    bench = _bench_arguments(argv)
    if bench is not None:
        args = argparse.Namespace(rest=bench, run=admin.run_bench, json=False, debug=False)
    else:
        args = parser().parse_args(argv)
    out = Output(args.json)
    if args.debug:
        logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
        logging.getLogger("stateful").setLevel(logging.DEBUG)
    try:
        if hasattr(args, "run"):
            code: int = args.run(args, out)
            return code
        return asyncio.run(_with_store(args, out))
    except KeyboardInterrupt:
        out.note("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (`stateful pod links ... | head`): stop quietly,
        # as a command killed by SIGPIPE would, and keep Python from
        # complaining when it flushes stdout at exit.
        _silence_stdout()
        return 141
    except Exception as exc:
        code, message = _failure(exc)
        if args.debug:
            logging.getLogger("stateful").debug("command failed", exc_info=exc)
        out.note(_one_line(message))
        return code
