"""Trace context: a call's W3C `traceparent` kept in the snapshots it starts, and optional OpenTelemetry spans.

Trace-parent propagation needs no OpenTelemetry: when a caller saves a
snapshot (SaveSnapshot, SaveSnapshotFenced, PrepareRun's fresh run) without
a trace_parent and its call carries a valid `traceparent` metadata entry, the
snapshot keeps that value; dispatch hands it back in AvailableTask.trace_parent,
so the worker that runs the next task can continue the trace.

`--tracing otlp` adds OpenTelemetry's gRPC server instrumentation (one span per
call, child of the caller's span) and exports spans over OTLP, configured by the
standard OTEL_* environment variables. It needs the `tracing` extra
(`pip install 'sayiir-persistence-server[tracing]'`); without it the server refuses
to start (an operator who asked for traces would otherwise get none, silently).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import grpc

from sayiir_client.v1 import messages_pb2 as pb

logger = logging.getLogger(__name__)

TRACEPARENT_KEY: Final = "traceparent"
TracingMode = Literal["off", "otlp"]
TRACING_MODES: Final[tuple[TracingMode, ...]] = ("off", "otlp")
DEFAULT_SERVICE_NAME: Final = "sayiir-persistence"
"""OpenTelemetry service.name unless OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) says otherwise."""

_TRACEPARENT: Final = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})-[0-9a-f]{2}"
)
_EXTRA_MODULES: Final = (
    "opentelemetry.sdk.trace",
    "opentelemetry.instrumentation.grpc",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)


def is_trace_parent(value: str) -> bool:
    """Whether `value` is a W3C traceparent (version 00 layout, non-zero ids, version not ff)."""
    match = _TRACEPARENT.fullmatch(value)
    return match is not None and match["version"] != "ff" and match["trace"] != "0" * 32 and match["parent"] != "0" * 16


def trace_parent_of(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """The valid `traceparent` entry of a call's metadata, or None."""
    for key, value in metadata or ():
        if key == TRACEPARENT_KEY and isinstance(value, str) and is_trace_parent(value.strip()):
            return value.strip()
    return None


def call_trace_parent(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The valid `traceparent` the caller sent with this call, or None."""
    return trace_parent_of(tuple(context.invocation_metadata() or ()))


def inherit_trace_parent(
    snapshot: pb.WorkflowSnapshot, context: grpc.aio.ServicerContext[Any, Any]
) -> pb.WorkflowSnapshot:
    """`snapshot`, given the call's traceparent when the caller left its trace_parent empty."""
    if not snapshot.trace_parent:
        trace_parent = call_trace_parent(context)
        if trace_parent is not None:
            snapshot.trace_parent = trace_parent
    return snapshot


def tracing_available() -> bool:
    """Whether the `tracing` extra (OpenTelemetry SDK, gRPC instrumentation, OTLP exporter) is installed."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in _EXTRA_MODULES)
    except ModuleNotFoundError:  # a parent package is missing
        return False


def otel_server_interceptor(tracer_provider: Any = None) -> grpc.aio.ServerInterceptor:
    """OpenTelemetry's grpc.aio server interceptor (needs the `tracing` extra)."""
    # Imported by name: the instrumentation package ships no type hints.
    instrumentation = importlib.import_module("opentelemetry.instrumentation.grpc")
    interceptor: grpc.aio.ServerInterceptor = instrumentation.aio_server_interceptor(tracer_provider=tracer_provider)
    return interceptor


@dataclass
class OtelTracing:
    """Spans for every call, exported over OTLP until `shutdown` flushes them."""

    interceptor: grpc.aio.ServerInterceptor
    provider: Any

    def shutdown(self) -> None:
        self.provider.shutdown()


class TracingUnavailableError(ValueError):
    """Tracing was asked for, but the `tracing` extra is not installed."""


def start_tracing(mode: TracingMode) -> OtelTracing | None:
    """The tracing `mode` asks for; None when off; TracingUnavailableError when the extra is not installed."""
    if mode == "off":
        return None
    if not tracing_available():
        raise TracingUnavailableError(
            f"--tracing {mode} needs the 'tracing' extra, which is not installed "
            "(pip install 'sayiir-persistence-server[tracing]')"
        )
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    logger.info(
        "tracing: OpenTelemetry spans exported over OTLP (service.name %s)", resource.attributes["service.name"]
    )
    return OtelTracing(otel_server_interceptor(provider), provider)
