"""The Lua scripts of ``lua/`` and how they are run: EVALSHA, recovering from NOSCRIPT.

A server forgets its scripts on restart, failover or ``SCRIPT FLUSH``. When
EVALSHA answers NOSCRIPT, the same call is sent once more as EVAL with the
source: that runs it and caches it again on that very node (on a cluster, the
node that owns the keys), so the caller never sees the error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from redis.exceptions import NoScriptError

from stateful.resources import resource_dir

from .client import execute_command, execute_many

Arg = bytes | str | int


class CommandTarget(Protocol):
    """What runs a raw command: a `redis.asyncio.Redis` or `RedisCluster` client."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Send one command and return its reply."""
        ...


class PipelineFactory(CommandTarget, Protocol):
    """A client that can also open a non-transactional pipeline."""

    def pipeline(self, transaction: bool = ...) -> Any:
        """Return a pipeline (standalone or cluster) that queues commands."""
        ...


@dataclass(frozen=True, slots=True)
class Script:
    """One Lua script: its name (file stem), source and SHA1."""

    name: str
    source: bytes
    sha: str

    @classmethod
    def from_source(cls, name: str, source: bytes) -> Script:
        """Build a script, computing the SHA1 that Redis will file it under."""
        return cls(name, source, hashlib.sha1(source, usedforsecurity=False).hexdigest())

    def evalsha_args(self, keys: Sequence[bytes], args: Sequence[Arg]) -> tuple[Arg, ...]:
        """Return the arguments of EVALSHA for ``keys`` and ``args``."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def eval_args(self, keys: Sequence[bytes], args: Sequence[Arg]) -> tuple[Arg, ...]:
        """Return the arguments of EVAL (the fallback after NOSCRIPT) for ``keys`` and ``args``."""
        return ("EVAL", self.source, len(keys), *keys, *args)

    async def run(self, client: CommandTarget, keys: Sequence[bytes], args: Sequence[Arg]) -> Any:
        """Run the script in one round trip (two if the server had forgotten it)."""
        try:
            return await execute_command(client, *self.evalsha_args(keys, args))
        except NoScriptError:
            return await execute_command(client, *self.eval_args(keys, args))


@cache
def load(name: str, *, prelude: str | None = None) -> Script:
    """Return the script ``lua/<name>.lua`` (read once per process).

    With ``prelude``, the source sent is ``lua/<prelude>.lua`` followed by the
    script: Redis scripts cannot import, so shared functions travel this way.
    """
    folder = resource_dir("lua")
    source = (folder / f"{name}.lua").read_bytes()
    if prelude is not None:
        source = (folder / f"{prelude}.lua").read_bytes() + b"\n" + source
    return Script.from_source(name, source)


async def run_many(
    client: PipelineFactory, script: Script, calls: Sequence[tuple[Sequence[bytes], Sequence[Arg]]]
) -> list[Any]:
    """Run ``script`` once per (keys, args) in ``calls``, pipelined; return the replies in order.

    One call goes out as a plain command. Several go out in one
    non-transactional pipeline (on a cluster, one per node, sent concurrently).
    Calls that met NOSCRIPT are sent again as EVAL in a second pipeline; any
    other error is raised.
    """
    if len(calls) == 1:
        keys, args = calls[0]
        return [await script.run(client, keys, args)]
    replies = await _pipelined(client, [script.evalsha_args(k, a) for k, a in calls])
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        retried = await _pipelined(client, [script.eval_args(*calls[i]) for i in missing])
        for i, reply in zip(missing, retried, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def pipelined(client: PipelineFactory, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
    """Send ``commands`` in one non-transactional pipeline; raise the first error."""
    if len(commands) == 1:
        return [await execute_command(client, *commands[0])]
    replies = await _pipelined(client, commands)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _pipelined(client: PipelineFactory, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
    # Raw commands, not pipe.evalsha(): the cluster pipeline blocks the named
    # EVALSHA method but routes the raw command by its keys.
    return await execute_many(client, commands)
