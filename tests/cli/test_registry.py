"""`connect` options the command line relies on: close_timeout, observer, prefixes, hints."""

from __future__ import annotations

import sys

import pytest

import stateful
from stateful.registry import is_sql_url, prefix_option
from stateful.telemetry import LoggingObserver, OpenTelemetryObserver


async def test_connect_passes_close_timeout_and_observer() -> None:
    observer = LoggingObserver()
    async with stateful.connect("memory://", close_timeout=3.5, observer=observer) as ex:
        assert ex.close_timeout == 3.5
    with pytest.raises(stateful.ValidationError, match="close_timeout"):
        stateful.connect("memory://", close_timeout=0)


def test_connect_gives_an_opentelemetry_observer_the_store_url() -> None:
    observer = OpenTelemetryObserver()
    stateful.connect("memory://", observer=observer)
    assert observer.url == "memory://"
    stateful.connect("memory://", observer=observer)  # a URL it has is kept
    named = OpenTelemetryObserver("redis://h:6380/1")
    stateful.connect("memory://", observer=named)
    assert named.url == "redis://h:6380/1"


def test_an_observer_without_opentelemetry_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(stateful.StatefulError, match=r"stateful-routing\[otel\]"):
        OpenTelemetryObserver()


@pytest.mark.parametrize(
    ("url", "option", "sql"),
    [
        ("redis://h/0", "prefix", False),
        ("rediss+cluster://h1:1,h2:2", "prefix", False),
        ("unix:///tmp/redis.sock", "prefix", False),
        ("sqlite+aiosqlite:///x.db", "table_prefix", True),
        ("postgresql://u@h/db", "table_prefix", True),
        ("mariadb+asyncmy://u@h/db", "table_prefix", True),
        ("memory://", None, False),
    ],
)
def test_prefix_option_and_sql_urls(url: str, option: str | None, sql: bool) -> None:
    assert prefix_option(url) == option
    assert is_sql_url(url) is sql


@pytest.mark.parametrize("url", ["postgresql+psycopg2://u@h/db", "mysql+pymysql://u@h/db"])
def test_a_synchronous_sql_driver_is_refused_by_name(url: str) -> None:
    import stateful

    with pytest.raises(stateful.ValidationError, match="is not an asyncio driver"):
        stateful.connect(url)
