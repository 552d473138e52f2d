"""The columns the SQL backends index beside a stored snapshot, derived once for all of them.

Values are plain and driver-neutral; each backend only encodes them (SQLite: epoch
microseconds and JSON, PostgreSQL: timestamptz and text[]). Times stay protobuf
Timestamps, nanoseconds intact, because the backends round them differently.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain import dispatch
from sayiir_server.domain.model import current_task_id, find_result, state_of


@dataclass(frozen=True)
class IndexColumns:
    """What find_available_tasks and the due-snapshot scans filter on, read from one snapshot."""

    state: str
    """The oneof name of the state ("in_progress", "completed", ...)."""
    position: str | None
    """The InProgress position's oneof name ("at_task", "at_delay", ...); None in any other state."""
    current_task_id: bytes | None
    ready_task_id: bytes | None
    """The current task when dispatch could hand it out, time, claims, signals and tags aside."""
    priority: int
    updated_at: Timestamp
    wake_at: Timestamp | None
    """The stored timestamp behind dispatch.wake_at (which truncates nanoseconds)."""
    signal_name: str | None
    tags: list[str]
    last_failed_worker: str | None
    """Of the ready task's retry state: the worker its last attempt failed on."""
    next_retry_at: Timestamp | None
    """Of the ready task's retry state: when it may run again."""
    definition_hash: bytes


def index_columns(snapshot: pb.WorkflowSnapshot) -> IndexColumns:
    task_id = current_task_id(snapshot)
    ready = task_id if task_id is not None and _is_runnable(snapshot, task_id) else None
    found = dispatch.retry_state(snapshot, ready) if ready is not None else None
    retry = found if found is not None else pb.TaskRetryState()  # none reads as an empty one: no field set
    state = state_of(snapshot)
    return IndexColumns(
        state=state,
        position=snapshot.in_progress.position.WhichOneof("position") if state == "in_progress" else None,
        current_task_id=task_id,
        ready_task_id=ready,
        priority=dispatch.priority_of(snapshot),
        updated_at=snapshot.updated_at,
        wake_at=_wake_at(snapshot),
        signal_name=dispatch.awaited_signal_name(snapshot),
        tags=list(snapshot.task_tags),
        last_failed_worker=retry.last_failed_worker if retry.HasField("last_failed_worker") else None,
        next_retry_at=retry.next_retry_at if retry.HasField("next_retry_at") else None,
        definition_hash=snapshot.definition_hash,
    )


def _is_runnable(snapshot: pb.WorkflowSnapshot, task_id: bytes) -> bool:
    """Rule 3's snapshot-only conditions that never change with time: not yet completed, an input exists."""
    completed = find_result(snapshot.in_progress.completed_tasks, task_id) is not None
    return not completed and dispatch.task_input(snapshot) is not None


def _wake_at(snapshot: pb.WorkflowSnapshot) -> Timestamp | None:
    # dispatch.wake_at decides (and, like every shared rule, refuses a timestamp out of datetime's range).
    if dispatch.wake_at(snapshot) is None:
        return None
    position = snapshot.in_progress.position
    return position.at_delay.wake_at if position.HasField("at_delay") else position.at_signal.wake_at
