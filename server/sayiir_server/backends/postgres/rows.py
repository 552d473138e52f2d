"""Between protobuf messages and table rows: the derived dispatch columns, blob decoding, NOTIFY payloads."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.errors import SerializationError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.index_columns import index_columns
from sayiir_server.backends.stored import decode_snapshot
from sayiir_server.domain.model import completed_tasks, to_datetime

NOTIFY_CHANNEL = "sayiir_wakeups"
"""The LISTEN/NOTIFY channel wakeup hints travel on, in the default schema (channels are per database)."""


def notify_channel(schema: str | None) -> str:
    """One channel per schema, so deployments sharing a database in separate schemas never wake each other."""
    return NOTIFY_CHANNEL if schema is None else f"{NOTIFY_CHANNEL}_{schema}"


MAX_NOTIFY_PAYLOAD = 7999
"""PostgreSQL refuses NOTIFY payloads of 8000 bytes or more."""

_HINT_PREFIX = "h:"
"""Payload = this + base64 of a serialized TaskWakeupHint."""

_INSTANCE_PREFIX = "i:"
"""Payload = this + an instance id, when the hint itself is too large: the listener loads the snapshot."""


@dataclass(frozen=True)
class SnapshotRow:
    """The values of one snapshots row, in column order (see migrations/0001_initial.sql)."""

    instance_id: str
    snapshot: bytes
    state: str
    position: str | None
    current_task_id: bytes | None
    ready_task_id: bytes | None
    priority: int
    updated_at: datetime
    wake_at: datetime | None
    signal_name: str | None
    tags: list[str]
    last_failed_worker: str | None
    next_retry_at: datetime | None
    definition_hash: bytes

    def values(self) -> tuple[object, ...]:
        # Field by field: dataclasses.astuple deep-copies every value (the snapshot blob included).
        return tuple(getattr(self, name) for name in _ROW_FIELDS)


_ROW_FIELDS = tuple(field.name for field in fields(SnapshotRow))


def snapshot_row(snapshot: pb.WorkflowSnapshot) -> SnapshotRow:
    """Derive the row of a snapshot a client sent; SerializationError when a timestamp is out of range."""
    try:
        return _derive_row(snapshot)
    except (ValueError, OverflowError) as error:
        message = f"snapshot {snapshot.instance_id!r} cannot be stored: {error}"
        raise SerializationError(message, stored=False) from error


def _derive_row(snapshot: pb.WorkflowSnapshot) -> SnapshotRow:
    columns = index_columns(snapshot)
    return SnapshotRow(
        instance_id=snapshot.instance_id,
        snapshot=snapshot.SerializeToString(),
        state=columns.state,
        position=columns.position,
        current_task_id=columns.current_task_id,
        ready_task_id=columns.ready_task_id,
        priority=columns.priority,
        updated_at=to_datetime(columns.updated_at),
        wake_at=_round_up(columns.wake_at),
        signal_name=columns.signal_name,
        tags=columns.tags,
        last_failed_worker=columns.last_failed_worker,
        next_retry_at=_round_up(columns.next_retry_at),
        definition_hash=columns.definition_hash,
    )


_LATEST = datetime.max.replace(tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)
"""Before every storable updated_at: the cursor of a first page."""


def micros_datetime(micros: int) -> datetime:
    """The aware datetime of microseconds since the epoch (a page cursor)."""
    return _EPOCH + timedelta(microseconds=micros)


def _round_up(moment: Timestamp | None) -> datetime | None:
    """PostgreSQL keeps microseconds: round up, so SQL never finds due what the shared rules still see waiting.

    The last representable microsecond stays itself (rounding up would leave year 9999, which PostgreSQL
    refuses): nothing is due that late anyway.
    """
    if moment is None:
        return None
    truncated = to_datetime(moment)
    if moment.nanos % 1000 and truncated < _LATEST:
        return truncated + timedelta(microseconds=1)
    return truncated


def retained_results(retained_from: bytes | None) -> list[pb.TaskResult]:
    """The task results a Completed/Failed row keeps beside its snapshot."""
    return [] if retained_from is None else list(completed_tasks(decode_snapshot(retained_from)))


def hint_payload(hint: pb.TaskWakeupHint | None, instance_id: str) -> str | None:
    """The NOTIFY payload of a write's hint; one too large for NOTIFY names the instance instead."""
    if hint is None:
        return None
    payload = _HINT_PREFIX + base64.b64encode(hint.SerializeToString()).decode("ascii")
    if len(payload.encode()) > MAX_NOTIFY_PAYLOAD:
        return _INSTANCE_PREFIX + instance_id
    return payload


def parse_hint_payload(payload: str) -> pb.TaskWakeupHint | str | None:
    """A hint, or the instance id whose snapshot the listener must load, or None for a payload it cannot read."""
    if payload.startswith(_INSTANCE_PREFIX):
        return payload.removeprefix(_INSTANCE_PREFIX)
    if not payload.startswith(_HINT_PREFIX):
        return None
    hint = pb.TaskWakeupHint()
    try:
        hint.ParseFromString(base64.b64decode(payload.removeprefix(_HINT_PREFIX), validate=True))
    except (binascii.Error, DecodeError):
        return None
    return hint
