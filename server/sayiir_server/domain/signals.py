"""Cancel and pause rules shared by every backend (docs/behaviour.md SIG)."""

from __future__ import annotations

import enum
from datetime import datetime

from sayiir_client.errors import CannotCancelError, CannotPauseError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import CANCEL, PAUSE, SignalKind, state_name, state_of, timestamp


class SignalAdmission(enum.Enum):
    """What store_signal does with a request, given the instance's state."""

    STORE = "store"
    IGNORE = "ignore"


_REFUSED_IN: dict[SignalKind, frozenset[str]] = {
    CANCEL: frozenset({"completed", "failed"}),
    PAUSE: frozenset({"completed", "failed", "cancelled"}),
}
"""SIG-1: the states in which a request of each kind is refused."""

_ALREADY_APPLIED_IN: dict[SignalKind, str] = {CANCEL: "cancelled", PAUSE: "paused"}


def admit_signal(snapshot: pb.WorkflowSnapshot, kind: SignalKind) -> SignalAdmission:
    """store_signal's decision: store it, ignore it (already applied), or raise CannotCancel/CannotPause."""
    if kind not in _REFUSED_IN:
        raise ValueError(f"unknown signal kind {kind}")
    state = state_of(snapshot)
    if state in _REFUSED_IN[kind]:
        raise _refusal(kind, state_name(snapshot))
    return SignalAdmission.IGNORE if state == _ALREADY_APPLIED_IN[kind] else SignalAdmission.STORE


def validate_signal_allowed(status: str, kind: SignalKind) -> None:
    """The crate's validate_signal_allowed: refuse a kind for a status by name ("Completed", "failed", ...).

    Unknown names are allowed (forward compatibility). Raises CannotCancelError or CannotPauseError.
    """
    if status.replace("_", "").lower() in {state.replace("_", "") for state in _REFUSED_IN.get(kind, ())}:
        raise _refusal(kind, status)


def _refusal(kind: SignalKind, state: str) -> CannotCancelError | CannotPauseError:
    return CannotCancelError(state) if kind == CANCEL else CannotPauseError(state)


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
