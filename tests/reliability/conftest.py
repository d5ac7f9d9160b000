"""Fixtures of the reliability tests: where each backend's store is, as a URL and options.

Child processes cannot receive a backend object, only what builds one:
`Target` names the URL and the `stateful.connect` options (key or table
prefix) that isolate a test on the shared servers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from stateful.backends.redis.urls import client_from_url
from tests.redis_backend.scratch import delete_prefix, unique_prefix
from tests.sql_backend import endpoints as sql_endpoints

#: Backends with a server (or file) that several processes can share.
SERVER_BACKENDS = ["redis", "redis_cluster", "sqlite", "postgresql", "mariadb"]


@dataclass(frozen=True)
class Target:
    """A store several processes can open: ``stateful.connect(url, **options)``."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)


def scale(ci: int, deep: int) -> int:
    """Return ``ci``, or ``deep`` under ``HYPOTHESIS_PROFILE`` or ``STATEFUL_RELIABILITY=deep``."""
    deep_run = "deep" in (
        os.environ.get("HYPOTHESIS_PROFILE", ""),
        os.environ.get("STATEFUL_RELIABILITY", ""),
    )
    return deep if deep_run else ci


async def _targets(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    name = request.param
    if name.startswith("redis"):
        if name == "redis_sentinel":
            url = request.getfixturevalue("redis_sentinel").url
        else:
            url = request.getfixturevalue("redis_url" if name == "redis" else "redis_cluster_url")
        prefix = unique_prefix()
        yield Target(name, url, {"prefix": prefix})
        client, closer = client_from_url(url)
        try:
            await delete_prefix(client, prefix)
        finally:
            await closer()
        return
    fixture = {"sqlite": "sqlite_file_url", "postgresql": "postgres_url", "mariadb": "mysql_url"}
    url = request.getfixturevalue(fixture[name])
    # Every run writes a fresh namespace: the session's tables are shared safely.
    yield Target(name, url, {"table_prefix": sql_endpoints.PREFIX})


@pytest.fixture(params=SERVER_BACKENDS)
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """Each server backend in turn, isolated by a fresh key prefix or the session's tables."""
    async for opened in _targets(request):
        yield opened


@pytest.fixture(params=[*SERVER_BACKENDS, "redis_sentinel"])
async def any_server(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """As `target`, plus Redis behind a Sentinel (spawned by the test session)."""
    async for opened in _targets(request):
        yield opened
