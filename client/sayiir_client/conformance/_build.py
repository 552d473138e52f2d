"""Snapshots, positions, ids and times the checks send.

Task and node ids follow the convention of ID-1.3 (SHA-256 of a name); times are
the kit's clock, which MODEL-1.5 asks to be close to the server's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.v1 import messages_pb2 as pb

INPUT = b"conformance input"
"""The initial input of the snapshots the checks build."""

ANCIENT = datetime(1, 1, 2, tzinfo=UTC)
"""An updated_at so old that a task carrying it is more urgent than any real one (DISP-4.2): checks whose
order or limit must not depend on other programs' tasks use it."""


def task_id(name: str) -> bytes:
    """The 32-byte id of the task (or node) named `name` (ID-1.3)."""
    return hashlib.sha256(name.encode()).digest()


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def moment(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def duration(span: timedelta) -> Duration:
    value = Duration()
    value.FromTimedelta(span)
    return value


def at_task(name: str) -> pb.ExecutionPosition:
    return pb.ExecutionPosition(at_task=pb.AtTask(task_id=task_id(name)))


def at_delay(delay: str, wake_at: datetime, next_task: str | None) -> pb.ExecutionPosition:
    position = pb.AtDelay(delay_id=task_id(delay), entered_at=timestamp(now()), wake_at=timestamp(wake_at))
    if next_task is not None:
        position.next_task_id = task_id(next_task)
    return pb.ExecutionPosition(at_delay=position)


def at_signal(signal_name: str, wake_at: datetime | None, next_task: str | None) -> pb.ExecutionPosition:
    position = pb.AtSignal(signal_id=task_id(f"wait for {signal_name}"), signal_name=signal_name)
    if wake_at is not None:
        position.wake_at.CopyFrom(timestamp(wake_at))
    if next_task is not None:
        position.next_task_id = task_id(next_task)
    return pb.ExecutionPosition(at_signal=position)


def results(outputs: Mapping[str, bytes]) -> list[pb.TaskResult]:
    return [pb.TaskResult(task_id=task_id(name), output=output) for name, output in outputs.items()]


def in_progress(
    instance_id: str,
    definition_hash: bytes,
    position: pb.ExecutionPosition,
    *,
    outputs: Mapping[str, bytes] | None = None,
    last_completed: str | None = None,
    initial_input: bytes | None = INPUT,
    priority: int | None = None,
    tags: Sequence[str] = (),
    updated_at: datetime | None = None,
) -> pb.WorkflowSnapshot:
    """An InProgress snapshot at `position`, with the given results, priority and tags."""
    state = pb.InProgressState(position=position, completed_tasks=results(outputs or {}))
    if last_completed is not None:
        state.last_completed_task_id = task_id(last_completed)
    snapshot = _base(instance_id, definition_hash, updated_at)
    snapshot.in_progress.CopyFrom(state)
    if initial_input is not None:
        snapshot.initial_input = initial_input
    if priority is not None:
        snapshot.task_priority = priority
    snapshot.task_tags.extend(tags)
    return snapshot


def completed(instance_id: str, definition_hash: bytes, final_output: bytes = b"done") -> pb.WorkflowSnapshot:
    snapshot = _base(instance_id, definition_hash, None)
    snapshot.completed.final_output = final_output
    return snapshot


def failed(instance_id: str, definition_hash: bytes, error: str = "boom") -> pb.WorkflowSnapshot:
    snapshot = _base(instance_id, definition_hash, None)
    snapshot.failed.error = error
    return snapshot


def cancelled(
    instance_id: str, definition_hash: bytes, outputs: Mapping[str, bytes] | None = None
) -> pb.WorkflowSnapshot:
    snapshot = _base(instance_id, definition_hash, None)
    snapshot.cancelled.CopyFrom(
        pb.CancelledState(reason="stop", cancelled_at=timestamp(now()), completed_tasks=results(outputs or {}))
    )
    return snapshot


def paused(
    instance_id: str, definition_hash: bytes, position: pb.ExecutionPosition, outputs: Mapping[str, bytes] | None = None
) -> pb.WorkflowSnapshot:
    snapshot = _base(instance_id, definition_hash, None)
    snapshot.paused.CopyFrom(
        pb.PausedState(
            reason="hold", paused_at=timestamp(now()), position=position, completed_tasks=results(outputs or {})
        )
    )
    return snapshot


def _base(instance_id: str, definition_hash: bytes, updated_at: datetime | None) -> pb.WorkflowSnapshot:
    updated = updated_at or now()
    return pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=definition_hash,
        created_at=timestamp(updated - timedelta(minutes=1) if updated > ANCIENT + timedelta(minutes=1) else updated),
        updated_at=timestamp(updated),
    )


def signal_request(reason: str = "conformance", requested_by: str = "sayiir-conformance") -> pb.SignalRequest:
    return pb.SignalRequest(reason=reason, requested_by=requested_by, requested_at=timestamp(now()))


def state_of(snapshot: pb.WorkflowSnapshot) -> str:
    """The name of the state oneof ("in_progress", "completed", ...), or "" when none is set."""
    return snapshot.WhichOneof("state") or ""


def expected_input(snapshot: pb.WorkflowSnapshot) -> bytes | None:
    """MODEL-1.3: the input of an InProgress snapshot's current task."""
    state = snapshot.in_progress
    if not state.HasField("last_completed_task_id"):
        return snapshot.initial_input if snapshot.HasField("initial_input") else None
    for result in state.completed_tasks:
        if result.task_id == state.last_completed_task_id:
            return result.output
    return None
