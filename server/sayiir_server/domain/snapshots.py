"""Snapshot-store rules shared by every backend (docs/behaviour.md SNAP and RES)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import TERMINAL_STATES, completed_tasks, find_result, state_of, timestamp

_RETAINING_STATES = frozenset({"completed", "failed"})

FINAL_STATES = TERMINAL_STATES
"""SNAP-1.4: a stored row in one of these states is never replaced by a save (PrepareRun's policies aside)."""


def record_task_result(snapshot: pb.WorkflowSnapshot, task_id: bytes, output: bytes, now: datetime) -> bool:
    """Record one task's output into an InProgress snapshot, in place; False (unchanged) in any other state."""
    if state_of(snapshot) != "in_progress":
        return False
    state = snapshot.in_progress
    existing = find_result(state.completed_tasks, task_id)
    if existing is None:
        state.completed_tasks.add(task_id=task_id, output=output)
    else:
        existing.output = output
    state.last_completed_task_id = task_id
    snapshot.updated_at.CopyFrom(timestamp(now))
    return True


def retains(snapshot: pb.WorkflowSnapshot) -> bool:
    """SNAP-RETAIN: a Completed or Failed snapshot no longer carries task results, so earlier ones are kept."""
    return state_of(snapshot) in _RETAINING_STATES


def results_to_keep(
    retain: bool, previous: pb.WorkflowSnapshot | None, kept: Sequence[pb.TaskResult]
) -> list[pb.TaskResult]:
    """What storage keeps beside a written row (SNAP-RETAIN): with `retain`, the results the replaced
    snapshot carried, or, when it carried none, what was kept beside it; without, nothing."""
    if not retain:
        return []
    carried = list(completed_tasks(previous)) if previous is not None else []
    return carried or list(kept)


def lookup_task_result(
    snapshot: pb.WorkflowSnapshot, retained: Sequence[pb.TaskResult], task_id: bytes
) -> bytes | None:
    """RES-1: load_task_result over a loaded snapshot and the results kept beside it."""
    source = retained if state_of(snapshot) in _RETAINING_STATES else completed_tasks(snapshot)
    result = find_result(source, task_id)
    return None if result is None else result.output
