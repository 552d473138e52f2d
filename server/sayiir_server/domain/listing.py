"""ListWorkflows (docs/behaviour.md LIST-*): what a filter selects, in which order, and the summary of a row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain import claims, dispatch
from sayiir_server.domain.model import CANCEL, PAUSE, SignalKind, state_of

STATES: Mapping[str, enums.WorkflowState.ValueType] = {
    "in_progress": enums.WORKFLOW_STATE_IN_PROGRESS,
    "completed": enums.WORKFLOW_STATE_COMPLETED,
    "failed": enums.WORKFLOW_STATE_FAILED,
    "cancelled": enums.WORKFLOW_STATE_CANCELLED,
    "paused": enums.WORKFLOW_STATE_PAUSED,
}
"""The state oneof names and their WorkflowState values."""

POSITION_KINDS: Mapping[str, enums.PositionKind.ValueType] = {
    "not_started": enums.POSITION_KIND_NOT_STARTED,
    "at_task": enums.POSITION_KIND_AT_TASK,
    "at_fork": enums.POSITION_KIND_AT_FORK,
    "at_join": enums.POSITION_KIND_AT_JOIN,
    "at_delay": enums.POSITION_KIND_AT_DELAY,
    "at_signal": enums.POSITION_KIND_AT_SIGNAL,
    "in_loop": enums.POSITION_KIND_IN_LOOP,
}


@dataclass(frozen=True)
class WorkflowFilter:
    """LIST-1: every filter given must hold; an empty one selects everything."""

    states: tuple[str, ...] = ()
    """State oneof names ("in_progress", ...); empty: every state."""
    definition_hash: bytes | None = None
    tag: str | None = None
    """The current task's tags must contain it."""
    prefix: str = ""
    """The instance id must start with it."""
    updated_after: datetime | None = None
    """Inclusive."""
    updated_before: datetime | None = None
    """Exclusive."""
    newest_first: bool = True
    """LIST-2: newest updated_at first (ties by descending instance id), else ascending instance id."""


@dataclass(frozen=True)
class ListCursor:
    """Where the next page starts: after this row in the filter's order."""

    updated_us: int
    instance_id: str


@dataclass(frozen=True)
class ListedRow:
    """A row of a ListWorkflows page as storage returns it."""

    snapshot: pb.WorkflowSnapshot
    signals: Mapping[SignalKind, pb.SignalRequest]
    claim: pb.TaskClaim | None
    """The claim on the current task, live or not."""


def cursor_of(snapshot: pb.WorkflowSnapshot) -> ListCursor:
    return ListCursor(dispatch.timestamp_micros(snapshot.updated_at), snapshot.instance_id)


def matches(snapshot: pb.WorkflowSnapshot, wanted: WorkflowFilter) -> bool:
    """LIST-1 over a snapshot: the rule storage queries implement through their indexes."""
    if wanted.states and state_of(snapshot) not in wanted.states:
        return False
    if wanted.definition_hash is not None and snapshot.definition_hash != wanted.definition_hash:
        return False
    if wanted.tag is not None and wanted.tag not in snapshot.task_tags:
        return False
    if not snapshot.instance_id.startswith(wanted.prefix):
        return False
    updated_us = dispatch.timestamp_micros(snapshot.updated_at)
    if wanted.updated_after is not None and updated_us < dispatch.datetime_micros(wanted.updated_after):
        return False
    return wanted.updated_before is None or updated_us < dispatch.datetime_micros(wanted.updated_before)


def after_cursor(snapshot: pb.WorkflowSnapshot, cursor: ListCursor | None, newest_first: bool) -> bool:
    """Whether the row comes after the cursor in the filter's order (LIST-2)."""
    if cursor is None:
        return True
    if newest_first:
        return (dispatch.timestamp_micros(snapshot.updated_at), snapshot.instance_id) < (
            cursor.updated_us,
            cursor.instance_id,
        )
    return snapshot.instance_id.encode() > cursor.instance_id.encode()


def in_order(snapshots: Sequence[pb.WorkflowSnapshot], newest_first: bool) -> list[pb.WorkflowSnapshot]:
    """LIST-2: newest updated_at first with ties by descending instance id, or ascending instance id."""
    if newest_first:
        return sorted(snapshots, key=lambda s: (dispatch.timestamp_micros(s.updated_at), s.instance_id), reverse=True)
    return sorted(snapshots, key=lambda s: s.instance_id)


def _position(snapshot: pb.WorkflowSnapshot) -> pb.ExecutionPosition | None:
    state = state_of(snapshot)
    if state == "in_progress":
        return snapshot.in_progress.position
    if state == "paused":
        return snapshot.paused.position
    return None


def summarize(row: ListedRow, now: datetime) -> pb.WorkflowSummary:
    """LIST-3: what an operator sees of one workflow."""
    snapshot = row.snapshot
    summary = pb.WorkflowSummary(
        instance_id=snapshot.instance_id,
        definition_hash=snapshot.definition_hash,
        state=STATES.get(state_of(snapshot), enums.WORKFLOW_STATE_UNSPECIFIED),
        priority=dispatch.priority_of(snapshot),
        tags=snapshot.task_tags,
        created_at=snapshot.created_at,
        updated_at=snapshot.updated_at,
    )
    position = _position(snapshot)
    if position is not None:
        summary.position_kind = POSITION_KINDS.get(
            position.WhichOneof("position") or "", enums.POSITION_KIND_UNSPECIFIED
        )
        if position.HasField("at_task"):
            summary.current_task_id = position.at_task.task_id
            _add_retry(summary, snapshot, position.at_task.task_id)
    if CANCEL in row.signals:
        summary.pending_cancel.CopyFrom(row.signals[CANCEL])
    if PAUSE in row.signals:
        summary.pending_pause.CopyFrom(row.signals[PAUSE])
    if row.claim is not None and claims.is_live(row.claim, now) and summary.HasField("current_task_id"):
        summary.claim.CopyFrom(row.claim)
    return summary


def _add_retry(summary: pb.WorkflowSummary, snapshot: pb.WorkflowSnapshot, task_id: bytes) -> None:
    retry = dispatch.retry_state(snapshot, task_id)
    if retry is None:
        return
    summary.retry_attempts = retry.attempts
    if retry.HasField("next_retry_at"):
        summary.next_retry_at.CopyFrom(retry.next_retry_at)


def signals_by_instance(
    rows: Sequence[tuple[str, SignalKind, pb.SignalRequest]],
) -> dict[str, dict[SignalKind, pb.SignalRequest]]:
    grouped: dict[str, dict[SignalKind, pb.SignalRequest]] = {}
    for instance_id, kind, request in rows:
        grouped.setdefault(instance_id, {})[kind] = request
    return grouped
