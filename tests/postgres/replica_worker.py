"""A worker process of the multi-replica test, on the generated stubs alone.

    python -m tests.postgres.replica_worker --target HOST:PORT --worker-id ID --shard I --shards N --out FILE

It subscribes to WatchWakeups on its replica, prints "ready" once the stream is
open, then runs the worker protocol of docs/behaviour.md WORKER: find, claim, post-claim guard,
"execute" (record the instance id), fenced save to Completed, release.

Every worker hears every hint. Acting on all of them would make N workers look
up each task; instead a worker acts on the hints of its two shards, I and I−1,
so each task is raced by exactly two workers (neighbours, which the test puts on
different replicas), and it polls FindAvailableTasks when no hint came for a
while, racing every idle worker for whatever is left.
On SIGTERM it writes what it executed and which hints it heard to FILE as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.duration_pb2 import Duration

from sayiir_client.tasks import task_input
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as services

CLAIM_TTL = Duration(seconds=60)
CONCURRENT_TASKS = 4
"""Tasks one worker process runs at a time."""

IDLE_POLL_SECONDS = 0.5
"""With no hint for this long, the worker polls FindAvailableTasks."""

RPC_TIMEOUT = 30.0


def task_output(task_input: bytes) -> bytes:
    """What executing a task produces: the test checks every workflow completed with it."""
    return b"done:" + task_input


@dataclass
class Record:
    executed: list[str] = field(default_factory=list)
    hinted: list[str] = field(default_factory=list)
    fenced_out: int = 0
    guard_refusals: int = 0


def shard_of(instance_id: str, shards: int) -> int:
    return zlib.crc32(instance_id.encode()) % shards


class Worker:
    def __init__(self, channel: grpc.aio.Channel, worker_id: str, shard: int, shards: int) -> None:
        self.worker_id = worker_id
        self.shards = shards
        self.own_shards = {shard, (shard - 1) % shards}
        self.claims = services.TaskClaimStoreStub(channel)
        self.snapshots = services.SnapshotStoreStub(channel)
        self.signals = services.SignalStoreStub(channel)
        self.record = Record()
        self.hints: asyncio.Queue[pb.TaskWakeupHint] = asyncio.Queue()

    async def listen(self, ready: asyncio.Event) -> None:
        call = self.claims.WatchWakeups(rr.WatchWakeupsRequest())
        await call.initial_metadata()
        ready.set()
        async for response in call:
            self.record.hinted.append(response.hint.instance_id)
            if shard_of(response.hint.instance_id, self.shards) in self.own_shards:
                self.hints.put_nowait(response.hint)

    async def run(self) -> None:
        while True:
            try:
                hint = await asyncio.wait_for(self.hints.get(), IDLE_POLL_SECONDS)
            except TimeoutError:
                await self._poll()
                continue
            found = await self.claims.FindHintedTask(rr.FindHintedTaskRequest(hint=hint), timeout=RPC_TIMEOUT)
            if found.HasField("task"):
                await self._execute(found.task)

    async def _poll(self) -> None:
        request = rr.FindAvailableTasksRequest(worker_id=self.worker_id, limit=10)
        request.aging_interval.FromSeconds(60)
        found = await self.claims.FindAvailableTasks(request, timeout=RPC_TIMEOUT)
        for task in found.tasks:
            await self._execute(task)

    async def _execute(self, task: pb.AvailableTask) -> None:
        claim = await self.claims.ClaimTask(
            rr.ClaimTaskRequest(
                instance_id=task.instance_id, task_id=task.task_id, worker_id=self.worker_id, ttl=CLAIM_TTL
            ),
            timeout=RPC_TIMEOUT,
        )
        if not claim.HasField("claim"):
            return
        try:
            snapshot = await self._guarded(task)
            if snapshot is None:
                self.record.guard_refusals += 1
                return
            self.record.executed.append(task.instance_id)
            snapshot.completed.CopyFrom(pb.CompletedState(final_output=task_output(task_input(task.snapshot))))
            snapshot.updated_at.GetCurrentTime()
            saved = await self.claims.SaveSnapshotFenced(
                rr.SaveSnapshotFencedRequest(snapshot=snapshot, task_id=task.task_id, worker_id=self.worker_id),
                timeout=RPC_TIMEOUT,
            )
            if not saved.saved:
                self.record.fenced_out += 1
        finally:
            await self.claims.ReleaseTaskClaim(
                rr.ReleaseTaskClaimRequest(
                    instance_id=task.instance_id, task_id=task.task_id, worker_id=self.worker_id
                ),
                timeout=RPC_TIMEOUT,
            )

    async def _guarded(self, task: pb.AvailableTask) -> pb.WorkflowSnapshot | None:
        """docs/behaviour.md WORKER-1.3: still InProgress at this task, not completed, no control signal pending."""
        loaded = await self.snapshots.LoadSnapshot(
            rr.LoadSnapshotRequest(instance_id=task.instance_id), timeout=RPC_TIMEOUT
        )
        snapshot = loaded.snapshot
        running = snapshot.WhichOneof("state") == "in_progress"
        position = snapshot.in_progress.position
        if not running or position.WhichOneof("position") != "at_task" or position.at_task.task_id != task.task_id:
            return None
        if any(result.task_id == task.task_id for result in snapshot.in_progress.completed_tasks):
            return None
        control = await self.signals.CheckControlSignals(
            rr.CheckControlSignalsRequest(instance_id=task.instance_id), timeout=RPC_TIMEOUT
        )
        return None if control.HasField("control_signal") else snapshot


async def main(target: str, worker_id: str, shard: int, shards: int, out: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with grpc.aio.insecure_channel(target) as channel:
        worker = Worker(channel, worker_id, shard, shards)
        ready = asyncio.Event()
        tasks = [asyncio.create_task(worker.listen(ready))]
        await ready.wait()
        print("ready", flush=True)
        tasks += [asyncio.create_task(worker.run()) for _ in range(CONCURRENT_TASKS)]
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task  # a task that failed re-raises here: the worker exits non-zero
    record = worker.record
    summary = json.dumps(
        {
            "worker": worker_id,
            "target": target,
            "executed": record.executed,
            "hinted": record.hinted,
            "fenced_out": record.fenced_out,
            "guard_refusals": record.guard_refusals,
        }
    )
    await asyncio.to_thread(out.write_text, summary)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.target, arguments.worker_id, arguments.shard, arguments.shards, arguments.out))
