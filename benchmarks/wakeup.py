"""Wakeup latency: from sending the save that makes a task ready to a WatchWakeups subscriber holding its hint.

The save and the subscription may go to different server replicas on one database: then the hint
travels through the database (PostgreSQL NOTIFY) from the replica that wrote to the one that watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import grpc

from benchmarks.measure import Measurement
from benchmarks.workload import ready_snapshot
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as rpc

HINT_TIMEOUT = 5.0
_SUBSCRIBE_ATTEMPTS = 40


class WakeupTimeoutError(RuntimeError):
    """A save that made a task ready produced no hint within HINT_TIMEOUT seconds."""


class _Subscriber:
    """One open WatchWakeups stream; resolves the future waiting for each instance's hint."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stream = rpc.TaskClaimStoreStub(channel).WatchWakeups(rr.WatchWakeupsRequest())
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for response in self._stream:
            arrived = time.perf_counter()
            waiter = self._waiting.pop(response.hint.instance_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(arrived)

    def expect(self, instance_id: str) -> asyncio.Future[float]:
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[instance_id] = waiter
        return waiter

    async def close(self) -> None:
        self._stream.cancel()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await self._reader


async def wakeup_latency(
    save_channel: grpc.aio.Channel, samples: int, watch_channel: grpc.aio.Channel | None = None
) -> Measurement:
    """`samples` saves of a new ready instance through `save_channel`, one at a time, each timed until its
    hint arrives on a WatchWakeups stream of `watch_channel` (the same server when None)."""
    snapshots = rpc.SnapshotStoreStub(save_channel)
    subscriber = _Subscriber(save_channel if watch_channel is None else watch_channel)
    run = secrets.token_hex(4)
    try:
        await _until_subscribed(snapshots, subscriber, run)
        latencies: list[float] = []
        for number in range(samples):
            instance_id = f"wake-{run}-{number:06d}"
            arrival = subscriber.expect(instance_id)
            sent = time.perf_counter()
            await snapshots.SaveSnapshot(rr.SaveSnapshotRequest(snapshot=ready_snapshot(instance_id)))
            try:
                latencies.append(await asyncio.wait_for(arrival, HINT_TIMEOUT) - sent)
            except TimeoutError as error:
                raise WakeupTimeoutError(f"no hint for {instance_id} within {HINT_TIMEOUT} s") from error
        return Measurement(tuple(latencies), sum(latencies))
    finally:
        await subscriber.close()


async def _until_subscribed(snapshots: rpc.SnapshotStoreAsyncStub, subscriber: _Subscriber, run: str) -> None:
    """The stream is live once a hint arrives: until then, a save's hint may precede the subscription."""
    for attempt in range(_SUBSCRIBE_ATTEMPTS):
        instance_id = f"wake-{run}-probe-{attempt}"
        arrival = subscriber.expect(instance_id)
        await snapshots.SaveSnapshot(rr.SaveSnapshotRequest(snapshot=ready_snapshot(instance_id)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrival, 0.25)
            return
    raise WakeupTimeoutError("WatchWakeups delivered no hint at all")
