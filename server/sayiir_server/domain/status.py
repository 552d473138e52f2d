"""WorkflowStatus derived from a snapshot's state (docs/behaviour.md MODEL, "Status")."""

from __future__ import annotations

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import state_of


def workflow_status(snapshot: pb.WorkflowSnapshot) -> pb.WorkflowStatus:
    state = state_of(snapshot)
    if state == "completed":
        return pb.WorkflowStatus(completed=pb.StatusCompleted())
    if state == "failed":
        return pb.WorkflowStatus(failed=pb.StatusFailed(error=snapshot.failed.error))
    if state == "cancelled":
        cancelled = snapshot.cancelled
        return pb.WorkflowStatus(
            cancelled=pb.StatusCancelled(
                reason=cancelled.reason if cancelled.HasField("reason") else None,
                cancelled_by=cancelled.cancelled_by if cancelled.HasField("cancelled_by") else None,
            )
        )
    if state == "paused":
        paused = snapshot.paused
        return pb.WorkflowStatus(
            paused=pb.StatusPaused(
                reason=paused.reason if paused.HasField("reason") else None,
                paused_by=paused.paused_by if paused.HasField("paused_by") else None,
            )
        )
    return _in_progress_status(snapshot.in_progress.position)


def _in_progress_status(position: pb.ExecutionPosition) -> pb.WorkflowStatus:
    kind = position.WhichOneof("position")
    if kind == "at_delay":
        delay = position.at_delay
        return pb.WorkflowStatus(waiting=pb.StatusWaiting(wake_at=delay.wake_at, delay_id=delay.delay_id))
    if kind == "at_fork":
        fork = position.at_fork
        waiting = pb.StatusWaiting(delay_id=fork.fork_id)
        if fork.HasField("wake_at"):
            waiting.wake_at.CopyFrom(fork.wake_at)
        return pb.WorkflowStatus(waiting=waiting)
    if kind == "at_signal":
        signal = position.at_signal
        awaiting = pb.StatusAwaitingSignal(signal_id=signal.signal_id, signal_name=signal.signal_name)
        if signal.HasField("wake_at"):
            awaiting.wake_at.CopyFrom(signal.wake_at)
        return pb.WorkflowStatus(awaiting_signal=awaiting)
    return pb.WorkflowStatus(in_progress=pb.StatusInProgress())
