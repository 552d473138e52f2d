"""Churn driver, run as its own process: `python -m tests.reliability.stream_churn ADDRESS SECONDS`.

Keeps STREAMS WatchWakeups streams open over CHANNELS channels, each cancelled by the client after a random
time, while a task is made ready every READY_EVERY_SECONDS (so hints are being written when the cancels land),
then prints one JSON line: how many streams were opened and how many tasks made ready. It runs beside the
server rather than inside pytest so client and server each have a core, as real workers would. More streams
saturate a 2-core machine so badly that no hint gets written, and nothing is tested.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

import grpc

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as services

CHANNELS = 10
STREAMS = 300
READY_EVERY_SECONDS = 0.01
LONGEST_STREAM_SECONDS = 1.0


def ready_snapshot(number: int) -> pb.WorkflowSnapshot:
    return pb.WorkflowSnapshot(
        instance_id=f"churn-{number}",
        definition_hash=bytes(32),
        in_progress=pb.InProgressState(position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=bytes(32)))),
        initial_input=b"input",
    )


async def _read_all(call: grpc.aio.UnaryStreamCall[rr.WatchWakeupsRequest, rr.WatchWakeupsResponse]) -> None:
    try:
        async for _ in call:
            pass
    except (grpc.aio.AioRpcError, asyncio.CancelledError):
        pass


async def _open_and_cancel_streams(channel: grpc.aio.Channel, until: float) -> int:
    stub = services.TaskClaimStoreStub(channel)
    opened = 0
    while time.monotonic() < until:
        call = stub.WatchWakeups(rr.WatchWakeupsRequest())
        opened += 1
        reading = asyncio.ensure_future(_read_all(call))
        await asyncio.sleep(random.uniform(0.001, LONGEST_STREAM_SECONDS))
        call.cancel()
        await asyncio.wait({reading})
    return opened


async def _make_tasks_ready(channel: grpc.aio.Channel, until: float) -> int:
    stub = services.SnapshotStoreStub(channel)
    saved = 0
    while time.monotonic() < until:
        try:
            await stub.SaveSnapshot(rr.SaveSnapshotRequest(snapshot=ready_snapshot(saved)), timeout=5)
            saved += 1
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                break  # the server is gone
        await asyncio.sleep(READY_EVERY_SECONDS)
    return saved


async def churn(address: str, seconds: float) -> dict[str, int]:
    # One channel more than the streams use: the task producer's calls never queue behind stream churn.
    channels = [grpc.aio.insecure_channel(address) for _ in range(CHANNELS + 1)]
    try:
        until = time.monotonic() + seconds
        streams = [_open_and_cancel_streams(channels[n % CHANNELS], until) for n in range(STREAMS)]
        made_ready, *opened = await asyncio.gather(_make_tasks_ready(channels[CHANNELS], until), *streams)
        return {"streams_opened": sum(opened), "tasks_made_ready": made_ready}
    finally:
        for channel in channels:
            await channel.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(churn(sys.argv[1], float(sys.argv[2])))))
