"""OpenTelemetry spans and metrics per operation, the logging observer, and no cost without them."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import stateful
from stateful.telemetry import LoggingObserver, OpenTelemetryObserver, store_attributes
from tests.support import free_port

UID = "secret-user-7"


@dataclass
class Telemetry:
    observer: OpenTelemetryObserver
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        found = []
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.append(metric)
        return [point for metric in found for point in metric.data.data_points]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    observer = OpenTelemetryObserver(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Telemetry(observer, spans, reader)
    meter_provider.shutdown()
    tracer_provider.shutdown()


def never_mentions_the_uid(value: object) -> None:
    assert UID not in repr(value)


async def test_a_span_and_a_duration_per_operation_on_sqlite(
    telemetry: Telemetry, tmp_path: Any
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'otel.db'}"
    async with stateful.connect(url, observer=telemetry.observer) as ex:
        await ex.set_service_state("prod", "game", 1, "ready")
        await ex.set_linked_pod("prod", UID, "game", 1, -1)
        assert await ex.get_linked_pod("prod", UID, "game") == 1

    spans = telemetry.spans.get_finished_spans()
    assert [s.name for s in spans] == ["set_service_state", "set_linked_pod", "get_linked_pod"]
    for span in spans:
        assert span.kind is SpanKind.CLIENT
        assert span.status.status_code is StatusCode.UNSET
        attributes = dict(span.attributes or {})
        assert attributes == {
            "db.system.name": "sqlite",
            "db.operation.name": span.name,
            "stateful.namespace": "prod",
            "stateful.service_name": "game",
        }
        never_mentions_the_uid(span.to_json())

    durations = telemetry.points("db.client.operation.duration")
    by_operation = {p.attributes["db.operation.name"]: p for p in durations}
    assert set(by_operation) == {"set_service_state", "set_linked_pod", "get_linked_pod"}
    for point in durations:
        assert point.count == 1 and 0 < point.sum < 10
        assert list(point.explicit_bounds) == [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]
        never_mentions_the_uid(point.attributes)
    assert telemetry.points("stateful.client.operation.errors") == []


async def test_a_failed_operation_records_its_error_type(telemetry: Telemetry) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/2"
    async with stateful.connect(url, observer=telemetry.observer, timeout=5) as ex:
        with pytest.raises(stateful.BackendUnavailable):
            await ex.get_linked_pod("prod", UID, "game")

    (span,) = telemetry.spans.get_finished_spans()
    assert span.name == "get_linked_pod 2"  # {db.operation.name} {db.namespace}
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "stateful.errors.BackendUnavailable"
    assert attributes["db.system.name"] == "redis"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == port
    assert attributes["db.namespace"] == "2"
    assert [e.name for e in span.events] == ["exception"]
    never_mentions_the_uid(span.to_json())

    (errors,) = telemetry.points("stateful.client.operation.errors")
    assert errors.value == 1
    assert errors.attributes["error.type"] == "stateful.errors.BackendUnavailable"
    (duration,) = telemetry.points("db.client.operation.duration")
    assert duration.attributes["error.type"] == "stateful.errors.BackendUnavailable"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+asyncpg://u:pw@db.example:5433/routing",
            {
                "db.system.name": "postgresql",
                "server.address": "db.example",
                "server.port": 5433,
                "db.namespace": "routing",
            },
        ),
        (
            "mysql+asyncmy://root@127.0.0.1/app",
            {"db.system.name": "mysql", "server.address": "127.0.0.1", "db.namespace": "app"},
        ),
        ("redis+cluster://h1:7000,h2:7001", {"db.system.name": "redis"}),
        ("sqlite+aiosqlite:///var/lib/x.db", {"db.system.name": "sqlite"}),
        ("memory://", {"db.system.name": "memory"}),
    ],
)
def test_store_attributes_never_carry_credentials(url: str, expected: dict[str, Any]) -> None:
    attributes = store_attributes(url)
    assert attributes == expected
    assert "pw" not in repr(attributes)


async def test_the_logging_observer_logs_operations_without_uids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="stateful"):
        async with stateful.connect("memory://", observer=LoggingObserver()) as ex:
            await ex.set_linked_pod("prod", UID, "game", 4, -1)
    messages = [r.getMessage() for r in caplog.records if r.name == "stateful"]
    assert any(m.startswith("set_linked_pod namespace='prod' service='game' ") for m in messages)
    assert all(m.endswith(" ok") for m in messages if m.startswith("set_linked_pod"))
    never_mentions_the_uid(messages)


def test_no_opentelemetry_import_without_an_observer() -> None:
    code = (
        "import asyncio, sys, stateful, stateful.telemetry\n"
        "async def run():\n"
        "    async with stateful.connect('memory://') as ex:\n"
        "        await ex.set_linked_pod('n', 'u', 's', 1, -1)\n"
        "asyncio.run(run())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


async def test_uids_reach_no_log_record_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.DEBUG, logger="stateful"):
        async with stateful.connect(url, timeout=5, close_timeout=5) as ex:
            with pytest.raises(stateful.BackendUnavailable):
                await ex.set_linked_pod("prod", UID, "game", 1, -1)
    assert caplog.records, "the failure was not logged at all"
    for record in caplog.records:
        if record.levelno > logging.DEBUG:
            never_mentions_the_uid(record.getMessage())
