"""Steps many checks share: save, load, find this check's tasks, claim, and listen to wakeups."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import Refusal, Trial
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr

HINT_WAIT = timedelta(seconds=3)
"""How long a check waits for a hint it expects (hints on an idle loopback server arrive in milliseconds)."""

QUIET_WAIT = timedelta(milliseconds=300)
"""How long a check listens to be sure a hint it must not get does not come."""

CANCEL = enums.SIGNAL_KIND_CANCEL
PAUSE = enums.SIGNAL_KIND_PAUSE

HOLD_TTL = timedelta(minutes=2)
"""The lease of a claim a check holds so that a request stays pending (SIG-9.2); long enough for any check, short
enough that a claim left behind by a kit that died frees its task soon."""


async def save(t: Trial, snapshot: pb.WorkflowSnapshot) -> None:
    await t.ok(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=snapshot))


async def load(t: Trial, instance_id: str) -> pb.WorkflowSnapshot:
    return (await t.ok(t.stubs.snapshots.LoadSnapshot, rr.LoadSnapshotRequest(instance_id=instance_id))).snapshot


async def ready(
    t: Trial,
    task: str = "step",
    *,
    tags: Sequence[str] = (),
    priority: int | None = None,
    updated_at: datetime | None = None,
    label: str = "i",
) -> pb.WorkflowSnapshot:
    """Save a new InProgress instance of this check at AtTask(task), ready to run."""
    snapshot = build.in_progress(
        t.instance(label), t.definition, build.at_task(task), priority=priority, tags=tags, updated_at=updated_at
    )
    await save(t, snapshot)
    return snapshot


async def find(
    t: Trial,
    worker_id: str,
    worker_tags: Sequence[str],
    *,
    limit: int = 1000,
    aging_interval: timedelta | None = None,
) -> list[pb.AvailableTask]:
    """FindAvailableTasks, keeping only this check's tasks: other programs' tasks may be offered too."""
    request = rr.FindAvailableTasksRequest(worker_id=worker_id, limit=limit, worker_tags=worker_tags)
    if aging_interval is not None:
        request.aging_interval.CopyFrom(build.duration(aging_interval))
    answer = await t.ok(t.stubs.claims.FindAvailableTasks, request)
    return [task for task in answer.tasks if task.instance_id in t.instances]


def instance_ids(tasks: Sequence[pb.AvailableTask]) -> list[str]:
    return [task.instance_id for task in tasks]


async def claim(
    t: Trial, instance_id: str, task: bytes, worker_id: str, ttl: timedelta | None = None
) -> rr.ClaimTaskResponse:
    request = rr.ClaimTaskRequest(instance_id=instance_id, task_id=task, worker_id=worker_id)
    if ttl is not None:
        request.ttl.CopyFrom(build.duration(ttl))
    return await t.ok(t.stubs.claims.ClaimTask, request)


async def hold(t: Trial, instance_id: str, task: str = "step", worker_id: str | None = None) -> str:
    """Hold a live claim (with a ttl) on a task of the run, so that a cancel or pause stored for it stays pending
    for the holder (SIG-9.2) instead of applying at once (SIG-9.1). The trial releases it in clean-up. A task other
    than the current one keeps the run's current task unclaimed (DISP-3.4) and still holds the run back."""
    holder = worker_id or t.worker("holder")
    answer = await claim(t, instance_id, build.task_id(task), holder, HOLD_TTL)
    t.expect(
        answer.HasField("claim") and answer.claim.worker_id == holder,
        f"the check's own claim on task {task!r} (CLAIM-1.1), so that a request stays pending for it (SIG-9.2)",
    )
    return holder


async def store_signal(t: Trial, instance_id: str, kind: enums.SignalKind.ValueType) -> rr.StoreSignalResponse:
    request = rr.StoreSignalRequest(instance_id=instance_id, kind=kind, request=build.signal_request())
    return await t.ok(t.stubs.signals.StoreSignal, request)


async def get_signal(t: Trial, instance_id: str, kind: enums.SignalKind.ValueType) -> rr.GetSignalResponse:
    return await t.ok(t.stubs.signals.GetSignal, rr.GetSignalRequest(instance_id=instance_id, kind=kind))


async def send_event(t: Trial, instance_id: str, name: str, payload: bytes) -> None:
    await t.ok(
        t.stubs.signals.SendEvent, rr.SendEventRequest(instance_id=instance_id, signal_name=name, payload=payload)
    )


async def task_result(t: Trial, instance_id: str, task: str) -> rr.LoadTaskResultResponse:
    request = rr.LoadTaskResultRequest(instance_id=instance_id, task_id=build.task_id(task))
    return await t.ok(t.stubs.results.LoadTaskResult, request)


async def prepare_run(
    t: Trial,
    instance_id: str,
    *,
    task: str = "first",
    policy: enums.ConflictPolicy.ValueType = enums.CONFLICT_POLICY_FAIL,
    tags: Sequence[str] = (),
    definition_hash: bytes | None = None,
) -> rr.PrepareRunResponse | Refusal:
    request = rr.PrepareRunRequest(
        instance_id=instance_id,
        definition_hash=definition_hash or t.definition,
        input=build.INPUT,
        first_task=pb.FirstTask(task_id=build.task_id(task), tags=tags),
        conflict_policy=policy,
    )
    return await t.attempt(t.stubs.lifecycle.PrepareRun, request)


def within_slack(t: Trial, stamp: Timestamp, before: datetime, after: datetime) -> bool:
    """A time the server set lies between two readings of the kit's clock, give or take the clock slack."""
    taken = build.moment(stamp)
    slack = t.settings.clock_slack
    return before - slack <= taken <= after + slack


class Watch:
    """A WatchWakeups stream opened for a check, read in the background (WAKE-3.1)."""

    def __init__(self, t: Trial, worker_tags: Sequence[str]) -> None:
        self._t = t
        self._tags = list(worker_tags)
        self.hints: list[pb.TaskWakeupHint] = []
        self._arrived = asyncio.Event()
        self._call: grpc.aio.UnaryStreamCall[rr.WatchWakeupsRequest, rr.WatchWakeupsResponse] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.ended: grpc.StatusCode | None = None

    async def __aenter__(self) -> Watch:
        self._call = self._t.stubs.claims.WatchWakeups(
            rr.WatchWakeupsRequest(worker_tags=self._tags), metadata=self._t.settings.metadata
        )
        # WAKE-3.1: once the headers are in, the subscription exists and every later hint is heard.
        await asyncio.wait_for(self._call.initial_metadata(), self._t.settings.deadline.total_seconds())
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._call is not None
        assert self._reader is not None
        self._call.cancel()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await self._reader

    async def _read(self) -> None:
        assert self._call is not None
        try:
            async for message in self._call:
                self.hints.append(message.hint)
                self._arrived.set()
        except grpc.aio.AioRpcError as error:
            self.ended = error.code()
        else:
            self.ended = grpc.StatusCode.OK

    def of(self, instance_id: str) -> list[pb.TaskWakeupHint]:
        return [hint for hint in self.hints if hint.instance_id == instance_id]

    async def hint_for(self, instance_id: str, within: timedelta = HINT_WAIT) -> pb.TaskWakeupHint | None:
        """The first hint naming `instance_id`, waiting up to `within` for it."""
        deadline = asyncio.get_running_loop().time() + within.total_seconds()
        while not self.of(instance_id):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or self.ended is not None:
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
        return self.of(instance_id)[0]

    def describe(self) -> str:
        shown = ", ".join(f"{hint.instance_id}" for hint in self.hints[-10:]) or "none"
        return f"WatchWakeups(worker_tags={self._tags}) streamed hints for: {shown}"
