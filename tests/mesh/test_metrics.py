"""Prometheus metrics: calls by method and code, latency buckets, in-flight calls, wakeups and pool use."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import grpc
from google.protobuf.duration_pb2 import Duration

from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.api.server import ServerOptions
from sayiir_server.api.wakeups import WakeupHub
from sayiir_server.backends.memory import InMemoryBackend, MemoryStorage
from sayiir_server.mesh.mesh import MeshOptions
from sayiir_server.mesh.metrics import LATENCY_BUCKETS, MetricsEndpoint, ServerMetrics
from tests.mesh.scrape import scrape
from tests.mesh.serving import (
    Served,
    at_task_snapshot,
    bearer,
    call,
    eventually,
    rpc,
    serving,
    status_code,
)

METRICS = MeshOptions(metrics_listen="127.0.0.1:0")
SNAPSHOTS = "sayiir.persistence.v1.SnapshotStore"
CLAIMS = "sayiir.persistence.v1.TaskClaimStore"


def _url(served: Served) -> str:
    assert served.mesh.metrics_endpoint is not None
    return served.mesh.metrics_endpoint.url


async def test_calls_are_counted_by_method_and_status_code() -> None:
    async with serving(METRICS) as served, grpc.aio.insecure_channel(served.address) as channel:
        for number in range(3):
            await call(channel, rpc("SaveSnapshot"), rr.SaveSnapshotRequest(snapshot=at_task_snapshot(f"o-{number}")))
        for _ in range(2):
            await status_code(channel, rpc("LoadSnapshot"), rr.LoadSnapshotRequest(instance_id="missing"))
        metrics = await scrape(_url(served))
    handled = "grpc_server_handled_total"
    assert metrics.value(handled, grpc_service=SNAPSHOTS, grpc_method="SaveSnapshot", grpc_code="OK") == 3
    assert metrics.value(handled, grpc_service=SNAPSHOTS, grpc_method="LoadSnapshot", grpc_code="NOT_FOUND") == 2
    assert metrics.value(handled, grpc_service=SNAPSHOTS, grpc_method="LoadSnapshot", grpc_code="OK") is None
    assert metrics.value("grpc_server_started_total", grpc_service=SNAPSHOTS, grpc_method="SaveSnapshot") == 3


async def test_latencies_fill_the_histogram_buckets_of_their_method() -> None:
    async with serving(METRICS) as served, grpc.aio.insecure_channel(served.address) as channel:
        before = await scrape(_url(served))
        for _ in range(4):
            await call(channel, rpc("ListSnapshots"))
        # A long poll that times out after the server's cap (200 ms in tests) lands in a slower bucket.
        await call(channel, rpc("WaitForWakeup"), rr.WaitForWakeupRequest(timeout=Duration(seconds=1)))
        after = await scrape(_url(served))
    latency = "grpc_server_handling_seconds"
    assert before.buckets(latency, grpc_method="ListSnapshots") == {}
    list_buckets = after.buckets(latency, grpc_service=SNAPSHOTS, grpc_method="ListSnapshots")
    assert list(list_buckets) == [*(str(bound) for bound in LATENCY_BUCKETS), "+Inf"]
    assert list_buckets["+Inf"] == 4
    assert list(list_buckets.values()) == sorted(list_buckets.values())  # cumulative
    assert after.value(f"{latency}_count", grpc_service=SNAPSHOTS, grpc_method="ListSnapshots") == 4
    wait_buckets = after.buckets(latency, grpc_service=CLAIMS, grpc_method="WaitForWakeup")
    assert wait_buckets["0.1"] == 0
    assert wait_buckets["1.0"] == wait_buckets["+Inf"] == 1
    wait_sum = after.value(f"{latency}_sum", grpc_service=CLAIMS, grpc_method="WaitForWakeup")
    assert wait_sum is not None
    assert 0.2 <= wait_sum < 1.0


async def test_in_flight_calls_and_open_watch_streams_are_gauged_while_they_last() -> None:
    async with (
        serving(METRICS, max_wait_timeout=timedelta(seconds=30)) as served,
        grpc.aio.insecure_channel(served.address) as channel,
    ):
        stream = channel.unary_stream(
            rpc("WatchWakeups").path,
            request_serializer=rr.WatchWakeupsRequest.SerializeToString,
            response_deserializer=rr.WatchWakeupsResponse.FromString,
        )(rr.WatchWakeupsRequest())
        await stream.initial_metadata()  # the server sends headers once it has subscribed
        wait = asyncio.ensure_future(
            call(channel, rpc("WaitForWakeup"), rr.WaitForWakeupRequest(timeout=Duration(seconds=30)))
        )
        await eventually(lambda: served.backend.wakeups.subscriber_count == 2)
        during = await scrape(_url(served))
        stream.cancel()
        wait.cancel()
        await eventually(lambda: served.backend.wakeups.subscriber_count == 0)
        after = await scrape(_url(served))
    in_flight = "sayiir_rpcs_in_flight"
    assert during.value(in_flight, grpc_service=CLAIMS, grpc_method="WatchWakeups") == 1
    assert during.value(in_flight, grpc_service=CLAIMS, grpc_method="WaitForWakeup") == 1
    assert during.value("sayiir_watch_wakeups_streams") == 1
    assert during.value("sayiir_wakeup_subscribers") == 2
    assert after.value(in_flight, grpc_service=CLAIMS, grpc_method="WatchWakeups") == 0
    assert after.value(in_flight, grpc_service=CLAIMS, grpc_method="WaitForWakeup") == 0
    assert after.value("sayiir_watch_wakeups_streams") == 0
    assert (
        after.value("grpc_server_handled_total", grpc_service=CLAIMS, grpc_method="WatchWakeups", grpc_code="CANCELLED")
        == 1
    )


async def test_wakeups_published_and_dropped_are_read_from_the_backend_hub() -> None:
    hub = WakeupHub(queue_size=1)
    backend = InMemoryBackend(wakeups=hub)
    async with serving(METRICS, backend) as served, grpc.aio.insecure_channel(served.address) as channel:
        slow_subscriber = hub.subscribe()  # never reads: keeps only the newest hint
        for number in range(3):
            # Each new instance at a dispatchable task publishes one hint.
            await call(channel, rpc("SaveSnapshot"), rr.SaveSnapshotRequest(snapshot=at_task_snapshot(f"o-{number}")))
        metrics = await scrape(_url(served))
        slow_subscriber.close()
    assert metrics.value("sayiir_wakeups_published_total") == 3
    assert metrics.value("sayiir_wakeups_dropped_total") == 2
    assert metrics.value("sayiir_wakeup_subscribers") == 1


class _PooledStorage(MemoryStorage):
    """A memory store with the optional pool_stats hook of pooled stores."""

    def __init__(self, stats: Mapping[str, float] | Exception) -> None:
        super().__init__(lambda _hint: None)
        self._stats = stats

    def pool_stats(self) -> Mapping[str, float]:
        if isinstance(self._stats, Exception):
            raise self._stats
        return self._stats


class _PooledBackend(InMemoryBackend):
    def __init__(self, stats: Mapping[str, float] | Exception) -> None:
        super().__init__()
        self.storage = self.memory = _PooledStorage(stats)


async def test_a_backend_with_a_pool_exports_its_pool_stats() -> None:
    backend = _PooledBackend({"size": 10, "idle": 7, "in_use": 3, "max_size": 10})
    async with serving(METRICS, backend) as served:
        metrics = await scrape(_url(served))
    assert metrics.value("sayiir_backend_pool_size") == 10
    assert metrics.value("sayiir_backend_pool_idle") == 7
    assert metrics.value("sayiir_backend_pool_in_use") == 3


async def test_a_failing_pool_stats_hook_leaves_only_the_pool_metrics_out() -> None:
    async with serving(METRICS, _PooledBackend(RuntimeError("pool closed"))) as served:
        metrics = await scrape(_url(served))
    assert not any(name.startswith("sayiir_backend_pool_") for name in metrics.names())
    assert metrics.value("sayiir_wakeups_published_total") == 0


async def test_a_backend_without_a_pool_exports_no_pool_metrics() -> None:
    async with serving(METRICS) as served:
        metrics = await scrape(_url(served))
    assert not any(name.startswith("sayiir_backend_pool_") for name in metrics.names())


async def test_refused_calls_are_counted_with_their_code(token_file: Path) -> None:
    options = MeshOptions(metrics_listen="127.0.0.1:0", auth_tokens=str(token_file))
    async with serving(options) as served, grpc.aio.insecure_channel(served.address) as channel:
        await status_code(channel, rpc("DeleteSnapshot"), metadata=bearer("forged"))
        metrics = await scrape(_url(served))
    code = metrics.value(
        "grpc_server_handled_total", grpc_service=SNAPSHOTS, grpc_method="DeleteSnapshot", grpc_code="UNAUTHENTICATED"
    )
    assert code == 1


async def test_two_servers_in_one_process_keep_separate_metrics() -> None:
    async with serving(METRICS) as first, serving(METRICS) as second:
        async with grpc.aio.insecure_channel(first.address) as channel:
            await call(channel, rpc("ListSnapshots"))
        first_metrics, second_metrics = await scrape(_url(first)), await scrape(_url(second))
    labels = {"grpc_service": SNAPSHOTS, "grpc_method": "ListSnapshots", "grpc_code": "OK"}
    assert first_metrics.value("grpc_server_handled_total", **labels) == 1
    assert second_metrics.value("grpc_server_handled_total", **labels) is None


async def test_the_endpoint_stops_serving_when_stopped() -> None:
    endpoint = MetricsEndpoint("127.0.0.1:0", ServerMetrics(InMemoryBackend()).registry)
    endpoint.start()
    assert "sayiir_server_info" in (await scrape(endpoint.url)).text
    await endpoint.stop()
    try:
        await scrape(endpoint.url)
    except OSError:
        return
    raise AssertionError("the endpoint still answered after stop()")


def test_the_latency_buckets_reach_the_default_cap_of_a_long_poll() -> None:
    assert tuple(sorted(LATENCY_BUCKETS)) == LATENCY_BUCKETS
    assert LATENCY_BUCKETS[-1] >= ServerOptions().max_wait_timeout.total_seconds()
