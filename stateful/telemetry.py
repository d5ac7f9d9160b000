"""Observers of executor operations: OpenTelemetry traces and metrics, and plain logging.

An observer is handed to the executor (``connect(url, observer=...)`` or
``StatefulExecutor(backend, observer=...)``). Before each operation the
executor calls ``observer.started(operation, namespace, service_name)``; the
function it returns is called once with the exception the operation ended
with, or None. Nothing here runs when no observer is given, and
OpenTelemetry is imported only when an `OpenTelemetryObserver` is built, so
an install without the ``otel`` extra pays nothing.

`OpenTelemetryObserver` follows OpenTelemetry's semantic conventions for
database clients: one CLIENT span per operation named after
``db.operation.name``, the histogram ``db.client.operation.duration`` (s),
``error.type`` on failures. User ids never reach a span or a metric: the
executor does not pass them to observers at all.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from stateful.executor import Finish

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger("stateful")

# The semantic conventions' advisory buckets for db.client.operation.duration (seconds).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
DURATION_METRIC = "db.client.operation.duration"
# No convention names an error count; this one lives in the library's own namespace.
ERROR_METRIC = "stateful.client.operation.errors"
# Attributes of the routing scope: a store namespace and a service are not a
# database or a table, so they get the library's own names.
NAMESPACE_ATTRIBUTE = "stateful.namespace"
SERVICE_ATTRIBUTE = "stateful.service_name"
INSTRUMENTATION_NAME = "stateful"


def store_attributes(url: str) -> dict[str, str | int]:
    """Return the semantic-convention attributes that describe the store at ``url``.

    ``db.system.name`` (``redis``, ``postgresql``, ``mysql``, ``mariadb``,
    ``sqlite``, else the URL scheme), plus ``server.address``/``server.port``
    and ``db.namespace`` (the database name, or the Redis database index)
    when the URL names exactly one of each. Credentials are never read.
    """
    scheme, _, rest = url.partition("://")
    base = scheme.lower().split("+", 1)[0]
    system = {
        "rediss": "redis",
        "unix": "redis",
        "postgres": "postgresql",
    }.get(base, base)
    attributes: dict[str, str | int] = {"db.system.name": system}
    try:
        parts = urlsplit(f"x://{rest}")
        host, port = parts.hostname, parts.port
    except ValueError:  # several hosts (Cluster, Sentinel): no single server to name
        return attributes
    if host and "," not in (parts.netloc or ""):
        attributes["server.address"] = host
        if port is not None:
            attributes["server.port"] = port
    database = parts.path.lstrip("/")
    if database and system != "sqlite" and "/" not in database:
        attributes["db.namespace"] = database
    return attributes


def error_type(error: BaseException) -> str:
    """Return ``error.type`` for an exception: its fully qualified class name."""
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


class OpenTelemetryObserver:
    """Emits a span, a duration and, on failure, an error count for each operation.

    ``url`` (the store's) fills ``db.system.name``, ``server.address``,
    ``server.port`` and ``db.namespace``; `connect` passes it for you when
    given ``observer=OpenTelemetryObserver()`` with no URL. The providers
    default to the globally configured ones. Spans and metrics also carry
    ``stateful.namespace`` and ``stateful.service_name`` (the routing scope
    of the call); uids are never recorded.

    Needs the ``otel`` extra: ``pip install 'stateful-routing[otel]'``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        """Create the tracer and instruments; raise `StatefulError` without OpenTelemetry."""
        try:
            from opentelemetry import metrics, trace
        except ModuleNotFoundError as exc:
            from stateful.errors import StatefulError

            raise StatefulError(
                "OpenTelemetryObserver needs the opentelemetry-api package: "
                "pip install 'stateful-routing[otel]'"
            ) from exc
        from stateful import __version__

        self._trace = trace
        self._client_kind = trace.SpanKind.CLIENT
        self._tracer = trace.get_tracer(
            INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider
        )
        meter = metrics.get_meter(INSTRUMENTATION_NAME, __version__, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            DURATION_METRIC,
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._errors = meter.create_counter(
            ERROR_METRIC, unit="{error}", description="Operations that ended with an error."
        )
        self._store: dict[str, str | int] = {}
        self.url = url

    @property
    def url(self) -> str | None:
        """The store URL the attributes describe (None: only the operation's own)."""
        return self._url

    @url.setter
    def url(self, value: str | None) -> None:
        self._url = value
        self._store = store_attributes(value) if value is not None else {}

    def started(self, operation: str, namespace: str | None, service_name: str | None) -> Finish:
        """Open the operation's span and start its clock; return what closes them."""
        attributes: dict[str, Any] = {**self._store, "db.operation.name": operation}
        if namespace is not None:
            attributes[NAMESPACE_ATTRIBUTE] = namespace
        if service_name is not None:
            attributes[SERVICE_ATTRIBUTE] = service_name
        target = self._store.get("db.namespace")
        name = operation if target is None else f"{operation} {target}"
        span = self._tracer.start_span(name, kind=self._client_kind, attributes=attributes)
        start = time.perf_counter()

        def finished(error: BaseException | None) -> None:
            elapsed = time.perf_counter() - start
            if error is not None:
                kind = error_type(error)
                attributes["error.type"] = kind
                span.set_attribute("error.type", kind)
                span.record_exception(error)
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, kind))
                self._errors.add(1, attributes)
            self._duration.record(elapsed, attributes)
            span.end()

        return finished


class LoggingObserver:
    """Logs each operation, its routing scope and duration at DEBUG on the ``stateful`` logger.

    Failures are logged at DEBUG too: the caller receives the exception and
    decides whether it is worth more. Uids are not logged (observers never see them).
    """

    def __init__(self, log: logging.Logger | None = None) -> None:
        """Log to ``log`` (default: the ``stateful`` logger)."""
        self._log = log or logger

    def started(self, operation: str, namespace: str | None, service_name: str | None) -> Finish:
        """Start timing ``operation``; the returned function logs how it ended."""
        start = time.perf_counter()

        def finished(error: BaseException | None) -> None:
            if not self._log.isEnabledFor(logging.DEBUG):
                return
            ms = (time.perf_counter() - start) * 1000
            outcome = "ok" if error is None else f"failed: {error_type(error)}: {error}"
            self._log.debug(
                "%s namespace=%r service=%r %.1f ms %s",
                operation,
                namespace,
                service_name,
                ms,
                outcome,
            )

        return finished
