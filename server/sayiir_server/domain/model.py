"""Names and small helpers over the protobuf data model (docs/behaviour.md ID, MODEL).

Protobuf messages are the domain model: backends store and return them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb

ID_BYTES = 32
MAX_INSTANCE_ID_BYTES = 256

SignalKind: TypeAlias = enums.SignalKind.ValueType
ControlSignal: TypeAlias = enums.ControlSignal.ValueType
ConflictPolicy: TypeAlias = enums.ConflictPolicy.ValueType
CANCEL: SignalKind = enums.SIGNAL_KIND_CANCEL
PAUSE: SignalKind = enums.SIGNAL_KIND_PAUSE
SIGNAL_KINDS: tuple[SignalKind, ...] = (CANCEL, PAUSE)

STATE_NAMES = {
    "in_progress": "InProgress",
    "completed": "Completed",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "paused": "Paused",
}
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def to_datetime(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def state_of(snapshot: pb.WorkflowSnapshot) -> str:
    """The oneof name of the snapshot's state ("in_progress", "completed", ...); "" when unset."""
    return snapshot.WhichOneof("state") or ""


def state_name(snapshot: pb.WorkflowSnapshot) -> str:
    """The state as the Rust crate names it ("InProgress", "Completed", ...)."""
    return STATE_NAMES.get(state_of(snapshot), "Unknown")


def completed_tasks(snapshot: pb.WorkflowSnapshot) -> Sequence[pb.TaskResult]:
    """Completed task results carried by the state (InProgress, Paused, Cancelled); empty otherwise."""
    state = state_of(snapshot)
    if state == "in_progress":
        return snapshot.in_progress.completed_tasks
    if state == "paused":
        return snapshot.paused.completed_tasks
    if state == "cancelled":
        return snapshot.cancelled.completed_tasks
    return ()


def find_result(results: Sequence[pb.TaskResult], task_id: bytes) -> pb.TaskResult | None:
    for result in results:
        if result.task_id == task_id:
            return result
    return None


def current_task_id(snapshot: pb.WorkflowSnapshot) -> bytes | None:
    """The task id of an InProgress snapshot positioned AtTask, else None."""
    if state_of(snapshot) != "in_progress":
        return None
    position = snapshot.in_progress.position
    if position.WhichOneof("position") != "at_task":
        return None
    return position.at_task.task_id


def clamp_aging_interval(aging_interval: timedelta | None) -> timedelta:
    """DISP-4: a missing, zero or negative aging interval counts as one second."""
    one_second = timedelta(seconds=1)
    if aging_interval is None or aging_interval < one_second:
        return one_second
    return aging_interval
