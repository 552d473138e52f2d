"""Cancel and pause rules shared by every backend (SPEC.md §4)."""

from __future__ import annotations

import enum
from datetime import datetime

from sayiir_client.errors import CannotCancelError, CannotPauseError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.model import CANCEL, PAUSE, SignalKind, state_name, state_of, timestamp


class SignalAdmission(enum.Enum):
    """What store_signal does with a request, given the instance's state."""

    STORE = "store"
    IGNORE = "ignore"


_CANCEL_REFUSED = frozenset({"completed", "failed"})
_PAUSE_REFUSED = frozenset({"completed", "failed", "cancelled"})


def admit_signal(snapshot: pb.WorkflowSnapshot, kind: SignalKind) -> SignalAdmission:
    """store_signal's decision: store it, ignore it (already applied), or raise CannotCancel/CannotPause."""
    state = state_of(snapshot)
    if kind == CANCEL:
        if state in _CANCEL_REFUSED:
            raise CannotCancelError(state_name(snapshot))
        return SignalAdmission.IGNORE if state == "cancelled" else SignalAdmission.STORE
    if kind == PAUSE:
        if state in _PAUSE_REFUSED:
            raise CannotPauseError(state_name(snapshot))
        return SignalAdmission.IGNORE if state == "paused" else SignalAdmission.STORE
    raise ValueError(f"unknown signal kind {kind}")


_REFUSED_STATUSES: dict[SignalKind, frozenset[str]] = {
    CANCEL: frozenset({"completed", "failed"}),
    PAUSE: frozenset({"completed", "failed", "cancelled"}),
}


def validate_signal_allowed(status: str, kind: SignalKind) -> None:
    """Refuse a signal for a status by name ("Completed", "failed", ...); unknown names are allowed.

    Raises CannotCancelError or CannotPauseError.
    """
    if status.replace("_", "").lower() not in _REFUSED_STATUSES.get(kind, frozenset()):
        return
    if kind == CANCEL:
        raise CannotCancelError(status)
    raise CannotPauseError(status)


def apply_cancel(
    snapshot: pb.WorkflowSnapshot, request: pb.SignalRequest, interrupted_at_task: bytes | None, now: datetime
) -> None:
    """Turn an InProgress snapshot into Cancelled, in place (check_and_cancel's write)."""
    running = snapshot.in_progress
    cancelled = pb.CancelledState(cancelled_at=timestamp(now), completed_tasks=running.completed_tasks)
    if request.HasField("reason"):
        cancelled.reason = request.reason
    if request.HasField("requested_by"):
        cancelled.cancelled_by = request.requested_by
    if interrupted_at_task is not None:
        cancelled.interrupted_at_task = interrupted_at_task
    snapshot.cancelled.CopyFrom(cancelled)
    snapshot.ClearField("task_deadline")
    snapshot.updated_at.CopyFrom(timestamp(now))


def apply_pause(snapshot: pb.WorkflowSnapshot, request: pb.SignalRequest, now: datetime) -> None:
    """Turn an InProgress snapshot into Paused, in place, keeping its position (check_and_pause's write)."""
    running = snapshot.in_progress
    paused = pb.PausedState(
        paused_at=timestamp(now), completed_tasks=running.completed_tasks, position=running.position
    )
    if running.HasField("last_completed_task_id"):
        paused.last_completed_task_id = running.last_completed_task_id
    if request.HasField("reason"):
        paused.reason = request.reason
    if request.HasField("requested_by"):
        paused.paused_by = request.requested_by
    snapshot.paused.CopyFrom(paused)
    snapshot.ClearField("task_deadline")
    snapshot.updated_at.CopyFrom(timestamp(now))


def apply_unpause(snapshot: pb.WorkflowSnapshot, now: datetime) -> None:
    """Resume a Paused snapshot in place; CannotPauseError naming the state when it is not Paused."""
    if state_of(snapshot) != "paused":
        state = state_name(snapshot)
        raise CannotPauseError(state, f"workflow is not paused (state {state})")
    paused = snapshot.paused
    running = pb.InProgressState(position=paused.position, completed_tasks=paused.completed_tasks)
    if paused.HasField("last_completed_task_id"):
        running.last_completed_task_id = paused.last_completed_task_id
    snapshot.in_progress.CopyFrom(running)
    snapshot.updated_at.CopyFrom(timestamp(now))
