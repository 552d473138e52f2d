"""A server with metrics and JSON access logs survives clients that open and cancel WatchWakeups streams in churn.

Bounded: about ten seconds of churn from a driver process (tests/reliability/stream_churn.py), loopback
only; then the server process must be alive, answer, and have let go of every stream (the stream and
subscriber gauges back to zero).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as services
from tests.mesh.scrape import scrape
from tests.support.server_process import server_process

CHURN_SECONDS = 10.0
SETTLE_SECONDS = 10.0
GAUGES = ("sayiir_watch_wakeups_streams", "sayiir_wakeup_subscribers")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def _gauges_after_settling(metrics_url: str) -> dict[str, float | None]:
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        sample = await scrape(metrics_url)
        gauges = {name: sample.value(name) for name in GAUGES}
        if all(value == 0 for value in gauges.values()) or time.monotonic() > deadline:
            return gauges
        await asyncio.sleep(0.1)


async def test_stream_churn_with_metrics_and_json_access_logs_keeps_the_server_alive() -> None:
    flags = ("--metrics-listen", "127.0.0.1:0", "--log-format", "json")
    with server_process("memory://", *flags) as server:
        driver = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.reliability.stream_churn",
            server.address,
            str(CHURN_SECONDS),
            stdout=subprocess.PIPE,
        )
        output, _ = await asyncio.wait_for(driver.communicate(), CHURN_SECONDS + 60)
        assert server.process.poll() is None, f"the server died ({server.process.poll()}):\n{server.log_text()}"
        churned = json.loads(output)
        assert churned["streams_opened"] > 1000
        assert churned["tasks_made_ready"] > 0
        async with grpc.aio.insecure_channel(server.address) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            loaded = await services.SnapshotStoreStub(channel).LoadSnapshot(
                rr.LoadSnapshotRequest(instance_id="churn-0"), timeout=5
            )
            assert loaded.snapshot.instance_id == "churn-0"
        assert server.metrics_url is not None
        assert await _gauges_after_settling(server.metrics_url) == dict.fromkeys(GAUGES, 0)
