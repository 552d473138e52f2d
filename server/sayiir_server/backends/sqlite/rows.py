"""Between protobuf values and SQLite rows: blobs, microsecond times, and a snapshot's index columns."""

from __future__ import annotations

import json
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.index_columns import index_columns
from sayiir_server.domain.dispatch import timestamp_micros


def micros_timestamp(value: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(value)
    return ts


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
    definition_hash: bytes

    def due_at_us(self, event_buffered: bool) -> int | None:
        """When find_available_tasks must look at the row: at once when its awaited event is buffered."""
        if self.signal_name is not None and event_buffered:
            return 0
        return self.wake_at_us


def snapshot_columns(snapshot: pb.WorkflowSnapshot) -> SnapshotColumns:
    columns = index_columns(snapshot)
    return SnapshotColumns(
        instance_id=snapshot.instance_id,
        snapshot=snapshot.SerializeToString(),
        state=columns.state,
        position=columns.position,
        current_task_id=columns.current_task_id,
        ready_task_id=columns.ready_task_id,
        priority=columns.priority,
        updated_at_us=timestamp_micros(columns.updated_at),
        wake_at_us=timestamp_micros(columns.wake_at) if columns.wake_at is not None else None,
        signal_name=columns.signal_name,
        retry_at_us=timestamp_micros(columns.next_retry_at) if columns.next_retry_at is not None else None,
        last_failed_worker=columns.last_failed_worker,
        tags=json.dumps(columns.tags),
        definition_hash=columns.definition_hash,
    )
