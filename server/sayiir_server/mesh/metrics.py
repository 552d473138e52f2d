"""Prometheus metrics of one server, served on their own port (`--metrics-listen`).

Call metrics use the names of the go-grpc-prometheus convention, so existing
gRPC dashboards work: grpc_server_started_total, grpc_server_handled_total
(with grpc_code) and the grpc_server_handling_seconds histogram, labelled by
grpc_service and grpc_method. Everything else starts with `sayiir_`. Each
server has its own CollectorRegistry, so several servers fit in one process.

The engine is read at scrape time: its wakeup hub for hints published and
dropped and current subscribers, and, where its store has a connection pool,
the store's optional `pool_stats()` hook.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sayiir_client.v1 import service_pb2
from sayiir_server import __version__
from sayiir_server.domain.engine import Engine
from sayiir_server.mesh.calls import FinishedCall, split_method

logger = logging.getLogger(__name__)

LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds; up to 60 s because WaitForWakeup long-polls up to its cap (--max-wait-timeout)."""

DEFAULT_METRICS_PORT: Final = 9090
"""The port the docs and the Kubernetes manifests give --metrics-listen (metrics are off unless it is set)."""

POOL_STATS_HOOK: Final = "pool_stats"
"""Optional store method `pool_stats() -> Mapping[str, float]`: cheap, synchronous, safe from any thread.

Each entry is exported as the gauge `sayiir_backend_pool_<name>` (e.g. size, idle, in_use, max_size)."""

_WATCH_WAKEUPS: Final = "/{}/WatchWakeups".format(service_pb2.DESCRIPTOR.services_by_name["TaskClaimStore"].full_name)


class ServerMetrics:
    """The metrics of one server: a call sink for CallObserver, plus the backend read at scrape time."""

    def __init__(self, backend: Engine, *, process_metrics: bool = False) -> None:
        self.registry = CollectorRegistry()
        labels = ("grpc_service", "grpc_method")
        self._started = Counter("grpc_server_started", "RPCs started on the server.", labels, registry=self.registry)
        self._handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code.",
            (*labels, "grpc_code"),
            registry=self.registry,
        )
        self._latency = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status (for streams: how long the stream stayed open).",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._in_flight = Gauge("sayiir_rpcs_in_flight", "RPCs being handled now.", labels, registry=self.registry)
        self._watch_streams = Gauge(
            "sayiir_watch_wakeups_streams", "Open WatchWakeups streams.", registry=self.registry
        )
        Info("sayiir_server", "The server's version.", registry=self.registry).info({"version": __version__})
        self.registry.register(BackendCollector(backend))
        if process_metrics:
            from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def call_started(self, method: str) -> None:
        service, name = split_method(method)
        self._started.labels(service, name).inc()
        self._in_flight.labels(service, name).inc()
        if method == _WATCH_WAKEUPS:
            self._watch_streams.inc()

    def call_finished(self, call: FinishedCall) -> None:
        service, name = split_method(call.method)
        self._in_flight.labels(service, name).dec()
        if call.method == _WATCH_WAKEUPS:
            self._watch_streams.dec()
        self._handled.labels(service, name, call.code.name).inc()
        self._latency.labels(service, name).observe(call.duration_seconds)


class BackendCollector(Collector):
    """Reads the engine's wakeup hub and its store's connection pool when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self) -> Iterable[Metric]:
        return ()  # names depend on the backend; nothing to check against other collectors at registration

    def collect(self) -> Iterable[Metric]:
        hub = self._engine.wakeups
        yield CounterMetricFamily(
            "sayiir_wakeups_published", "Wakeup hints published to this replica's subscribers.", hub.published
        )
        yield CounterMetricFamily(
            "sayiir_wakeups_dropped", "Hints dropped because a subscriber's queue was full.", hub.dropped
        )
        yield GaugeMetricFamily(
            "sayiir_wakeup_subscribers", "Open WaitForWakeup and WatchWakeups subscriptions.", hub.subscriber_count
        )
        yield from _pool_metrics(getattr(self._engine.storage, POOL_STATS_HOOK, None))


def _pool_metrics(pool_stats: Callable[[], Mapping[str, float]] | None) -> Iterable[Metric]:
    if not callable(pool_stats):
        return
    try:
        stats = dict(pool_stats())
    except Exception:
        logger.exception("backend %s() failed; pool metrics left out of this scrape", POOL_STATS_HOOK)
        return
    for name, value in sorted(stats.items()):
        yield GaugeMetricFamily(f"sayiir_backend_pool_{_metric_name(name)}", f"Backend connection pool: {name}.", value)


def _metric_name(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


def parse_listen(listen: str) -> tuple[str, int]:
    """("0.0.0.0", 9090) for "0.0.0.0:9090"; brackets around an IPv6 host are removed."""
    host, separator, port = listen.rpartition(":")
    if not separator or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError("expected HOST:PORT with a port from 0 to 65535 (0: any free port)")
    return host.strip("[]") or "0.0.0.0", int(port)


class MetricsEndpoint:
    """An HTTP server (in a daemon thread) answering GET /metrics with one registry's metrics."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        self.host, self.port = parse_listen(listen)
        self._registry = registry
        self._server: WSGIServer | None = None

    def start(self) -> None:
        """Bind and serve; `port` is then the bound port (useful with port 0)."""
        server, _thread = start_http_server(self.port, self.host, self._registry)
        self._server = server
        self.port = server.server_address[1]
        logger.info("metrics on http://%s:%d/metrics", self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        # shutdown() waits for the serving thread's poll loop to end: not on the event loop.
        await asyncio.to_thread(server.shutdown)
        server.server_close()
