"""Trace context: the caller's traceparent kept in the snapshots it writes and handed back at dispatch; OTel spans."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.mesh import tracing
from sayiir_server.mesh.tracing import is_trace_parent, otel_server_interceptor, start_tracing, trace_parent_of
from tests.mesh.serving import DEFINITION, Served, at_task_snapshot, call, node_id, rpc, serving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
OWN_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _traced(value: str = TRACEPARENT) -> tuple[tuple[str, str]]:
    return (("traceparent", value),)


async def _stored(served: Served, instance_id: str) -> str:
    return (await served.backend.load_snapshot(instance_id)).trace_parent


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (TRACEPARENT, True),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", False),  # uppercase
        (f"ff-{TRACE_ID}-{SPAN_ID}-01", False),  # version ff is invalid
        (f"00-{'0' * 32}-{SPAN_ID}-01", False),  # all-zero trace id
        (f"00-{TRACE_ID}-{'0' * 16}-01", False),  # all-zero parent id
        (f"00-{TRACE_ID}-{SPAN_ID}", False),
        ("not a traceparent", False),
    ],
)
def test_only_w3c_traceparents_are_taken(value: str, valid: bool) -> None:
    assert is_trace_parent(value) is valid
    assert trace_parent_of((("traceparent", value),)) == (value if valid else None)


async def test_save_snapshot_keeps_the_calls_traceparent_when_the_snapshot_has_none() -> None:
    async with serving() as served, grpc.aio.insecure_channel(served.address) as channel:
        request = rr.SaveSnapshotRequest(snapshot=at_task_snapshot("order-1"))
        await call(channel, rpc("SaveSnapshot"), request, metadata=_traced())
        assert await _stored(served, "order-1") == TRACEPARENT


async def test_a_snapshots_own_trace_parent_wins_over_the_calls() -> None:
    async with serving() as served, grpc.aio.insecure_channel(served.address) as channel:
        request = rr.SaveSnapshotRequest(snapshot=at_task_snapshot("order-2", trace_parent=OWN_TRACEPARENT))
        await call(channel, rpc("SaveSnapshot"), request, metadata=_traced())
        assert await _stored(served, "order-2") == OWN_TRACEPARENT


async def test_a_malformed_traceparent_is_not_stored() -> None:
    async with serving() as served, grpc.aio.insecure_channel(served.address) as channel:
        request = rr.SaveSnapshotRequest(snapshot=at_task_snapshot("order-3"))
        await call(channel, rpc("SaveSnapshot"), request, metadata=_traced("00-nonsense"))
        assert (await served.backend.load_snapshot("order-3")).HasField("trace_parent") is False


async def test_save_snapshot_fenced_keeps_the_calls_traceparent() -> None:
    async with serving() as served, grpc.aio.insecure_channel(served.address) as channel:
        await served.backend.save_snapshot(at_task_snapshot("order-4"))
        claim = await served.backend.claim_task("order-4", node_id("fetch"), "worker-1", None)
        assert claim is not None
        request = rr.SaveSnapshotFencedRequest(
            snapshot=at_task_snapshot("order-4", task="ship"), task_id=node_id("fetch"), worker_id="worker-1"
        )
        response = await call(channel, rpc("SaveSnapshotFenced"), request, metadata=_traced())
        assert response.saved
        assert await _stored(served, "order-4") == TRACEPARENT


async def test_a_fresh_run_keeps_the_traceparent_and_dispatch_hands_it_back() -> None:
    async with serving() as served, grpc.aio.insecure_channel(served.address) as channel:
        first_task = pb.FirstTask(task_id=node_id("a"))
        prepare = rr.PrepareRunRequest(
            instance_id="order-5", definition_hash=DEFINITION, input=b"{}", first_task=first_task
        )
        outcome = (await call(channel, rpc("PrepareRun"), prepare, metadata=_traced())).outcome
        assert outcome.fresh.snapshot.trace_parent == TRACEPARENT
        find = rr.FindAvailableTasksRequest(worker_id="worker-1", limit=10)
        (task,) = (await call(channel, rpc("FindAvailableTasks"), find)).tasks
        assert task.trace_parent == TRACEPARENT


async def test_the_otel_interceptor_makes_a_server_span_child_of_the_callers_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with (
        serving(interceptors=(otel_server_interceptor(provider),)) as served,
        grpc.aio.insecure_channel(served.address) as channel,
    ):
        await call(channel, rpc("ListSnapshots"), metadata=_traced())
    (span,) = exporter.get_finished_spans()
    assert span.name == "/sayiir.persistence.v1.SnapshotStore/ListSnapshots"
    assert span.kind == SpanKind.SERVER
    assert span.context is not None
    assert span.parent is not None
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert f"{span.parent.span_id:016x}" == SPAN_ID


def test_tracing_off_installs_nothing() -> None:
    assert start_tracing("off") is None


def test_otlp_tracing_without_the_extra_is_refused_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "tracing_available", lambda: False)
    with pytest.raises(tracing.TracingUnavailableError) as refused:
        start_tracing("otlp")
    assert "pip install 'sayiir-persistence-server[tracing]'" in str(refused.value)


def test_otlp_tracing_with_the_extra_names_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    started = start_tracing("otlp")
    assert started is not None
    try:
        assert started.provider.resource.attributes["service.name"] == tracing.DEFAULT_SERVICE_NAME
    finally:
        started.shutdown()
