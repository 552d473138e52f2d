"""Limits: concurrent streams per connection and keepalive enforcement (tests/e2e covers message size, wait cap)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.api.server import ServerOptions
from tests.mesh.serving import call, rpc, serving

LONG_POLL = rr.WaitForWakeupRequest(timeout=Duration(nanos=500_000_000))


async def _finishing_order(max_concurrent_streams: int) -> list[str]:
    """Start a 0.5 s long poll, then a quick call on the same connection; the order in which they finish."""
    finished: list[str] = []

    async def run(name: str, request: rr.WaitForWakeupRequest | rr.ListSnapshotsRequest) -> None:
        await call(channel, rpc(name), request)
        finished.append(name)

    async with (
        serving(max_concurrent_streams=max_concurrent_streams, max_wait_timeout=timedelta(seconds=5)) as served,
        grpc.aio.insecure_channel(served.address) as channel,
    ):
        await call(channel, rpc("ListSnapshots"))  # connect first, so both calls share one connection
        poll = asyncio.ensure_future(run("WaitForWakeup", LONG_POLL))
        await asyncio.sleep(0.1)
        await asyncio.gather(poll, run("ListSnapshots", rr.ListSnapshotsRequest()))
    return finished


async def test_calls_beyond_max_concurrent_streams_wait_for_a_free_stream() -> None:
    assert await _finishing_order(max_concurrent_streams=1) == ["WaitForWakeup", "ListSnapshots"]


async def test_below_max_concurrent_streams_a_quick_call_overtakes_a_long_poll() -> None:
    assert await _finishing_order(max_concurrent_streams=2) == ["ListSnapshots", "WaitForWakeup"]


async def _connection_states(keepalive_min_ping_interval: timedelta, seconds: float) -> set[str]:
    """States of a channel that pings about every second, idle, for `seconds`."""
    pinging = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_timeout_ms", 1000),  # grpc waits this long between pings: one ping a second
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    states: set[str] = set()
    async with (
        serving(keepalive_min_ping_interval=keepalive_min_ping_interval) as served,
        grpc.aio.insecure_channel(served.address, options=pinging) as channel,
    ):
        await call(channel, rpc("ListSnapshots"))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and grpc.ChannelConnectivity.IDLE.name not in states:
            states.add(channel.get_state(try_to_connect=False).name)
            await asyncio.sleep(0.1)
    return states


@pytest.mark.slow
async def test_a_client_pinging_more_often_than_allowed_is_sent_away() -> None:
    # After three pings inside the minimum interval the server answers GOAWAY too_many_pings.
    states = await _connection_states(ServerOptions().keepalive_min_ping_interval, seconds=8)
    assert grpc.ChannelConnectivity.IDLE.name in states


@pytest.mark.slow
async def test_a_client_pinging_within_the_allowed_interval_stays_connected() -> None:
    states = await _connection_states(timedelta(milliseconds=500), seconds=4.5)
    assert states == {grpc.ChannelConnectivity.READY.name}
