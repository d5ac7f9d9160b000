"""Run the ``stateful`` command in process against real stores, and read what it printed."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import stateful
from stateful.backends.memory import MemoryBackend
from stateful.cli import main
from tests.redis_backend.scratch import delete_prefix


@dataclass(frozen=True)
class Result:
    """Exit code and output of one command."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass(frozen=True)
class Store:
    """A store the commands run against, isolated for one test."""

    name: str
    url: str
    prefix: str | None

    def options(self) -> list[str]:
        prefix = [] if self.prefix is None else ["--prefix", self.prefix]
        return ["--url", self.url, *prefix]


class Cli:
    """Calls `stateful.cli.main` with the store's options, capturing stdout and stderr."""

    def __init__(self, store: Store, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch):
        self.store = store
        self._capsys = capsys
        self._monkeypatch = mp

    def __call__(self, *argv: str, stdin: str | None = None) -> Result:
        self._capsys.readouterr()  # drop what earlier steps printed
        if stdin is not None:
            self._monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main([*argv, *self.store.options()])
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *argv: str, stdin: str | None = None) -> Result:
        """Run a command that must succeed."""
        result = self(*argv, stdin=stdin)
        assert result.code == 0, result
        assert result.err == "" or result.err.startswith("stateful: "), result
        return result

    def fails(self, code: int, *argv: str) -> Result:
        """Run a command that must end with ``code`` and one line on stderr, no traceback."""
        result = self(*argv)
        assert result.code == code, result
        assert result.err.startswith("stateful"), result
        assert result.err.count("\n") == 1, result
        assert "Traceback" not in result.err
        return result


_memory_backends: dict[str, MemoryBackend] = {}


def _shared_memory(url: str, *, clock: Any = None, **options: Any) -> MemoryBackend:
    # One memory store per URL for the whole test, so that commands see each
    # other's writes as they would on a server.
    return _memory_backends.setdefault(url, MemoryBackend(clock=clock))


stateful.register_backend("cli-memory", _shared_memory)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store: memory, a SQLite file, or a fresh key prefix on the shared Redis."""
    if request.param == "memory":
        yield Store("memory", f"cli-memory://{uuid.uuid4().hex}", None)
        return
    if request.param == "sqlite":
        yield Store("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", None)
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"stateful-test:{uuid.uuid4().hex[:12]}:"
    yield Store("redis", url, prefix)
    asyncio.run(_delete_keys(url, prefix))


async def _delete_keys(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await delete_prefix(client, prefix)
    finally:
        await client.aclose()


@pytest.fixture
def cli(store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The command line, pointed at ``store``; no STATEFUL_URL or STATEFUL_PREFIX leaks in."""
    monkeypatch.delenv("STATEFUL_URL", raising=False)
    monkeypatch.delenv("STATEFUL_PREFIX", raising=False)
    return Cli(store, capsys, monkeypatch)
