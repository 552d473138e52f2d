"""Dispatch rules as pure functions (docs/behaviour.md, DISP-* and WAKE-1).

Stores decide which rows to look at (indexes, locks); these functions decide
what the rows mean: advancement of delays and signals (DISP-2), the candidate
test (DISP-3), the dispatch order (DISP-4), and the hint a write announces.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import current_task_id, find_result, state_of, timestamp, to_datetime
from sayiir_server.domain.snapshots import record_task_result

DEFAULT_PRIORITY = 3

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


def datetime_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime, exactly."""
    return (moment - _EPOCH) // _ONE_MICROSECOND


def timestamp_micros(ts: Timestamp) -> int:
    """Microseconds since the Unix epoch, truncated toward zero as Timestamp.ToDatetime truncates nanos."""
    nanos = ts.nanos
    return ts.seconds * 1_000_000 + (nanos // 1000 if nanos >= 0 else -(-nanos // 1000))


def signal_task_id(signal_name: str) -> bytes:
    """The task id an AtSignal's event payload is recorded under: SHA-256 of the signal name."""
    return hashlib.sha256(signal_name.encode()).digest()


def tags_fit(task_tags: Iterable[str], worker_tags: Iterable[str]) -> bool:
    """A worker without tags takes anything; a task without tags fits everyone; else all task tags are needed."""
    required = set(task_tags)
    offered = set(worker_tags)
    return not offered or not required or required <= offered


def _position(snapshot: pb.WorkflowSnapshot) -> str | None:
    if state_of(snapshot) != "in_progress":
        return None
    return snapshot.in_progress.position.WhichOneof("position")


def wake_at(snapshot: pb.WorkflowSnapshot) -> datetime | None:
    """When time alone advances this InProgress snapshot (a delay's end or a signal's timeout)."""
    position = _position(snapshot)
    if position == "at_delay":
        return to_datetime(snapshot.in_progress.position.at_delay.wake_at)
    if position == "at_signal" and snapshot.in_progress.position.at_signal.HasField("wake_at"):
        return to_datetime(snapshot.in_progress.position.at_signal.wake_at)
    return None


def is_delay_due(snapshot: pb.WorkflowSnapshot, now: datetime) -> bool:
    due = wake_at(snapshot)
    return _position(snapshot) == "at_delay" and due is not None and due <= now


def awaited_signal_name(snapshot: pb.WorkflowSnapshot) -> str | None:
    """The event name an InProgress AtSignal snapshot waits for, else None."""
    if _position(snapshot) != "at_signal":
        return None
    return snapshot.in_progress.position.at_signal.signal_name


def is_signal_timed_out(snapshot: pb.WorkflowSnapshot, now: datetime) -> bool:
    due = wake_at(snapshot)
    return _position(snapshot) == "at_signal" and due is not None and due <= now


def _move_on(snapshot: pb.WorkflowSnapshot, next_task_id: bytes | None, final_output: bytes, now: datetime) -> None:
    if next_task_id is None:
        snapshot.completed.CopyFrom(pb.CompletedState(final_output=final_output))
    else:
        snapshot.in_progress.position.CopyFrom(pb.ExecutionPosition(at_task=pb.AtTask(task_id=next_task_id)))
    snapshot.updated_at.CopyFrom(timestamp(now))


def advance_past_delay(snapshot: pb.WorkflowSnapshot, now: datetime) -> None:
    """A due AtDelay moves to AtTask(next), or completes with the delay node's stored result (empty if none)."""
    delay = snapshot.in_progress.position.at_delay
    next_task = delay.next_task_id if delay.HasField("next_task_id") else None
    stored = find_result(snapshot.in_progress.completed_tasks, delay.delay_id)
    _move_on(snapshot, next_task, stored.output if stored is not None else b"", now)


def advance_past_signal(snapshot: pb.WorkflowSnapshot, payload: bytes, now: datetime) -> None:
    """An AtSignal that got its event (or timed out, payload empty) records it and moves on."""
    signal = pb.AtSignal()
    signal.CopyFrom(snapshot.in_progress.position.at_signal)
    record_task_result(snapshot, signal_task_id(signal.signal_name), payload, now)
    _move_on(snapshot, signal.next_task_id if signal.HasField("next_task_id") else None, payload, now)


def retry_state(snapshot: pb.WorkflowSnapshot, task_id: bytes) -> pb.TaskRetryState | None:
    for retry in snapshot.task_retries:
        if retry.task_id == task_id:
            return retry
    return None


def task_input(snapshot: pb.WorkflowSnapshot) -> bytes | None:
    """The initial input before any task completed, then the last completed task's output."""
    running = snapshot.in_progress
    if not running.HasField("last_completed_task_id"):
        return snapshot.initial_input if snapshot.HasField("initial_input") else None
    last = find_result(running.completed_tasks, running.last_completed_task_id)
    return None if last is None else last.output


def _offer(snapshot: pb.WorkflowSnapshot, worker_tags: Sequence[str], now: datetime) -> tuple[bytes, bytes] | None:
    """Rule 3 over the snapshot alone: (task id, input) when it offers a task, else None."""
    task_id = current_task_id(snapshot)
    if task_id is None or find_result(snapshot.in_progress.completed_tasks, task_id) is not None:
        return None
    retry = retry_state(snapshot, task_id)
    if retry is not None and retry.HasField("next_retry_at") and now < to_datetime(retry.next_retry_at):
        return None
    if not tags_fit(snapshot.task_tags, worker_tags):
        return None
    task_input_bytes = task_input(snapshot)
    if task_input_bytes is None:
        return None
    return task_id, task_input_bytes


def candidate_task_id(snapshot: pb.WorkflowSnapshot, worker_tags: Sequence[str], now: datetime) -> bytes | None:
    """Rule 3 without building the AvailableTask: the task id on offer, else None.

    The caller has already excluded pending signals and live claims.
    """
    offer = _offer(snapshot, worker_tags, now)
    return None if offer is None else offer[0]


def available_task(snapshot: pb.WorkflowSnapshot, worker_tags: Sequence[str], now: datetime) -> pb.AvailableTask | None:
    """Rule 3 over the snapshot alone: the caller has already excluded pending signals and live claims."""
    offer = _offer(snapshot, worker_tags, now)
    if offer is None:
        return None
    task_id, task_input_bytes = offer
    task = pb.AvailableTask(
        instance_id=snapshot.instance_id,
        task_id=task_id,
        input=task_input_bytes,
        definition_hash=snapshot.definition_hash,
        snapshot=snapshot,
    )
    if snapshot.HasField("trace_parent"):
        task.trace_parent = snapshot.trace_parent
    return task


def failed_here(snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
    """Whether this worker was the last to fail the task (rule 4's soft anti-affinity sends it last)."""
    retry = retry_state(snapshot, task_id)
    return retry is not None and retry.HasField("last_failed_worker") and retry.last_failed_worker == worker_id


def priority_of(snapshot: pb.WorkflowSnapshot) -> int:
    return snapshot.task_priority if snapshot.HasField("task_priority") else DEFAULT_PRIORITY


def effective_priority(priority: int, updated_us: int, now_us: int, aging_seconds: float) -> float:
    """Rule 4's priority − (now − updated_at) / aging_interval, in whole microseconds.

    Bit for bit what timedelta arithmetic gives (total_seconds() is the exact microsecond count over 10⁶),
    without building a datetime per candidate.
    """
    return priority - ((now_us - updated_us) / 1_000_000) / aging_seconds


def _order_key(
    snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str, aging_seconds: float, now_us: int
) -> tuple[int, float, str]:
    updated_us = timestamp_micros(snapshot.updated_at)
    priority = effective_priority(priority_of(snapshot), updated_us, now_us, aging_seconds)
    return (int(failed_here(snapshot, task_id, worker_id)), priority, snapshot.instance_id)


def order_and_limit(
    tasks: Iterable[pb.AvailableTask], worker_id: str, aging_interval: timedelta, now: datetime, limit: int
) -> list[pb.AvailableTask]:
    """Rules 4 and 5: the first `limit` candidates in dispatch order (keys are unique: they end in the instance id)."""
    aging_seconds = aging_interval.total_seconds()
    now_us = datetime_micros(now)

    def key(task: pb.AvailableTask) -> tuple[int, float, str]:
        return _order_key(task.snapshot, task.task_id, worker_id, aging_seconds, now_us)

    return heapq.nsmallest(limit, tasks, key=key)


def wakeup_hint(snapshot: pb.WorkflowSnapshot) -> pb.TaskWakeupHint:
    return pb.TaskWakeupHint(
        instance_id=snapshot.instance_id,
        task_id=current_task_id(snapshot) or b"",
        definition_hash=snapshot.definition_hash,
        task_tags=snapshot.task_tags,
    )


def ready_hint(snapshot: pb.WorkflowSnapshot) -> pb.TaskWakeupHint | None:
    """WAKE-1: the hint a write of this snapshot announces when it is at a task not yet completed, else None.

    Storage announces it only if the row it replaces was at another task (the write made it ready).
    """
    task_id = current_task_id(snapshot)
    if task_id is None or find_result(snapshot.in_progress.completed_tasks, task_id) is not None:
        return None
    return wakeup_hint(snapshot)
