"""Between protobuf values and SQLite rows: blobs, microsecond times, and a snapshot's index columns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.errors import SerializationError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.dispatch import DEFAULT_PRIORITY, awaited_signal_name, retry_state, task_input, wake_at
from sayiir_server.model import current_task_id, find_result, state_of

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch: the column form of every time."""
    return (moment - _EPOCH) // _ONE_MICROSECOND


def timestamp_micros(ts: Timestamp) -> int:
    """A protobuf timestamp in microseconds, truncated as Timestamp.ToDatetime truncates it."""
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def micros_timestamp(value: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(value)
    return ts


def decode_snapshot(blob: bytes) -> pb.WorkflowSnapshot:
    """Parse a stored snapshot; a corrupt row is SerializationError(stored=True) (DATA_LOSS)."""
    try:
        return pb.WorkflowSnapshot.FromString(blob)
    except DecodeError as error:
        raise SerializationError(f"stored snapshot cannot be decoded: {error}", stored=True) from error


def decode_signal(blob: bytes) -> pb.SignalRequest:
    try:
        return pb.SignalRequest.FromString(blob)
    except DecodeError as error:
        raise SerializationError(f"stored signal request cannot be decoded: {error}", stored=True) from error


@dataclass(frozen=True)
class SnapshotColumns:
    """The indexed columns stored beside a snapshot blob (see migrations/0001_initial.sql)."""

    instance_id: str
    snapshot: bytes
    state: str
    position: str | None
    current_task_id: bytes | None
    ready_task_id: bytes | None
    priority: int
    updated_at_us: int
    wake_at_us: int | None
    signal_name: str | None
    retry_at_us: int | None
    last_failed_worker: str | None
    tags: str

    def due_at_us(self, event_buffered: bool) -> int | None:
        """When find_available_tasks must look at the row: at once when its awaited event is buffered."""
        if self.signal_name is not None and event_buffered:
            return 0
        return self.wake_at_us


def snapshot_columns(snapshot: pb.WorkflowSnapshot) -> SnapshotColumns:
    task_id = current_task_id(snapshot)
    ready = _ready_task_id(snapshot, task_id)
    retry = retry_state(snapshot, ready) if ready is not None else None
    woken = wake_at(snapshot)
    return SnapshotColumns(
        instance_id=snapshot.instance_id,
        snapshot=snapshot.SerializeToString(),
        state=state_of(snapshot),
        position=snapshot.in_progress.position.WhichOneof("position") if state_of(snapshot) == "in_progress" else None,
        current_task_id=task_id,
        ready_task_id=ready,
        priority=snapshot.task_priority if snapshot.HasField("task_priority") else DEFAULT_PRIORITY,
        updated_at_us=timestamp_micros(snapshot.updated_at),
        wake_at_us=micros(woken) if woken is not None else None,
        signal_name=awaited_signal_name(snapshot),
        retry_at_us=timestamp_micros(retry.next_retry_at) if retry and retry.HasField("next_retry_at") else None,
        last_failed_worker=retry.last_failed_worker if retry and retry.HasField("last_failed_worker") else None,
        tags=json.dumps(list(snapshot.task_tags)),
    )


def _ready_task_id(snapshot: pb.WorkflowSnapshot, task_id: bytes | None) -> bytes | None:
    """The current task when dispatch could hand it out, time, claims, signals and tags aside."""
    if task_id is None or find_result(snapshot.in_progress.completed_tasks, task_id) is not None:
        return None
    return task_id if task_input(snapshot) is not None else None
